//! `osimager serve`: the build service (crate `osimager-server`) with this crate's engine as
//! its backend. Behind the cargo feature `serve` (on by default); without it the CLI builds
//! alone.
//!
//! ```text
//! osimager serve [--listen ADDR] [--state-dir DIR] [--config FILE] [--jobs N] [--tls-cert F --tls-key F]
//! osimager serve token create [--worker] NAME | list | revoke NAME
//! osimager worker --server URL [--token T] [--labels k=v,…] [--concurrency N]
//! ```

mod backend;
mod catalog;
mod host;
mod job;
mod locations;
pub mod worker;

pub use backend::OsimagerBackend;

use clap::{Args, Subcommand};
use osimager_server::store::{RecordStore, SqliteStore};
use osimager_server::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Where the server keeps its state (shared by `serve` and `serve token`).
#[derive(Debug, Clone, Default, Args)]
pub struct StateArgs {
    /// State directory: job store, build work dirs, screenshots (default:
    /// $XDG_STATE_HOME/osimager, or the settings file's state_dir)
    #[arg(long, value_name = "DIR", env = "OSIMAGER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Server settings (TOML: listen, state_dir, jobs, tls, cors_origins, …; see
    /// docs/SERVICE.md)
    #[arg(long, value_name = "FILE", env = "OSIMAGER_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `osimager serve`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub action: Option<ServeAction>,
    #[command(flatten)]
    pub state: StateArgs,
    /// Address and port (default 127.0.0.1:8000). Any non-loopback address requires tokens
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Builds at once (default: one per two cores and per 2 GiB of free memory)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require tokens even on a loopback address
    #[arg(long)]
    pub require_auth: bool,
    /// Do not build here: only remote workers (`osimager worker`) run builds
    #[arg(long)]
    pub no_local_worker: bool,
}

#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Manage the API tokens of the service (stored hashed in its state dir)
    #[command(
        after_help = "Examples:\n  osimager serve token create ci\n  osimager serve token list\n  osimager serve token revoke ci"
    )]
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Run one build for the service (internal: the service starts it, spec on stdin)
    #[command(hide = true)]
    RunJob {
        #[arg(long)]
        work_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token; it is printed once and only its hash is kept
    Create {
        name: String,
        /// A worker token (`osimager worker`): it only claims jobs, reports its own jobs and
        /// uploads their artifacts; NAME is the worker's name
        #[arg(long)]
        worker: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List tokens (names, ids, when made and last used)
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove a token (by name or id); requests with it fail at once
    Revoke {
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

impl TokenAction {
    fn state(&self) -> &StateArgs {
        match self {
            TokenAction::Create { state, .. }
            | TokenAction::List { state }
            | TokenAction::Revoke { state, .. } => state,
        }
    }
}

fn settings(state: &StateArgs) -> Result<ServerConfig, String> {
    let mut cfg = match &state.config {
        Some(f) => ServerConfig::load(f).map_err(|e| e.to_string())?,
        None => ServerConfig::default(),
    };
    if let Some(d) = &state.state_dir {
        cfg.state_dir = d.clone();
    }
    Ok(cfg)
}

pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSIMAGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Run `osimager serve …`.
pub fn main(args: ServeArgs, data_dir: Option<PathBuf>) -> ExitCode {
    match args.action {
        Some(ServeAction::RunJob { work_dir }) => {
            init_logging("warn");
            job::run_job(work_dir, data_dir)
        }
        Some(ServeAction::Token { action }) => match token(action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        None => {
            init_logging("info");
            match serve(args, data_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn token(action: TokenAction) -> Result<(), String> {
    let cfg = settings(action.state())?;
    let store = SqliteStore::open(&cfg.database()).map_err(|e| e.to_string())?;
    runtime()?.block_on(async move {
        match action {
            TokenAction::Create { name, worker, .. } => {
                if worker && osimager_server::store::is_local_worker(&name) {
                    return Err(format!(
                        "'{name}' is reserved for the servers' own runners ('local', \
                         'local:…'): choose another worker name"
                    ));
                }
                let t = osimager_server::auth::new_token();
                let role = if worker {
                    osimager_server::store::TokenRole::Worker
                } else {
                    osimager_server::store::TokenRole::Api
                };
                let info = store
                    .create_token_as(&name, &osimager_server::auth::hash_token(&t), role)
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "token '{}' (id {}) created; it is shown only now — keep it somewhere safe:",
                    info.name, info.id
                );
                println!("{t}");
            }
            TokenAction::List { .. } => {
                let list = store.tokens().await.map_err(|e| e.to_string())?;
                if list.is_empty() {
                    eprintln!("no tokens; `osimager serve token create NAME` makes one");
                }
                for t in list {
                    println!(
                        "{:<14} {:<20} {:<6} created {}  last used {}",
                        t.id,
                        t.name,
                        t.role.as_str(),
                        t.created_at,
                        t.last_used.as_deref().unwrap_or("never")
                    );
                }
            }
            TokenAction::Revoke { name, .. } => {
                store.revoke_token(&name).await.map_err(|e| e.to_string())?;
                eprintln!("token '{name}' revoked");
            }
        }
        Ok(())
    })
}

fn serve(args: ServeArgs, data_dir: Option<PathBuf>) -> Result<(), String> {
    let mut cfg = settings(&args.state)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if args.jobs.is_some() {
        cfg.jobs = args.jobs;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        cfg.tls = Some(osimager_server::config::TlsConfig { cert, key });
    }
    cfg.require_auth |= args.require_auth;
    if args.no_local_worker {
        cfg.local_worker = false;
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let backend = Arc::new(OsimagerBackend { data_dir, exe });
    runtime()?.block_on(async move {
        let running = osimager_server::start(cfg, backend)
            .await
            .map_err(|e| e.to_string())?;
        // Printed for scripts and tests that asked for port 0.
        println!("listening on {}", running.addr());
        let stop = running.stop_token();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping: running builds are stopped and cleaned up");
            stop.cancel();
        });
        running.wait().await;
        Ok(())
    })
}
