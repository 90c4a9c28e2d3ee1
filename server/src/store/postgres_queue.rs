//! The PostgreSQL store's queue: listing, matched claims (`FOR UPDATE SKIP LOCKED`), ends
//! (with or without a lease), heartbeats, requeues of silent workers' jobs and claim history.

use super::postgres::{get_job, job_row, jobs, pg, PgStore, JOB_COLS};
use super::postgres_records::{worker_row, WORKER_COLS};
use super::sqlite_workers::{cancelled_silent, fenced, silent_error};
use super::*;
use async_trait::async_trait;
use osimager_events::now_rfc3339;
use tokio_postgres::types::ToSql;

impl PgStore {
    pub(super) async fn list_db(&self, f: &JobFilter) -> StoreResult<JobPage> {
        let mut wh = Vec::new();
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if !f.states.is_empty() {
            let states: Vec<String> = f.states.iter().map(|s| s.as_str().to_string()).collect();
            args.push(Box::new(states));
            wh.push(format!("state = ANY(${})", args.len()));
        }
        if let Some(t) = &f.target {
            args.push(Box::new(format!(
                "%{}%",
                t.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )));
            wh.push(format!("lower(target) LIKE ${} ESCAPE '\\'", args.len()));
        }
        if let Some(s) = &f.since {
            args.push(Box::new(s.clone()));
            wh.push(format!("created_at >= ${}", args.len()));
        }
        if let Some(u) = &f.until {
            args.push(Box::new(u.clone()));
            wh.push(format!("created_at < ${}", args.len()));
        }
        let wh = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let c = self.client().await?;
        let total: i64 = c
            .query_one(&format!("SELECT count(*) FROM jobs {wh}"), &params)
            .await
            .map_err(pg("counting jobs"))?
            .get(0);
        let limit = f.limit.clamp(1, 1000);
        let rows = c
            .query(
                &format!(
                    "SELECT {JOB_COLS} FROM jobs {wh} ORDER BY id DESC LIMIT {limit} OFFSET {}",
                    f.offset
                ),
                &params,
            )
            .await
            .map_err(pg("listing jobs"))?;
        Ok(JobPage {
            items: jobs(&rows)?,
            total: total as u64,
        })
    }

    pub(super) async fn finish_db(
        &self,
        id: JobId,
        lease: Option<u64>,
        end: JobEnd,
    ) -> StoreResult<Option<Job>> {
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
        let (cond, lease) = match lease {
            Some(l) => ("lease = $6::bigint AND state = 'running'", l as i64),
            None => ("$6::bigint >= 0 AND state IN ('queued', 'running')", 0),
        };
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "UPDATE jobs SET state = $2, finished_at = $3, error = $4, output_dir = $5 \
                     WHERE id = $1 AND {cond} RETURNING {JOB_COLS}"
                ),
                &[
                    &id,
                    &end.state.as_str(),
                    &now_rfc3339(),
                    &error,
                    &end.output_dir,
                    &lease,
                ],
            )
            .await
            .map_err(pg("finishing a job"))?;
        row.as_ref().map(job_row).transpose()
    }
}

