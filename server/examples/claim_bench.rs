//! Claim throughput and latency of the job stores (bench/workers.sh runs it): for each store
//! (SQLite in a temp file; PostgreSQL started from Debian's package on loopback, and two
//! stores — two servers — on that one database), queue JOBS jobs, then W claimers (1, 4,
//! 16) each loop: claim (the worker protocol's matched claim, with capabilities), end the
//! job under its lease. Prints one row per store and W: jobs claimed per second, claim
//! latency p50/p99/max (ms), and checks no job was claimed twice.
//!
//! `cargo run --release -p osimager-server --features testing --example claim_bench [JOBS]`

use osimager_server::store::{
    Capabilities, ClaimSpec, JobEnd, JobState, JobStore, NewJob, PgStore, SqliteStore,
};
use osimager_server::testing_pg::TestPostgres;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn job(i: usize) -> NewJob {
    NewJob {
        request: serde_json::from_value(serde_json::json!({
            "target": format!("qemu/lab/bench-{i}"), "name": null, "ip": null, "defines": [],
        }))
        .unwrap(),
        retry_of: None,
    }
}

async fn round(stores: &[Arc<dyn JobStore>], jobs: usize, workers: usize) -> String {
    for i in 0..jobs {
        stores[0].create(job(i)).await.unwrap();
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let s = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let spec = ClaimSpec {
                worker: format!("w{w}"),
                can: Some(Capabilities {
                    native: vec!["qemu".into()],
                    ..Default::default()
                }),
            };
            let mut lat = Vec::new();
            let mut ids = Vec::new();
            loop {
                let t = Instant::now();
                let Some(j) = s.claim_for(&spec).await.unwrap() else {
                    break;
                };
                lat.push(t.elapsed());
                ids.push(j.id);
                s.finish_leased(
                    j.id,
                    j.lease,
                    JobEnd {
                        state: JobState::Succeeded,
                        error: None,
                        output_dir: None,
                    },
                )
                .await
                .unwrap();
            }
            (lat, ids)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        let (l, i) = t.await.unwrap();
        lat.extend(l);
        ids.extend(i);
    }
    let wall = t0.elapsed();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), jobs, "every job claimed");
    assert_eq!(unique.len(), jobs, "no job claimed twice");
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)]);
    format!(
        "{workers:>3} | {:>8.0} | {:>7.2} | {:>7.2} | {:>7.2}",
        jobs as f64 / wall.as_secs_f64(),
        p(0.5),
        p(0.99),
        ms(*lat.last().unwrap())
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let jobs: usize = std::env::args()
        .nth(1)
        .map_or(2000, |s| s.parse().expect("JOBS"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!("jobs per round: {jobs} (claim + end under the lease, per job)");
    println!("store | workers | claims/s | p50 ms | p99 ms | max ms");
    let dir = tempfile::tempdir().unwrap();
    for w in [1, 4, 16] {
        let s: Arc<dyn JobStore> =
            Arc::new(SqliteStore::open(&dir.path().join(format!("b{w}.db"))).unwrap());
        println!("sqlite | {}", round(&[s], jobs, w).await);
    }
    let pg = TestPostgres::start();
    for w in [1, 4, 16] {
        let url = pg.new_database().await;
        let s: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        println!("postgres | {}", round(&[s], jobs, w).await);
    }
    for w in [4, 16] {
        let url = pg.new_database().await;
        let a: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        let b: Arc<dyn JobStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        println!("postgres, 2 servers | {}", round(&[a, b], jobs, w).await);
    }
}
