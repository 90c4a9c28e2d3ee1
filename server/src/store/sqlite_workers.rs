//! The SQLite store's side of remote workers: matched claims, leases, heartbeats, requeues
//! of silent workers' jobs, claim history and the worker list.

use super::sqlite::{db, get_job, SqliteStore};
use super::*;
use async_trait::async_trait;
use osimager_events::now_rfc3339;
use rusqlite::params;

/// Why a silent worker's job failed once it ran out of retries.
pub(super) fn silent_error(worker: &str, claims: u64) -> String {
    serde_json::json!({
        "kind": "internal",
        "message": format!(
            "worker '{worker}' stopped sending heartbeats and the build was already tried \
             {claims} times; check the workers (`osimager serve` logs, the Workers page) \
             and retry it"
        ),
    })
    .to_string()
}

/// Why a cancelled job of a silent worker ended.
pub(super) fn cancelled_silent(worker: &str) -> String {
    serde_json::json!({
        "kind": "cancelled",
        "message": format!("cancelled; worker '{worker}' stopped answering before it confirmed"),
    })
    .to_string()
}

/// The `Conflict` of a report under a lease that no longer holds.
pub(super) fn fenced(id: JobId, lease: u64, job: Option<&Job>) -> StoreError {
    match job {
        None => StoreError::NotFound(format!("no build {id}")),
        Some(j) => StoreError::Conflict(format!(
            "build {id}: lease {lease} is no longer valid (the build is {} under lease {}, \
             worker {}); stop working on it",
            j.state.as_str(),
            j.lease,
            j.worker.as_deref().unwrap_or("-"),
        )),
    }
}

