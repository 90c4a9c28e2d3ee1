//! The conformance suite every [`JobStore`] must pass. A store's own test gives a
//! [`Harness`] (how to make an empty store and how to reopen one) and calls [`run`]:
//!
//! ```no_run
//! # use osimager_server::store::{conformance, JobStore, SqliteStore};
//! # use std::sync::Arc;
//! // One store at a time: reopening opens the same file again.
//! struct Sqlite(std::path::PathBuf);
//! #[async_trait::async_trait]
//! impl conformance::Harness for Sqlite {
//!     async fn fresh(&self) -> Arc<dyn JobStore> {
//!         let _ = std::fs::remove_file(&self.0);
//!         Arc::new(SqliteStore::open(&self.0).unwrap())
//!     }
//!     async fn reopen(&self, old: Arc<dyn JobStore>) -> Arc<dyn JobStore> {
//!         drop(old);
//!         Arc::new(SqliteStore::open(&self.0).unwrap())
//!     }
//! }
//! # async fn f() { conformance::run(Arc::new(Sqlite("/tmp/x.db".into()))).await }
//! ```
//! (tests/store_sqlite.rs gives every check a file of its own, so they run side by side.)
//!
//! Each check runs in its own task; [`run`] reports every failing check, not just the first.

use super::*;
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use std::sync::Arc;

mod records;
mod workers;
use records::{events, files, tokens};

/// How the suite gets stores.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// An empty store of its own.
    async fn fresh(&self) -> Arc<dyn JobStore>;
    /// The same data opened anew, as after a server restart (`old` is dropped first).
    async fn reopen(&self, old: Arc<dyn JobStore>) -> Arc<dyn JobStore>;
}

type Check = fn(Arc<dyn Harness>) -> BoxFuture<'static, ()>;

/// Every check, by name.
pub fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("create_get", |h| Box::pin(create_get(h))),
        ("claim_priority_then_fifo", |h| Box::pin(claim_order(h))),
        ("claim_is_exclusive", |h| Box::pin(claim_exclusive(h))),
        ("finish_once", |h| Box::pin(finish_once(h))),
        ("cancel_queued_and_running", |h| Box::pin(cancel(h))),
        ("list_filters_and_pages", |h| Box::pin(list(h))),
        ("counts", |h| Box::pin(counts(h))),
        ("events_in_order_by_offset", |h| Box::pin(events(h))),
        ("artifacts_and_screenshots", |h| Box::pin(files(h))),
        ("delete_only_when_ended", |h| Box::pin(delete(h))),
        ("restart_keeps_history_marks_interrupted", |h| {
            Box::pin(restart(h))
        }),
        ("tokens", |h| Box::pin(tokens(h))),
        ("claims_match_platform_engine_labels", |h| {
            Box::pin(workers::matching(h))
        }),
        ("leases_fence_old_claims", |h| Box::pin(workers::leases(h))),
        ("silent_workers_jobs_requeued_then_failed", |h| {
            Box::pin(workers::requeue(h))
        }),
        ("queue_changes_wake_claimers", |h| {
            Box::pin(workers::wakeups(h))
        }),
        ("workers_registered_and_dropped", |h| {
            Box::pin(workers::registry(h))
        }),
    ]
}

