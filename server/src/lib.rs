//! The osimager build service: a REST API (`/api/v1`, documented by
//! `/api/v1/openapi.json`), WebSocket build streams, a persistent job queue and history
//! ([`store`]), a local runner ([`scheduler`]) and the embedded web UI.
//!
//! The server does not link the build engine: it reaches it through the [`Backend`] trait,
//! which the `osimager` crate implements (feature `serve`), and tests implement with
//! [`fake::FakeBackend`]. Builds report through the typed event stream of `osimager-events`.
//!
//! ```no_run
//! # async fn f(backend: std::sync::Arc<dyn osimager_server::Backend>) -> Result<(), osimager_server::ServerError> {
//! use osimager_server::{ServerConfig, start};
//! let cfg = ServerConfig { state_dir: "/tmp/osimager-state".into(), ..Default::default() };
//! let running = start(cfg, backend).await?;
//! println!("listening on {}", running.addr());
//! running.wait().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod backend;
pub mod config;
pub mod fake;
pub mod files;
pub mod host;
pub mod live;
pub mod liveness;
pub mod reaper;
mod recorder;
pub mod scheduler;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod testing_pg;
mod tls;
pub mod ui;
pub mod view;
pub mod worker;
mod worker_upload;

pub use backend::Backend;
pub use config::ServerConfig;
pub use recorder::event_kind;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{JobStore, SqliteStore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The job store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The address could not be bound.
    #[error("listening on {addr}: {source} (is another `osimager serve` running there? choose another --listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Another server uses the state dir.
    #[error("{0}")]
    StateDir(String),
}

/// One server per state dir: two would each take the other's running builds for interrupted
/// ones. The lock is an flock(2) on `<state>/server.lock`, released when the process ends.
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::io::AsRawFd;
    let err = |m: String| ServerError::StateDir(m);
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("creating the state dir {}: {e}", dir.display())))?;
    let path = dir.join("server.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        return Err(err(format!(
            "another osimager serve (pid {}) uses the state dir {}; stop it or choose another --state-dir",
            pid.trim(),
            dir.display()
        )));
    }
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

/// A started server.
pub struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    sched: Arc<scheduler::Scheduler>,
    serving: JoinHandle<()>,
    grace: Duration,
    _lock: std::fs::File,
}

impl Running {
    /// The address it listens on (the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that stops the server when cancelled (e.g. on SIGTERM).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stop: no new connections, streams close, running builds are stopped and cleaned up
    /// (they end as `interrupted`), then return.
    pub async fn stop(self) {
        self.stop.cancel();
        self.finish().await;
    }

    /// Serve until the stop token is cancelled, then stop as [`Running::stop`] does.
    pub async fn wait(self) {
        self.stop.cancelled().await;
        self.finish().await;
    }

    async fn finish(self) {
        self.sched.shutdown(self.grace).await;
        let _ = tokio::time::timeout(self.grace, self.serving).await;
    }
}

/// Open the job store (PostgreSQL when `postgres_url` or `OSIMAGER_POSTGRES_URL` is set,
/// else SQLite under the state dir) and start serving.
pub async fn start(cfg: ServerConfig, backend: Arc<dyn Backend>) -> Result<Running, ServerError> {
    let pg = std::env::var("OSIMAGER_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| cfg.postgres_url.clone());
    if let Some(url) = pg {
        let store = store::PgStore::connect(&url).await?;
        return start_with_store(cfg, Arc::new(store), backend).await;
    }
    let db = cfg.database();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
        .await
        .map_err(|e| store::StoreError::Db(e.to_string()))??;
    start_with_store(cfg, Arc::new(store), backend).await
}

/// Start serving with a given store.
pub async fn start_with_store(
    cfg: ServerConfig,
    store: Arc<dyn JobStore>,
    backend: Arc<dyn Backend>,
) -> Result<Running, ServerError> {
    let lock = lock_state_dir(&cfg.state_dir)?;
    let acceptor = match &cfg.tls {
        Some(t) => Some(tls::acceptor(&t.cert, &t.key).map_err(ServerError::Tls)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: cfg.listen,
        source,
    })?;
    if cfg.auth_required() {
        if acceptor.is_none() && !cfg.listen.ip().is_loopback() {
            tracing::warn!(
                "listening on {addr} without TLS: tokens cross the network in clear text; \
                 give a certificate ([tls] cert/key in the server settings)"
            );
        }
        if store.tokens().await?.is_empty() {
            tracing::warn!(
                "tokens are required on {addr} and there is none yet: \
                 `osimager serve token create NAME` makes one"
            );
        }
    }
    let hub = Arc::new(live::Hub::new(cfg.feed_capacity));
    let jobs = cfg.jobs.unwrap_or_else(scheduler::default_concurrency);
    let sched = scheduler::Scheduler::new(
        store.clone(),
        backend.clone(),
        hub.clone(),
        cfg.state_dir.clone(),
        jobs,
    )
    .await?;
    let stop = CancellationToken::new();
    let state = api::AppState::new(&cfg, store, backend, hub, sched.clone(), stop.clone());
    let remote = state.remote.clone();
    let app = api::router(state.clone(), &cfg);
    if cfg.local_worker {
        tokio::spawn(sched.clone().run());
    }
    tokio::spawn(liveness::watch(
        state.store.clone(),
        state.hub.clone(),
        remote,
        liveness::Limits::from(&cfg),
        stop.clone(),
    ));
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    let stop2 = stop.clone();
    let serving = match acceptor {
        Some(acc) => tokio::spawn(tls::serve(listener, acc, app, stop2, grace)),
        None => tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop2.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!("serving: {e}");
            }
        }),
    };
    tracing::info!(
        "osimager serve: {}://{addr}/ ({} builds at once{})",
        if cfg.tls.is_some() { "https" } else { "http" },
        jobs,
        if cfg.auth_required() {
            ", tokens required"
        } else {
            ""
        }
    );
    Ok(Running {
        addr,
        stop,
        sched,
        serving,
        grace,
        _lock: lock,
    })
}
