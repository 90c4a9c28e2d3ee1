//! SSH communicator: wait for a freshly installed guest's sshd, run commands, upload files.
//!
//! Built on russh. What it does differently from Packer's communicator:
//! * readiness polling is cheap and fast: a closed port fails with `ConnectionRefused` at once,
//!   a port that accepts TCP but closes before the SSH banner (QEMU's user-network forward while
//!   the guest's sshd is not up yet) is retried after [`SshConfig::poll_interval`] (100 ms), so
//!   a connection reaches sshd within about 100 ms of it listening (what follows, the banner
//!   and the login, runs at the guest's pace: docs/BENCHMARKS.md); a forward that accepts and
//!   then stays silent (guest network not up yet) gets fresh probes, spaced out so as not to
//!   load the booting guest (`probe.rs`), instead of blocking for the whole banner timeout;
//! * every connect + key exchange + authentication attempt is bounded by a timeout (russh has
//!   none of its own);
//! * like Packer, only authentication rejections count against `ssh_handshake_attempts`; the
//!   final error says which it was: timeout (with the last error), credentials rejected, or
//!   handshake failures;
//! * passwords are [`Secret`](crate::secret::Secret)s and every output line and logged command
//!   goes through [`redact`](crate::secret::redact).
//!
//! Host keys: **accept and record**. The guests are installed moments before from installer
//! media by this very build, so there is no prior host key to verify against; a man in the
//! middle on the loopback forward would need local access already. The key is accepted, its
//! SHA256 fingerprint logged, exposed by [`Session::host_key_fingerprint`] and, when
//! [`SshConfig::known_hosts_file`] is set, appended there in `known_hosts` format.

mod config;
mod connect;
mod handler;
mod probe;
mod session;

pub(crate) use config::truthy;
pub use config::{parse_duration, SshConfig};
pub use connect::{connect_once, wait_ready, wait_ready_observed};
pub use session::{ExitStatus, OutputStream, Session};

use std::time::Duration;

/// Errors of the SSH communicator. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum CommError {
    #[error("communicator setting {key}: {message}")]
    Config { key: String, message: String },

    #[error("cannot use SSH private key {path}: {message} (ssh_private_key_file must be an unencrypted OpenSSH/PEM private key)")]
    Key { path: String, message: String },

    #[error("timed out after {} waiting for SSH on {addr}: {stage}; last error: {last_error}. {hint}", fmt_duration(*waited))]
    Timeout {
        addr: String,
        waited: Duration,
        stage: WaitStage,
        last_error: String,
        hint: &'static str,
    },

    #[error("SSH server {addr} rejected the credentials of user {user:?} {attempts} time(s) (tried: {tried}; server offers: {offered}). Check ssh_username, ssh_password and ssh_private_key_file (ssh_handshake_attempts = {attempts})")]
    AuthRejected {
        addr: String,
        user: String,
        attempts: u32,
        tried: String,
        offered: String,
    },

    #[error("SSH {context} on {addr}: {message}")]
    Ssh {
        addr: String,
        context: String,
        message: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// How far the wait for SSH got before it timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitStage {
    /// The TCP port never accepted a connection.
    NeverConnected,
    /// TCP connections were accepted but closed before an SSH banner arrived.
    NoBanner,
    /// The server spoke SSH but key exchange or authentication never completed.
    Handshake,
}

impl std::fmt::Display for WaitStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitStage::NeverConnected => "the port never accepted a TCP connection",
            WaitStage::NoBanner => "TCP connections were accepted but no SSH server answered",
            WaitStage::Handshake => "an SSH server answered but the handshake never completed",
        })
    }
}

impl WaitStage {
    pub(crate) fn hint(self) -> &'static str {
        match self {
            WaitStage::NeverConnected => "Is the VM running and the SSH port forwarded? Raise ssh_timeout if the installer is slow.",
            WaitStage::NoBanner => "The guest's sshd is not up yet (or the install failed); raise ssh_timeout if the installer is slow, or watch the console.",
            WaitStage::Handshake => "Check the guest's sshd configuration (key exchange algorithms, MaxStartups) and the credentials.",
        }
    }
}

/// `1m30s`, `2.5s`, `250ms`: short human form used in messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if h == 0 && m == 0 {
        out.push_str(&format!("{:.1}s", d.as_secs_f64()));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Quote a string for a POSIX shell (single quotes; `'` becomes `'"'"'`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
    }
}
