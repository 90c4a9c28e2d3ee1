//! `GET /workers` (API token): who builds — the registered remote workers and this server's
//! own runner — with what each can build, its state, the builds it runs now and when it was
//! last heard from.

use super::{ApiError, AppState};
use crate::store::{JobId, JobState};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// The longest claim long-poll (`POST /worker/claim?wait=`, at most 60 s): an idle worker is
/// heard from at least this often, on top of the heartbeat timeout.
const LONGEST_POLL: Duration = Duration::from_secs(60);

/// `building` (runs a job), `idle`, or `silent` (not heard from for longer than the
/// heartbeat timeout plus the longest long poll: its jobs are being requeued; it is
/// dropped from the list after `worker_forget_secs`).
fn state(jobs: &[JobId], last_seen: &str, timeout: Duration) -> &'static str {
    let silent = humantime::parse_rfc3339_weak(last_seen)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|ago| ago > timeout + LONGEST_POLL);
    match (silent, jobs.is_empty()) {
        (true, _) => "silent",
        (false, false) => "building",
        (false, true) => "idle",
    }
}

pub async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let running = app
        .store
        .list(&crate::store::JobFilter {
            states: vec![JobState::Running],
            limit: 1000,
            ..Default::default()
        })
        .await?;
    let jobs_of = |name: &str| -> Vec<JobId> {
        running
            .items
            .iter()
            .filter(|j| j.worker.as_deref() == Some(name))
            .map(|j| j.id)
            .collect()
    };
    let mut items = Vec::new();
    if app.local_worker {
        let name = app.sched.name();
        let jobs = jobs_of(name);
        items.push(json!({
            "name": name,
            "local": true,
            "state": if jobs.is_empty() { "idle" } else { "building" },
            "capabilities": null,
            "concurrency": app.sched.concurrency(),
            "registered_at": null,
            "last_seen": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "jobs": jobs,
        }));
    }
    for w in app.store.workers().await? {
        let jobs = jobs_of(&w.name);
        items.push(json!({
            "name": w.name,
            "local": false,
            "state": state(&jobs, &w.last_seen, app.worker_timeout),
            "concurrency": w.capabilities.concurrency,
            "capabilities": w.capabilities,
            "registered_at": w.registered_at,
            "last_seen": w.last_seen,
            "jobs": jobs,
        }));
    }
    Ok(Json(json!({"items": items})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let t = Duration::from_secs(120);
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let old = humantime::format_rfc3339_millis(SystemTime::now() - Duration::from_secs(181))
            .to_string();
        assert_eq!(state(&[], &now, t), "idle");
        assert_eq!(state(&[4], &now, t), "building");
        assert_eq!(state(&[4], &old, t), "silent");
        assert_eq!(state(&[], &old, t), "silent");
    }
}
