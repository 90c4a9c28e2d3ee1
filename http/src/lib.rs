//! Embedded HTTP server for osimager builds.
//!
//! Installers fetch their answer files (kickstart, preseed, autoinstall, …) over HTTP from the
//! host. This crate serves, in order of precedence:
//!
//! 1. `http_content`: an in-memory map `path → text` (Packer's `http_content`),
//! 2. generated files: an explicit map `path → local file` (files osimager generated for the build),
//! 3. `http_directory`: a directory tree, served through tower-http's `ServeDir`.
//!
//! All three answer `GET` and `HEAD`, honour `Range` (206 / 416), `If-Range`, `ETag` /
//! `If-None-Match` and `Last-Modified` / `If-Modified-Since`. Paths that try to leave the root
//! (`..`, `%2e%2e`, backslashes, NUL bytes, symlinks pointing outside the directory) are refused.
//!
//! The server binds to `127.0.0.1` unless told otherwise: answer files carry passwords, and
//! Packer's habit of listening on `0.0.0.0` exposed them to the network (hashicorp/packer#6539).
//! The port is chosen by binding for real inside `[port_min, port_max]` and the listener is kept,
//! so two builds started at once cannot pick the same port (hashicorp/packer#5846).
//!
//! Hostile clients are cut off (`serve.rs`): a request head must arrive within
//! [`HEADER_READ_TIMEOUT`] (slow and idle clients), heads are limited in size, and at most
//! [`MAX_CONNECTIONS`] connections are served at once.

mod guard;
mod handler;
mod respond;
mod serve;

pub use serve::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What to serve and where to listen.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to bind (`http_bind_address`). Default `127.0.0.1`.
    pub bind_address: IpAddr,
    /// Inclusive port range to pick from (`http_port_min` / `http_port_max`). Default 8000–9000.
    pub port_min: u16,
    pub port_max: u16,
    /// `http_directory`: served as a tree.
    pub directory: Option<PathBuf>,
    /// `http_content`: URL path (with or without leading `/`) → file content.
    pub content: BTreeMap<String, String>,
    /// Generated files: URL path (with or without leading `/`) → local file, read per request.
    pub files: BTreeMap<String, PathBuf>,
    /// Also send each request line (`METHOD PATH STATUS BYTES`) here (e.g. a build log);
    /// lines always go to `tracing` too.
    pub on_request: Option<RequestLog>,
}

/// A receiver of request log lines.
#[derive(Clone)]
pub struct RequestLog(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog(..)")
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 8000,
            port_max: 9000,
            directory: None,
            content: BTreeMap::new(),
            files: BTreeMap::new(),
            on_request: None,
        }
    }
}

/// Errors starting the server. Each says which address, range or directory was involved.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "http_port_min ({min}) is greater than http_port_max ({max}): fix the builder settings"
    )]
    BadRange { min: u16, max: u16 },
    #[error(
        "no free port on {addr} in {min}-{max}: every port is in use; widen http_port_min/http_port_max"
    )]
    NoFreePort { addr: IpAddr, min: u16, max: u16 },
    #[error("cannot listen on {addr}: {source} (check http_bind_address)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("http_directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running server. Dropping it asks the server to stop; [`HttpServer::shutdown`] also waits.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Shared state of the request handler.
#[derive(Debug)]
pub(crate) struct Site {
    /// Canonical http_directory, if any.
    pub root: Option<PathBuf>,
    pub content: BTreeMap<String, Arc<[u8]>>,
    pub files: BTreeMap<String, PathBuf>,
    pub on_request: Option<RequestLog>,
}

fn normalize_key(k: &str) -> String {
    k.trim_start_matches('/').to_string()
}

impl HttpServer {
    /// Bind inside the configured port range and start serving in the background.
    pub async fn start(cfg: HttpConfig) -> Result<HttpServer, HttpError> {
        let root = match &cfg.directory {
            Some(d) => {
                let canon = std::fs::canonicalize(d).map_err(|source| HttpError::Directory {
                    path: d.clone(),
                    source,
                })?;
                if !canon.is_dir() {
                    return Err(HttpError::Directory {
                        path: d.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotADirectory,
                            "not a directory",
                        ),
                    });
                }
                Some(canon)
            }
            None => None,
        };
        let site = Site {
            root,
            content: cfg
                .content
                .iter()
                .map(|(k, v)| (normalize_key(k), Arc::from(v.as_bytes())))
                .collect(),
            files: cfg
                .files
                .iter()
                .map(|(k, v)| (normalize_key(k), v.clone()))
                .collect(),
            on_request: cfg.on_request.clone(),
        };
        let listener = bind_in_range(cfg.bind_address, cfg.port_min, cfg.port_max).await?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: SocketAddr::new(cfg.bind_address, cfg.port_min),
            source,
        })?;
        let app = handler::router(Arc::new(site));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::accept_loop(listener, app, rx, addr));
        tracing::info!(target: "osimager_http", "HTTP server listening on http://{addr}/");
        Ok(HttpServer {
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address (IP and the port actually chosen).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stop accepting, let in-flight requests finish (at most 5 s), then stop.
    pub async fn shutdown(mut self) {
        self.shutdown_in_place().await
    }

    /// Like [`HttpServer::shutdown`] but usable through `&mut` (e.g. from a cleanup stack).
    /// Idempotent.
    pub async fn shutdown_in_place(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(6), &mut task)
                .await
                .is_err()
            {
                // A client holding a keep-alive connection open: stop waiting for it.
                task.abort();
            }
            tracing::info!(target: "osimager_http", "HTTP server on {} stopped", self.addr);
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Bind a listener on the first free port of the range, starting at a pseudo-random offset so
/// that concurrent builds spread out. The listener is returned and kept: no probe-then-release.
pub async fn bind_in_range(ip: IpAddr, min: u16, max: u16) -> Result<TcpListener, HttpError> {
    if min > max {
        return Err(HttpError::BadRange { min, max });
    }
    let span = u32::from(max - min) + 1;
    let start = random_u32() % span;
    for i in 0..span {
        let port = min + ((start + i) % span) as u16;
        let addr = SocketAddr::new(ip, port);
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            // Port 0 is allowed (OS picks) and other errors (address not local, permission
            // denied) will not get better with another port.
            Err(source) => return Err(HttpError::Bind { addr, source }),
        }
    }
    Err(HttpError::NoFreePort { addr: ip, min, max })
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish() as u32
}
