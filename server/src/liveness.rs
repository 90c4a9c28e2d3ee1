//! Remote workers' liveness: jobs whose worker went silent are requeued (up to a number of
//! claims, then failed with the reason), and workers silent for long leave the list.

use crate::api::worker::RemoteRuns;
use crate::config::ServerConfig;
use crate::live::Hub;
use crate::store::{JobState, JobStore};
use crate::view::job_json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How silent is too silent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A job without a heartbeat this long is requeued.
    pub timeout: Duration,
    /// … until it was claimed this many times.
    pub max_claims: u64,
    /// A worker not heard from this long is dropped.
    pub forget: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Limits {
        Limits {
            timeout: Duration::from_secs(c.worker_timeout_secs.max(1)),
            max_claims: c.worker_max_claims.max(1),
            forget: Duration::from_secs(c.worker_forget_secs.max(1)),
        }
    }
}

fn ago(d: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - d).to_string()
}

/// One look: requeue or fail the jobs of silent workers, drop long-silent workers.
pub async fn sweep(store: &dyn JobStore, hub: &Hub, remote: &RemoteRuns, l: Limits) {
    match store.requeue_silent(&ago(l.timeout), l.max_claims).await {
        Ok(jobs) => {
            for j in jobs {
                remote.forget(j.id).await;
                hub.publish_job(j.id, &job_json(&j));
                match j.state {
                    JobState::Queued => tracing::warn!(
                        build = j.id,
                        "no heartbeat for {:?} from its worker: requeued",
                        l.timeout
                    ),
                    s => {
                        tracing::warn!(build = j.id, "its worker went silent: {}", s.as_str());
                        hub.remove(j.id);
                    }
                }
            }
        }
        Err(e) => tracing::error!("requeueing jobs of silent workers: {e}"),
    }
    match store.drop_silent_workers(&ago(l.forget)).await {
        Ok(names) => {
            for n in names {
                tracing::info!(
                    "worker '{n}' silent for {:?}: dropped from the list",
                    l.forget
                );
            }
        }
        Err(e) => tracing::error!("dropping silent workers: {e}"),
    }
}

/// Sweep every quarter of the timeout until `stop`.
pub async fn watch(
    store: Arc<dyn JobStore>,
    hub: Arc<Hub>,
    remote: Arc<RemoteRuns>,
    l: Limits,
    stop: CancellationToken,
) {
    let every = (l.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => sweep(&*store, &hub, &remote, l).await,
            _ = stop.cancelled() => return,
        }
    }
}