#[async_trait]
impl WorkerStore for PgStore {
    async fn claim_for(&self, spec: &ClaimSpec) -> StoreResult<Option<Job>> {
        let any = spec.can.is_none();
        let can = spec.can.clone().unwrap_or_default();
        let labels = serde_json::to_value(&can.labels)
            .map_err(|e| StoreError::Db(format!("encoding labels: {e}")))?;
        let now = now_rfc3339();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("claiming a job"))?;
        let row = tx
            .query_opt(
                &format!(
                    "WITH next AS ( \
                       SELECT id AS next_id FROM jobs WHERE state = 'queued' AND (($1 AND labels = '{{}}') OR ( \
                         ((engine IN ('native', 'auto') AND platform = ANY($2)) \
                          OR (engine IN ('packer', 'auto') AND platform = ANY($3))) \
                         AND labels <@ $4)) \
                       ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     UPDATE jobs SET state = 'running', started_at = $5, worker = $6, \
                       lease = lease + 1, heartbeat_at = $5, step = NULL \
                     FROM next WHERE id = next.next_id RETURNING {JOB_COLS}"
                ),
                &[&any, &can.native, &can.packer, &labels, &now, &spec.worker],
            )
            .await
            .map_err(pg("claiming a job"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = job_row(&row)?;
        tx.execute(
            "INSERT INTO claims (job, lease, worker, claimed_at) VALUES ($1, $2, $3, $4)",
            &[&job.id, &(job.lease as i64), &spec.worker, &now],
        )
        .await
        .map_err(pg("claiming a job"))?;
        tx.commit().await.map_err(pg("claiming a job"))?;
        Ok(Some(job))
    }
    async fn heartbeat(&self, id: JobId, lease: u64) -> StoreResult<Job> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE jobs SET heartbeat_at = $3 WHERE id = $1 AND lease = $2 \
                     AND state = 'running' RETURNING {JOB_COLS}"
                ),
                &[&id, &(lease as i64), &now_rfc3339()],
            )
            .await
            .map_err(pg("recording a heartbeat"))?;
        match row {
            Some(r) => job_row(&r),
            None => Err(fenced(id, lease, get_job(&**c, id).await?.as_ref())),
        }
    }
    async fn requeue_silent(&self, cutoff: &str, max_claims: u64) -> StoreResult<Vec<Job>> {
        let mut c = self.client().await?;
        let tx = c
            .transaction()
            .await
            .map_err(pg("requeueing jobs of silent workers"))?;
        let silent = tx
            .query(
                "SELECT id, lease, worker, cancel_requested FROM jobs WHERE state = 'running' \
                 AND worker != $1 AND worker NOT LIKE $1 || ':%' AND heartbeat_at < $2 \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
                &[&crate::store::LOCAL_WORKER, &cutoff],
            )
            .await
            .map_err(pg("requeueing jobs of silent workers"))?;
        let now = now_rfc3339();
        let mut out = Vec::new();
        for r in silent {
            let (id, lease, worker, cancel): (JobId, i64, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let row = if cancel {
                tx.query_one(
                    &format!(
                        "UPDATE jobs SET state = 'cancelled', finished_at = $2, error = $3 \
                         WHERE id = $1 RETURNING {JOB_COLS}"
                    ),
                    &[&id, &now, &cancelled_silent(&worker)],
                )
                .await
            } else if (lease as u64) < max_claims {
                tx.query_one(
                    &format!(
                        "UPDATE jobs SET state = 'queued', worker = NULL, started_at = NULL, \
                         heartbeat_at = NULL WHERE id = $1 RETURNING {JOB_COLS}"
                    ),
                    &[&id],
                )
                .await
            } else {
                tx.query_one(
                    &format!(
                        "UPDATE jobs SET state = 'failed', finished_at = $2, error = $3 \
                         WHERE id = $1 RETURNING {JOB_COLS}"
                    ),
                    &[&id, &now, &silent_error(&worker, lease as u64)],
                )
                .await
            }
            .map_err(pg("requeueing jobs of silent workers"))?;
            out.push(job_row(&row)?);
        }
        let requeued = out.iter().any(|j| j.state == JobState::Queued);
        if requeued {
            tx.execute("NOTIFY osimager_queue", &[])
                .await
                .map_err(pg("requeueing jobs of silent workers"))?;
        }
        tx.commit()
            .await
            .map_err(pg("requeueing jobs of silent workers"))?;
        if requeued {
            self.queue_changed();
        }
        Ok(out)
    }
    async fn claims(&self, id: JobId) -> StoreResult<Vec<ClaimRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT lease, worker, claimed_at FROM claims WHERE job = $1 ORDER BY lease",
                &[&id],
            )
            .await
            .map_err(pg("reading claims"))?;
        Ok(rows
            .iter()
            .map(|r| ClaimRecord {
                job: id,
                lease: r.get::<_, i64>(0) as u64,
                worker: r.get(1),
                claimed_at: r.get(2),
            })
            .collect())
    }
    async fn finish_leased(&self, id: JobId, lease: u64, end: JobEnd) -> StoreResult<Job> {
        match self.finish_db(id, Some(lease), end).await? {
            Some(j) => Ok(j),
            None => {
                let j = self.get(id).await?;
                Err(super::sqlite_workers::fenced(id, lease, j.as_ref()))
            }
        }
    }
    async fn put_worker(&self, w: &WorkerInfo) -> StoreResult<WorkerInfo> {
        let caps = serde_json::to_string(&w.capabilities)
            .map_err(|e| StoreError::Db(format!("encoding capabilities: {e}")))?;
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO workers (name, capabilities, registered_at, last_seen) \
                     VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE SET \
                     capabilities = excluded.capabilities, last_seen = excluded.last_seen \
                     RETURNING {WORKER_COLS}"
                ),
                &[&w.name, &caps, &now_rfc3339()],
            )
            .await
            .map_err(pg("registering a worker"))?;
        worker_row(&row)
    }
    async fn touch_worker(&self, name: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE workers SET last_seen = $2 WHERE name = $1",
                &[&name, &now_rfc3339()],
            )
            .await
            .map_err(pg("recording a worker's heartbeat"))?;
        Ok(())
    }
    async fn workers(&self) -> StoreResult<Vec<WorkerInfo>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {WORKER_COLS} FROM workers ORDER BY name COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(pg("listing workers"))?;
        rows.iter().map(worker_row).collect()
    }
    async fn drop_silent_workers(&self, cutoff: &str) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "DELETE FROM workers WHERE last_seen < $1 RETURNING name",
                &[&cutoff],
            )
            .await
            .map_err(pg("dropping silent workers"))?;
        let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        names.sort();
        Ok(names)
    }
}