/// Run every check; panic listing the ones that failed.
pub async fn run(h: Arc<dyn Harness>) {
    let mut failed = Vec::new();
    for (name, check) in checks() {
        if let Err(e) = tokio::spawn(check(h.clone())).await {
            let msg = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "cancelled".into());
            failed.push(format!("{name}: {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "store conformance failures:\n{}",
        failed.join("\n")
    );
}

pub(super) fn req(target: &str, priority: i32) -> NewJob {
    NewJob {
        request: JobRequest {
            target: TargetRef {
                target: target.into(),
                name: Some("web1".into()),
                ip: None,
                defines: vec!["memory=1024".into()],
            },
            engine: EngineChoice::Native,
            on_error: OnErrorChoice::Cleanup,
            force: false,
            dry_run: false,
            cache: Default::default(),
            priority,
            labels: Default::default(),
        },
        retry_of: None,
    }
}

pub(super) fn ev(seq: u64, kind: &str) -> StoredEvent {
    StoredEvent {
        seq,
        kind: kind.into(),
        json: format!(r#"{{"seq":{seq},"type":"{kind}"}}"#),
    }
}

pub(super) fn end(state: JobState) -> JobEnd {
    JobEnd {
        state,
        error: None,
        output_dir: Some("/out".into()),
    }
}

async fn create_get(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let a = s.create(req("qemu/lab/a-1-x86_64", 0)).await.unwrap();
    assert_eq!(a.state, JobState::Queued);
    assert_eq!(a.request, req("qemu/lab/a-1-x86_64", 0).request);
    assert!(a.started_at.is_none() && a.finished_at.is_none());
    assert!(
        a.created_at.ends_with('Z'),
        "created_at is RFC 3339 UTC: {}",
        a.created_at
    );
    let b = s.create(req("qemu/lab/b-1-x86_64", 0)).await.unwrap();
    assert!(b.id > a.id, "ids increase");
    assert_eq!(s.get(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get(b.id + 1000).await.unwrap(), None);
    let mut r = req("qemu/lab/a-1-x86_64", 0);
    r.retry_of = Some(a.id);
    assert_eq!(s.create(r).await.unwrap().retry_of, Some(a.id));
}

async fn claim_order(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let low1 = s.create(req("t/l/low1", 0)).await.unwrap();
    let high = s.create(req("t/l/high", 5)).await.unwrap();
    let low2 = s.create(req("t/l/low2", 0)).await.unwrap();
    let neg = s.create(req("t/l/neg", -1)).await.unwrap();
    let order: Vec<JobId> = [
        s.claim("w").await.unwrap(),
        s.claim("w").await.unwrap(),
        s.claim("w").await.unwrap(),
        s.claim("w").await.unwrap(),
    ]
    .into_iter()
    .map(|j| j.expect("a queued job").id)
    .collect();
    assert_eq!(order, vec![high.id, low1.id, low2.id, neg.id]);
    assert_eq!(s.claim("w").await.unwrap(), None);
    let j = s.get(high.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.worker.as_deref(), Some("w"));
    assert!(j.started_at.is_some());
}

async fn claim_exclusive(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    for i in 0..20 {
        s.create(req(&format!("t/l/{i}"), 0)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = s.claim(&format!("w{w}")).await.unwrap() {
                got.push(j.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 20, "every job claimed once: {all:?}");
    assert_eq!(unique.len(), 20, "no job claimed twice: {all:?}");
}

async fn finish_once(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let j = s.create(req("t/l/a", 0)).await.unwrap();
    s.claim("w").await.unwrap();
    s.set_step(j.id, "launch").await.unwrap();
    let err = osimager_events::ErrorInfo {
        kind: osimager_events::ErrorKind::Hypervisor,
        message: "QEMU exited".into(),
        step: Some("launch".into()),
    };
    let done = s
        .finish(
            j.id,
            JobEnd {
                state: JobState::Failed,
                error: Some(err.clone()),
                output_dir: None,
            },
        )
        .await
        .unwrap()
        .expect("finished");
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.error, Some(err));
    assert_eq!(done.step.as_deref(), Some("launch"));
    assert!(done.finished_at.is_some());
    assert_eq!(
        s.finish(j.id, end(JobState::Succeeded)).await.unwrap(),
        None
    );
    assert_eq!(s.get(j.id).await.unwrap().unwrap().state, JobState::Failed);
    s.set_step(j.id, "later").await.unwrap();
    assert_eq!(
        s.get(j.id).await.unwrap().unwrap().step.as_deref(),
        Some("launch")
    );
    assert!(s.finish(j.id, end(JobState::Running)).await.is_err());
}

async fn cancel(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let running = s.create(req("t/l/a", 1)).await.unwrap();
    let queued = s.create(req("t/l/b", 0)).await.unwrap();
    s.claim("w").await.unwrap();
    let q = s.cancel(queued.id).await.unwrap();
    assert_eq!(q.state, JobState::Cancelled);
    assert!(q.finished_at.is_some());
    assert_eq!(
        s.claim("w").await.unwrap(),
        None,
        "a cancelled job is never claimed"
    );
    let r = s.cancel(running.id).await.unwrap();
    assert_eq!(r.state, JobState::Running);
    assert!(r.cancel_requested);
    let r = s
        .finish(running.id, end(JobState::Cancelled))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(
        s.cancel(r.id).await.unwrap().state,
        JobState::Cancelled,
        "idempotent"
    );
    assert!(matches!(
        s.cancel(99_999).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn list(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let t = if i % 2 == 0 {
            "qemu/lab/debian-12-x86_64"
        } else {
            "vsphere/dc/RHEL-9-x86_64"
        };
        ids.push(s.create(req(t, 0)).await.unwrap().id);
    }
    s.claim("w").await.unwrap();
    let all = s
        .list(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.total, 7);
    let got: Vec<JobId> = all.items.iter().map(|j| j.id).collect();
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(got, want, "newest first");
    let page = s
        .list(&JobFilter {
            limit: 3,
            offset: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    assert_eq!(
        page.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        want[3..6].to_vec()
    );
    let rhel = s
        .list(&JobFilter {
            target: Some("rhel".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rhel.total, 3, "case-insensitive substring");
    let pct = s
        .list(&JobFilter {
            target: Some("%".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pct.total, 0, "LIKE wildcards are literal");
    let running = s
        .list(&JobFilter {
            states: vec![JobState::Running],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        running.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let two = s
        .list(&JobFilter {
            states: vec![JobState::Running, JobState::Queued],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(two.total, 7);
    let first = s.get(ids[0]).await.unwrap().unwrap();
    let future = s
        .list(&JobFilter {
            since: Some("2999-01-01T00:00:00.000Z".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(future.total, 0);
    let before = s
        .list(&JobFilter {
            until: Some(first.created_at.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.total, 0, "until is exclusive");
}

async fn counts(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    for i in 0..3 {
        s.create(req(&format!("t/l/{i}"), 0)).await.unwrap();
    }
    let j = s.claim("w").await.unwrap().unwrap();
    s.finish(j.id, end(JobState::Succeeded)).await.unwrap();
    s.claim("w").await.unwrap();
    let c = s.counts().await.unwrap();
    let get = |st: JobState| c.iter().find(|(s, _)| *s == st).map(|(_, n)| *n);
    assert_eq!(get(JobState::Queued), Some(1));
    assert_eq!(get(JobState::Running), Some(1));
    assert_eq!(get(JobState::Succeeded), Some(1));
    assert_eq!(get(JobState::Failed), Some(0), "every state is listed");
}

async fn delete(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let j = s.create(req("t/l/a", 0)).await.unwrap();
    assert!(
        matches!(s.delete(j.id).await, Err(StoreError::Conflict(_))),
        "queued"
    );
    s.claim("w").await.unwrap();
    assert!(
        matches!(s.delete(j.id).await, Err(StoreError::Conflict(_))),
        "running"
    );
    s.append_events(j.id, &[ev(0, "build_started")])
        .await
        .unwrap();
    s.put_artifact(
        j.id,
        &Artifact {
            name: "x".into(),
            path: "/x".into(),
            size: 1,
            sha256: None,
        },
    )
    .await
    .unwrap();
    s.finish(j.id, end(JobState::Succeeded)).await.unwrap();
    s.delete(j.id).await.unwrap();
    assert_eq!(s.get(j.id).await.unwrap(), None);
    assert!(s.events(j.id, 0, 10, &[]).await.unwrap().is_empty());
    assert!(s.artifacts(j.id).await.unwrap().is_empty());
    assert!(matches!(s.delete(j.id).await, Err(StoreError::NotFound(_))));
}

async fn restart(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let done = s.create(req("t/l/done", 2)).await.unwrap();
    let run = s.create(req("t/l/run", 1)).await.unwrap();
    let queued = s.create(req("t/l/queued", 0)).await.unwrap();
    let local = crate::store::LOCAL_WORKER;
    s.claim(local).await.unwrap();
    s.finish(done.id, end(JobState::Succeeded)).await.unwrap();
    s.claim(local).await.unwrap();
    let remote = s.create(req("t/l/remote", -5)).await.unwrap();
    s.append_events(run.id, &[ev(0, "build_started"), ev(1, "step_started")])
        .await
        .unwrap();
    let s = h.reopen(s).await;
    let interrupted = s.interrupt_running().await.unwrap();
    assert_eq!(
        interrupted.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![run.id]
    );
    let r = s.get(run.id).await.unwrap().unwrap();
    assert_eq!(r.state, JobState::Interrupted);
    assert!(r.finished_at.is_some());
    assert!(r.error.is_some(), "says why");
    assert_eq!(s.events(run.id, 0, 10, &[]).await.unwrap().len(), 2);
    assert_eq!(
        s.get(done.id).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        s.get(queued.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(s.claim("w").await.unwrap().map(|j| j.id), Some(queued.id));
    assert_eq!(s.claim("w2").await.unwrap().map(|j| j.id), Some(remote.id));
    let s = h.reopen(s).await;
    assert!(
        s.interrupt_running().await.unwrap().is_empty(),
        "remote workers' jobs outlive a server restart"
    );
    assert_eq!(
        s.get(remote.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    let next = s.create(req("t/l/next", 0)).await.unwrap();
    assert!(next.id > queued.id, "ids are never reused");
}
