//! The server's own settings: `--config FILE` (TOML), then command-line overrides.
//!
//! ```toml
//! listen = "127.0.0.1:8000"          # any non-loopback address requires tokens
//! state_dir = "/var/lib/osimager"    # job store, build work dirs, screenshots
//! jobs = 2                           # builds at once (default: from cores and memory)
//! heartbeat_secs = 15                # WebSocket heartbeat
//! body_limit = 1048576               # largest request body, bytes
//! require_auth = false               # true: tokens even on loopback
//! cors_origins = []                  # e.g. ["https://ui.example.org"]; empty: no CORS
//! local_worker = true                # false: only remote workers (`osimager worker`) build
//! worker_timeout_secs = 120          # a remote job without heartbeat this long is requeued
//! worker_max_claims = 3              # … until it was claimed this many times; then failed
//! worker_forget_secs = 3600          # workers silent this long leave the list
//! postgres_url = "postgresql://osimager@db.example.org/osimager"  # job store in PostgreSQL
//!                                    # (several servers may share it); unset: SQLite
//! [tls]
//! cert = "/etc/osimager/tls/cert.pem"
//! key = "/etc/osimager/tls/key.pem"
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// TLS with a given certificate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Everything `osimager serve` is told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port.
    pub listen: SocketAddr,
    /// Where the job store and the builds' files live.
    pub state_dir: PathBuf,
    /// Builds at once; `None`: [`crate::scheduler::default_concurrency`].
    pub jobs: Option<usize>,
    /// Seconds between WebSocket heartbeats.
    pub heartbeat_secs: u64,
    /// Largest request body in bytes (larger: 413).
    pub body_limit: usize,
    /// Require tokens even on a loopback address.
    pub require_auth: bool,
    /// Origins allowed to call the API from a browser page of theirs. Empty: none.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS.
    pub tls: Option<TlsConfig>,
    /// Messages the global feed keeps for followers that reconnect.
    pub feed_capacity: usize,
    /// Seconds a stop waits for running builds to clean up.
    pub shutdown_grace_secs: u64,
    /// The server builds too (its local runner). False: only remote workers do.
    pub local_worker: bool,
    /// A remote worker's job whose heartbeat is older than this is requeued (or failed).
    pub worker_timeout_secs: u64,
    /// How many times a job may be claimed before a silent worker fails it for good.
    pub worker_max_claims: u64,
    /// Workers not heard from for this long are dropped from the list.
    pub worker_forget_secs: u64,
    /// Keep the job store in this PostgreSQL database (`OSIMAGER_POSTGRES_URL` overrides;
    /// prefer it or a `.pgpass` file to a password in the URL). Unset: SQLite in the state dir.
    pub postgres_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            state_dir: default_state_dir(),
            jobs: None,
            heartbeat_secs: 15,
            body_limit: 1 << 20,
            require_auth: false,
            cors_origins: Vec::new(),
            tls: None,
            feed_capacity: 100_000,
            shutdown_grace_secs: 60,
            local_worker: true,
            worker_timeout_secs: 120,
            worker_max_claims: 3,
            worker_forget_secs: 3600,
            postgres_url: None,
        }
    }
}

/// `$XDG_STATE_HOME/osimager`, else `~/.local/state/osimager`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("osimager");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join(".local/state/osimager")
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (with the key) and what to do.
    pub message: String,
}

impl ServerConfig {
    /// Read a TOML settings file; missing keys keep their defaults.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigFileError> {
        let err = |message: String| ConfigFileError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))
    }

    /// Tokens are required: a non-loopback address, or `require_auth`.
    pub fn auth_required(&self) -> bool {
        self.require_auth || !self.listen.ip().is_loopback()
    }

    /// The job store file.
    pub fn database(&self) -> PathBuf {
        self.state_dir.join("osimager.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_toml_with_defaults_and_names_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("server.toml");
        std::fs::write(
            &p,
            "listen = \"0.0.0.0:9000\"\njobs = 3\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n",
        )
        .unwrap();
        let c = ServerConfig::load(&p).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.jobs, Some(3));
        assert!(c.auth_required(), "off loopback");
        assert_eq!(c.heartbeat_secs, 15);
        assert_eq!(c.tls.unwrap().key, PathBuf::from("/k"));
        std::fs::write(&p, "listn = \"0.0.0.0:9000\"\n").unwrap();
        let e = ServerConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("listn") && e.contains("server.toml"), "{e}");
        assert!(!ServerConfig::default().auth_required());
    }
}
