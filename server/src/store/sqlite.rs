//! [`JobStore`] in one SQLite file (WAL: readers never wait for the writer; a crash loses at
//! most the transaction in flight). Calls run on tokio's blocking pool.

use super::*;
use osimager_events::now_rfc3339;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    target TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    step TEXT,
    error TEXT,
    output_dir TEXT,
    retry_of INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS events (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (job, name)
);
CREATE TABLE IF NOT EXISTS screenshots (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    file TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (job, idx)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used TEXT
);
";

/// Schema 2: workers (leases, heartbeats, labels, claim history, worker tokens).
const MIGRATION_2: &str = "
ALTER TABLE jobs ADD COLUMN platform TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN heartbeat_at TEXT;
UPDATE jobs SET platform = substr(target, 1, instr(target || '/', '/') - 1);
ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'api';
CREATE TABLE claims (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    lease INTEGER NOT NULL,
    worker TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (job, lease)
);
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    capabilities TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
";

/// The SQLite job store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    pub(super) queue: Arc<tokio::sync::watch::Sender<u64>>,
}

impl SqliteStore {
    /// Open (or create) the database file, in WAL mode, and bring its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let ctx = |what: &str, e: rusqlite::Error| {
            StoreError::Db(format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Db(format!(
                    "creating {}: {e} (check --state-dir and its permissions)",
                    dir.display()
                ))
            })?;
        }
        let mut conn = Connection::open(path).map_err(|e| ctx("opening", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| ctx("configuring", e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| ctx("switching to WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Db(format!(
                "{}: the file system refused WAL mode ({mode}); put the state dir on a local disk",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| ctx("configuring", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| ctx("creating the schema of", e))?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| ctx("reading", e))?;
        let version = match version.and_then(|v| v.parse::<i64>().ok()) {
            None => {
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')", [])
                    .map_err(|e| ctx("writing", e))?;
                1
            }
            Some(v) => v,
        };
        match version {
            v if v > SCHEMA_VERSION => {
                return Err(StoreError::Db(format!(
                    "{} has schema {v}, newer than this osimager understands ({SCHEMA_VERSION}); \
                     run the newer osimager or point --state-dir elsewhere",
                    path.display()
                )))
            }
            1 => {
                let tx = conn
                    .transaction()
                    .map_err(|e| ctx("migrating to schema 2", e))?;
                tx.execute_batch(MIGRATION_2)
                    .and_then(|_| {
                        tx.execute("UPDATE meta SET value = '2' WHERE key = 'schema'", [])
                    })
                    .and_then(|_| tx.commit())
                    .map_err(|e| ctx("migrating to schema 2", e))?;
            }
            _ => {}
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
            queue: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// Wake the claimers waiting in this process.
    pub(super) fn queue_changed(&self) {
        self.queue.send_modify(|n| *n += 1);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` with the connection on the blocking pool.
    pub(super) async fn with<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Db(format!("{what} in {}: {e}", path.display())))?
    }
}

pub(super) fn db(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Db(format!("{what}: {e}"))
}

pub(super) const JOB_COLS: &str = "id, state, request, created_at, started_at, finished_at, \
                        step, error, output_dir, retry_of, cancel_requested, worker, lease, \
                        heartbeat_at";

pub(super) fn job_row(r: &Row) -> rusqlite::Result<Job> {
    let state: String = r.get(1)?;
    let request: String = r.get(2)?;
    let error: Option<String> = r.get(7)?;
    let bad = |col: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.into())
    };
    Ok(Job {
        id: r.get(0)?,
        state: JobState::parse(&state).ok_or_else(|| bad(1, format!("unknown state {state}")))?,
        request: serde_json::from_str(&request).map_err(|e| bad(2, e.to_string()))?,
        created_at: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        step: r.get(6)?,
        error: match error {
            Some(e) => Some(serde_json::from_str(&e).map_err(|e| bad(7, e.to_string()))?),
            None => None,
        },
        output_dir: r.get(8)?,
        retry_of: r.get(9)?,
        cancel_requested: r.get::<_, i64>(10)? != 0,
        worker: r.get(11)?,
        lease: r.get::<_, i64>(12)? as u64,
        heartbeat_at: r.get(13)?,
    })
}

pub(super) fn get_job(c: &Connection, id: JobId) -> StoreResult<Option<Job>> {
    c.query_row(
        &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
        [id],
        job_row,
    )
    .optional()
    .map_err(db("reading a job"))
}

pub(super) fn token_row(r: &Row) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        last_used: r.get(3)?,
        role: TokenRole::parse(&r.get::<_, String>(4)?),
    })
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create(&self, new: NewJob) -> StoreResult<Job> {
        let request = serde_json::to_string(&new.request)
            .map_err(|e| StoreError::Db(format!("encoding a request: {e}")))?;
        self.with("queueing a job", move |c| {
            c.execute(
                "INSERT INTO jobs (state, priority, target, request, created_at, retry_of, platform) \
                 VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    new.request.priority,
                    new.request.target.target,
                    request,
                    now_rfc3339(),
                    new.retry_of,
                    new.request.platform(),
                ],
            )
            .map_err(db("queueing a job"))?;
            let id = c.last_insert_rowid();
            get_job(c, id)?.ok_or_else(|| StoreError::Db("a new job vanished".into()))
        })
        .await
        .inspect(|_| self.queue_changed())
    }

    async fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.with("reading a job", move |c| get_job(c, id)).await
    }

    async fn list(&self, f: &JobFilter) -> StoreResult<JobPage> {
        let f = f.clone();
        self.with("listing jobs", move |c| {
            let mut wh = Vec::new();
            let mut args: Vec<String> = Vec::new();
            if !f.states.is_empty() {
                let marks: Vec<String> = f
                    .states
                    .iter()
                    .map(|s| {
                        args.push(s.as_str().into());
                        format!("?{}", args.len())
                    })
                    .collect();
                wh.push(format!("state IN ({})", marks.join(",")));
            }
            if let Some(t) = &f.target {
                args.push(format!(
                    "%{}%",
                    t.to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                ));
                wh.push(format!("lower(target) LIKE ?{} ESCAPE '\\'", args.len()));
            }
            if let Some(s) = &f.since {
                args.push(s.clone());
                wh.push(format!("created_at >= ?{}", args.len()));
            }
            if let Some(u) = &f.until {
                args.push(u.clone());
                wh.push(format!("created_at < ?{}", args.len()));
            }
            let wh = if wh.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", wh.join(" AND "))
            };
            let total: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM jobs {wh}"),
                    params_from_iter(&args),
                    |r| r.get(0),
                )
                .map_err(db("counting jobs"))?;
            let limit = f.limit.clamp(1, 1000);
            let mut st = c
                .prepare(&format!(
                    "SELECT {JOB_COLS} FROM jobs {wh} ORDER BY id DESC LIMIT {limit} OFFSET {}",
                    f.offset
                ))
                .map_err(db("listing jobs"))?;
            let items = st
                .query_map(params_from_iter(&args), job_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("listing jobs"))?;
            Ok(JobPage {
                items,
                total: total as u64,
            })
        })
        .await
    }

    async fn counts(&self) -> StoreResult<Vec<(JobState, u64)>> {
        self.with("counting jobs", |c| {
            let mut st = c
                .prepare("SELECT state, count(*) FROM jobs GROUP BY state")
                .map_err(db("counting jobs"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("counting jobs"))?;
            Ok(JobState::ALL
                .into_iter()
                .map(|s| {
                    let n = rows
                        .iter()
                        .find(|(n, _)| n == s.as_str())
                        .map_or(0, |r| r.1);
                    (s, n as u64)
                })
                .collect())
        })
        .await
    }

    async fn set_step(&self, id: JobId, step: &str) -> StoreResult<()> {
        let step = step.to_string();
        self.with("recording a step", move |c| {
            c.execute(
                "UPDATE jobs SET step = ?2 WHERE id = ?1 AND state = 'running'",
                params![id, step],
            )
            .map_err(db("recording a step"))?;
            Ok(())
        })
        .await
    }

    async fn finish(&self, id: JobId, end: JobEnd) -> StoreResult<Option<Job>> {
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
                    "UPDATE jobs SET state = ?2, finished_at = ?3, error = ?4, output_dir = ?5 \
                     WHERE id = ?1 AND state IN ('queued', 'running')",
                    params![id, end.state.as_str(), now_rfc3339(), error, end.output_dir],
                )
                .map_err(db("finishing a job"))?;
            if n == 0 {
                return Ok(None);
            }
            get_job(c, id)
        })
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Job> {
        self.with("cancelling a job", move |c| {
            let tx = c.transaction().map_err(db("cancelling a job"))?;
            let error =
                serde_json::json!({"kind": "cancelled", "message": "cancelled before it started"})
                    .to_string();
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, error = ?3 \
                 WHERE id = ?1 AND state = 'queued'",
                params![id, now_rfc3339(), error],
            )
            .map_err(db("cancelling a job"))?;
            tx.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
                [id],
            )
            .map_err(db("cancelling a job"))?;
            let job = get_job(&tx, id)?;
            tx.commit().map_err(db("cancelling a job"))?;
            job.ok_or_else(|| StoreError::NotFound(format!("no build {id}")))
        })
        .await
    }

    async fn interrupt_running_of(&self, worker: &str) -> StoreResult<Vec<Job>> {
        let worker = worker.to_string();
        self.with("marking interrupted jobs", move |c| {
            let tx = c.transaction().map_err(db("marking interrupted jobs"))?;
            let ids: Vec<JobId> = {
                let mut st = tx
                    .prepare("SELECT id FROM jobs WHERE state = 'running' AND worker = ?1 ORDER BY id")
                    .map_err(db("marking interrupted jobs"))?;
                let ids = st
                    .query_map([&worker], |r| r.get(0))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(db("marking interrupted jobs"))?;
                ids
            };
            let error = serde_json::json!({
                "kind": "internal",
                "message": "the server stopped while this build ran; its processes and temp \
                            files were removed at the next start; retry it"
            })
            .to_string();
            let now = now_rfc3339();
            let mut out = Vec::new();
            for id in ids {
                tx.execute(
                    "UPDATE jobs SET state = 'interrupted', finished_at = ?2, error = ?3 WHERE id = ?1",
                    params![id, now, error],
                )
                .map_err(db("marking interrupted jobs"))?;
                out.extend(get_job(&tx, id)?);
            }
            tx.commit().map_err(db("marking interrupted jobs"))?;
            Ok(out)
        })
        .await
    }

    async fn delete(&self, id: JobId) -> StoreResult<()> {
        self.with("deleting a job", move |c| {
            let Some(job) = get_job(c, id)? else {
                return Err(StoreError::NotFound(format!("no build {id}")));
            };
            if !job.state.is_final() {
                return Err(StoreError::Conflict(format!(
                    "build {id} is {}: cancel it first, then delete it",
                    job.state.as_str()
                )));
            }
            c.execute("DELETE FROM jobs WHERE id = ?1", [id])
                .map_err(db("deleting a job"))?;
            Ok(())
        })
        .await
    }

    fn queue_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.queue.subscribe()
    }
}
