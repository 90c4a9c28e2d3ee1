//! The job-store conformance suite against PostgreSQL: a real server from Debian's
//! `postgresql` package, started on loopback by this test (initdb into a temp dir) and
//! stopped at its end. Every check gets a database of its own; reopen = drop the store
//! and connect again. Then two stores ("two API servers") on one database claim at once.

use async_trait::async_trait;
use osimager_server::store::{conformance, JobState, JobStore, NewJob, PgStore};
use osimager_server::testing_pg::TestPostgres;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

struct Pg {
    server: TestPostgres,
    urls: Mutex<Vec<(usize, String)>>,
}

fn key(s: &Arc<dyn JobStore>) -> usize {
    Arc::as_ptr(s) as *const () as usize
}

#[async_trait]
impl conformance::Harness for Pg {
    async fn fresh(&self) -> Arc<dyn JobStore> {
        let url = self.server.new_database().await;
        let s: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        self.urls.lock().unwrap().push((key(&s), url));
        s
    }

    async fn reopen(&self, old: Arc<dyn JobStore>) -> Arc<dyn JobStore> {
        let url = self
            .urls
            .lock()
            .unwrap()
            .iter()
            // The newest first: a dropped store's address may be reused.
            .rev()
            .find(|(k, _)| *k == key(&old))
            .map(|(_, u)| u.clone())
            .expect("a store made by fresh()");
        drop(old);
        let s: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        self.urls.lock().unwrap().push((key(&s), url));
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let h = Pg {
        server: TestPostgres::start(),
        urls: Mutex::new(Vec::new()),
    };
    conformance::run(Arc::new(h)).await;
}

fn job(i: usize) -> NewJob {
    NewJob {
        request: serde_json::from_value(serde_json::json!({
            "target": format!("qemu/lab/job-{i}"), "name": null, "ip": null, "defines": [],
        }))
        .unwrap(),
        retry_of: None,
    }
}

/// Two stores on one database (two servers), eight claimers each, 400 jobs queued while
/// they claim: every job is claimed exactly once, and its history says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_never_claim_a_job_twice() {
    let pg = TestPostgres::start();
    let url = pg.new_database().await;
    let a: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
    let b: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
    const JOBS: usize = 400;
    let producer = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..JOBS {
                a.create(job(i)).await.unwrap();
            }
        })
    };
    let mut tasks = Vec::new();
    for (server, store) in [("a", a.clone()), ("b", b.clone())] {
        for w in 0..8 {
            let store = store.clone();
            let name = format!("{server}{w}");
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut rx = store.queue_changes();
                loop {
                    rx.borrow_and_update();
                    match store.claim(&name).await.unwrap() {
                        Some(j) => {
                            store
                                .finish_leased(
                                    j.id,
                                    j.lease,
                                    osimager_server::store::JobEnd {
                                        state: JobState::Succeeded,
                                        error: None,
                                        output_dir: None,
                                    },
                                )
                                .await
                                .unwrap();
                            got.push(j.id);
                        }
                        None => {
                            let woke = tokio::time::timeout(
                                std::time::Duration::from_secs(3),
                                rx.changed(),
                            )
                            .await;
                            if woke.is_err() {
                                return got;
                            }
                        }
                    }
                }
            }));
        }
    }
    producer.await.unwrap();
    let mut by_claimer: HashMap<JobStoreName, usize> = HashMap::new();
    let mut all = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let got = t.await.unwrap();
        *by_claimer.entry(if i < 8 { "a" } else { "b" }).or_default() += got.len();
        all.extend(got);
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), JOBS, "every job claimed once");
    assert_eq!(unique.len(), JOBS, "no job claimed twice");
    assert!(
        by_claimer.values().all(|n| *n > 0),
        "both servers claimed: {by_claimer:?}"
    );
    for id in unique {
        let hist = b.claims(id).await.unwrap();
        assert_eq!(hist.len(), 1, "job {id}'s history: {hist:?}");
        assert_eq!(hist[0].lease, 1);
        let j = a.get(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Succeeded);
        assert_eq!(j.worker.as_deref(), Some(hist[0].worker.as_str()));
    }
}

type JobStoreName = &'static str;