fn worker_row(r: &rusqlite::Row) -> rusqlite::Result<WorkerInfo> {
    let caps: String = r.get(1)?;
    Ok(WorkerInfo {
        name: r.get(0)?,
        capabilities: serde_json::from_str(&caps).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })?,
        registered_at: r.get(2)?,
        last_seen: r.get(3)?,
    })
}

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn claim_for(&self, spec: &ClaimSpec) -> StoreResult<Option<Job>> {
        let spec = spec.clone();
        self.with("claiming a job", move |c| {
            let tx = c.transaction().map_err(db("claiming a job"))?;
            let picked = {
                let mut st = tx
                    .prepare_cached(&format!(
                        "SELECT {} FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id",
                        super::sqlite::JOB_COLS
                    ))
                    .map_err(db("claiming a job"))?;
                let mut rows = st.query([]).map_err(db("claiming a job"))?;
                let mut picked = None;
                while let Some(r) = rows.next().map_err(db("claiming a job"))? {
                    let job = super::sqlite::job_row(r).map_err(db("claiming a job"))?;
                    if spec.can_run_job(&job) {
                        picked = Some(job);
                        break;
                    }
                }
                picked
            };
            let Some(job) = picked else { return Ok(None) };
            let now = now_rfc3339();
            let lease = job.lease as i64 + 1;
            tx.execute(
                "UPDATE jobs SET state = 'running', started_at = ?2, worker = ?3, lease = ?4, \
                 heartbeat_at = ?2, step = NULL WHERE id = ?1",
                params![job.id, now, spec.worker, lease],
            )
            .map_err(db("claiming a job"))?;
            tx.execute(
                "INSERT INTO claims (job, lease, worker, claimed_at) VALUES (?1, ?2, ?3, ?4)",
                params![job.id, lease, spec.worker, now],
            )
            .map_err(db("claiming a job"))?;
            let job = get_job(&tx, job.id)?;
            tx.commit().map_err(db("claiming a job"))?;
            Ok(job)
        })
        .await
    }

    async fn heartbeat(&self, id: JobId, lease: u64) -> StoreResult<Job> {
        self.with("recording a heartbeat", move |c| {
            let n = c
                .execute(
                    "UPDATE jobs SET heartbeat_at = ?3 WHERE id = ?1 AND lease = ?2 \
                     AND state = 'running'",
                    params![id, lease as i64, now_rfc3339()],
                )
                .map_err(db("recording a heartbeat"))?;
            let job = get_job(c, id)?;
            match job {
                Some(j) if n == 1 => Ok(j),
                j => Err(fenced(id, lease, j.as_ref())),
            }
        })
        .await
    }

    async fn finish_leased(&self, id: JobId, lease: u64, end: JobEnd) -> StoreResult<Job> {
        if !end.state.is_final() {
            return Err(StoreError::Conflict(format!(
                "finish job {id}: {} is not a final state",
                end.state.as_str()
            )));
        }
        let error = end
            .error
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Db(format!("encoding an error: {e}")))?;
        self.with("finishing a job", move |c| {
            let n = c
                .execute(
                    "UPDATE jobs SET state = ?3, finished_at = ?4, error = ?5, output_dir = ?6 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![
                        id,
                        lease as i64,
                        end.state.as_str(),
                        now_rfc3339(),
                        error,
                        end.output_dir
                    ],
                )
                .map_err(db("finishing a job"))?;
            let job = get_job(c, id)?;
            match job {
                Some(j) if n == 1 => Ok(j),
                j => Err(fenced(id, lease, j.as_ref())),
            }
        })
        .await
    }

    async fn requeue_silent(&self, cutoff: &str, max_claims: u64) -> StoreResult<Vec<Job>> {
        let cutoff = cutoff.to_string();
        let out = self
            .with("requeueing jobs of silent workers", move |c| {
                let tx = c
                    .transaction()
                    .map_err(db("requeueing jobs of silent workers"))?;
                let silent: Vec<(JobId, i64, String, bool)> = {
                    let mut st = tx
                        .prepare(
                            "SELECT id, lease, worker, cancel_requested FROM jobs \
                             WHERE state = 'running' \
                             AND worker != ?1 AND worker NOT LIKE ?1 || ':%' \
                             AND heartbeat_at < ?2 ORDER BY id",
                        )
                        .map_err(db("requeueing jobs of silent workers"))?;
                    let rows = st
                        .query_map(params![crate::store::LOCAL_WORKER, cutoff], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
                        })
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                        .map_err(db("requeueing jobs of silent workers"))?;
                    rows
                };
                let mut out = Vec::new();
                for (id, lease, worker, cancel) in silent {
                    if cancel {
                        tx.execute(
                            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, error = ?3 \
                             WHERE id = ?1",
                            params![id, now_rfc3339(), cancelled_silent(&worker)],
                        )
                    } else if (lease as u64) < max_claims {
                        tx.execute(
                            "UPDATE jobs SET state = 'queued', worker = NULL, started_at = NULL, \
                             heartbeat_at = NULL, cancel_requested = 0 WHERE id = ?1",
                            [id],
                        )
                    } else {
                        tx.execute(
                            "UPDATE jobs SET state = 'failed', finished_at = ?2, error = ?3 \
                             WHERE id = ?1",
                            params![id, now_rfc3339(), silent_error(&worker, lease as u64)],
                        )
                    }
                    .map_err(db("requeueing jobs of silent workers"))?;
                    out.extend(get_job(&tx, id)?);
                }
                tx.commit()
                    .map_err(db("requeueing jobs of silent workers"))?;
                Ok(out)
            })
            .await?;
        if out.iter().any(|j| j.state == JobState::Queued) {
            self.queue_changed();
        }
        Ok(out)
    }

    async fn claims(&self, id: JobId) -> StoreResult<Vec<ClaimRecord>> {
        self.with("reading claims", move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT lease, worker, claimed_at FROM claims WHERE job = ?1 ORDER BY lease",
                )
                .map_err(db("reading claims"))?;
            let rows = st
                .query_map([id], |r| {
                    Ok(ClaimRecord {
                        job: id,
                        lease: r.get::<_, i64>(0)? as u64,
                        worker: r.get(1)?,
                        claimed_at: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("reading claims"))?;
            Ok(rows)
        })
        .await
    }

    async fn put_worker(&self, w: &WorkerInfo) -> StoreResult<WorkerInfo> {
        let w = w.clone();
        let caps = serde_json::to_string(&w.capabilities)
            .map_err(|e| StoreError::Db(format!("encoding capabilities: {e}")))?;
        self.with("registering a worker", move |c| {
            let now = now_rfc3339();
            c.execute(
                "INSERT INTO workers (name, capabilities, registered_at, last_seen) \
                 VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO UPDATE SET \
                 capabilities = excluded.capabilities, last_seen = excluded.last_seen",
                params![w.name, caps, now],
            )
            .map_err(db("registering a worker"))?;
            c.query_row(
                "SELECT name, capabilities, registered_at, last_seen FROM workers WHERE name = ?1",
                [&w.name],
                worker_row,
            )
            .map_err(db("registering a worker"))
        })
        .await
    }

    async fn touch_worker(&self, name: &str) -> StoreResult<()> {
        let name = name.to_string();
        self.with("recording a worker's heartbeat", move |c| {
            c.execute(
                "UPDATE workers SET last_seen = ?2 WHERE name = ?1",
                params![name, now_rfc3339()],
            )
            .map_err(db("recording a worker's heartbeat"))?;
            Ok(())
        })
        .await
    }

    async fn workers(&self) -> StoreResult<Vec<WorkerInfo>> {
        self.with("listing workers", |c| {
            let mut st = c
                .prepare(
                    "SELECT name, capabilities, registered_at, last_seen FROM workers ORDER BY name",
                )
                .map_err(db("listing workers"))?;
            let rows = st
                .query_map([], worker_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("listing workers"))?;
            Ok(rows)
        })
        .await
    }

    async fn drop_silent_workers(&self, cutoff: &str) -> StoreResult<Vec<String>> {
        let cutoff = cutoff.to_string();
        self.with("dropping silent workers", move |c| {
            let names: Vec<String> = {
                let mut st = c
                    .prepare("SELECT name FROM workers WHERE last_seen < ?1 ORDER BY name")
                    .map_err(db("dropping silent workers"))?;
                let rows = st
                    .query_map([&cutoff], |r| r.get(0))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(db("dropping silent workers"))?;
                rows
            };
            c.execute("DELETE FROM workers WHERE last_seen < ?1", [&cutoff])
                .map_err(db("dropping silent workers"))?;
            Ok(names)
        })
        .await
    }
}
