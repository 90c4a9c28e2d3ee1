//! Communicator settings read from the builder block (Packer's `ssh_*` keys) and Packer duration
//! strings.

use super::CommError;
use crate::secret::Secret;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// SSH communicator settings, Packer vocabulary.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// `ssh_host`: when set, connect here instead of the engine's forwarded address.
    pub host: Option<String>,
    /// `ssh_port`: the guest's SSH port (22). The engine usually connects to a forwarded port.
    pub port: u16,
    /// `ssh_username`.
    pub username: String,
    /// `ssh_password`.
    pub password: Option<Secret>,
    /// `ssh_private_key_file`.
    pub private_key_file: Option<PathBuf>,
    /// `ssh_timeout` (alias `ssh_wait_timeout`), default 5 minutes: total time to wait for SSH.
    pub timeout: Duration,
    /// `ssh_handshake_attempts`, default 10: authentication rejections tolerated before giving up.
    pub handshake_attempts: u32,
    /// `ssh_pty`: request a pseudo-terminal for every command.
    pub pty: bool,
    /// Pause between two connection attempts when the port is closed or the connection was
    /// dropped before SSH started (not a Packer key; small, so readiness is seen quickly).
    pub poll_interval: Duration,
    /// Pause after an authentication rejection (Packer waits 2 s so as not to hammer sshd).
    pub auth_retry_delay: Duration,
    /// How long to wait for the server's SSH banner after the TCP connection is accepted.
    pub banner_timeout: Duration,
    /// While a connection stays silent, open another one after this long, then after twice
    /// the previous gap (three times as long after a refusal or reset; see `probe.rs`).
    pub banner_probe_interval: Duration,
    /// Upper bound for key exchange + authentication of one attempt.
    pub handshake_timeout: Duration,
    /// Log a progress line this often while waiting.
    pub progress_interval: Duration,
    /// Where to record the accepted host key (`known_hosts` format), if anywhere.
    pub known_hosts_file: Option<PathBuf>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            host: None,
            port: 22,
            username: String::new(),
            password: None,
            private_key_file: None,
            timeout: Duration::from_secs(300),
            handshake_attempts: 10,
            pty: false,
            poll_interval: Duration::from_millis(100),
            auth_retry_delay: Duration::from_secs(2),
            banner_timeout: Duration::from_secs(10),
            banner_probe_interval: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_secs(30),
            known_hosts_file: None,
        }
    }
}

impl SshConfig {
    /// Read the `ssh_*` keys of a builder block. Unknown keys are ignored (they belong to the
    /// builder); malformed values are errors naming the key.
    pub fn from_builder(builder: &Map<String, Value>) -> Result<Self, CommError> {
        let mut c = SshConfig::default();
        if let Some(h) = str_key(builder, "ssh_host")? {
            if !h.is_empty() {
                c.host = Some(h);
            }
        }
        if let Some(p) = num_key(builder, "ssh_port")? {
            c.port = u16::try_from(p).map_err(|_| CommError::Config {
                key: "ssh_port".into(),
                message: format!("{p} is not a TCP port"),
            })?;
        }
        c.username = str_key(builder, "ssh_username")?.unwrap_or_default();
        if let Some(p) = str_key(builder, "ssh_password")? {
            if !p.is_empty() {
                c.password = Some(Secret::new(p));
            }
        }
        if let Some(k) = str_key(builder, "ssh_private_key_file")? {
            if !k.is_empty() {
                c.private_key_file = Some(PathBuf::from(k));
            }
        }
        for key in ["ssh_wait_timeout", "ssh_timeout"] {
            if let Some(t) = str_key(builder, key)? {
                c.timeout = parse_duration(&t).map_err(|message| CommError::Config {
                    key: key.into(),
                    message,
                })?;
            }
        }
        if let Some(n) = num_key(builder, "ssh_handshake_attempts")? {
            c.handshake_attempts = u32::try_from(n).unwrap_or(u32::MAX).max(1);
        }
        if let Some(v) = builder.get("ssh_pty") {
            c.pty = truthy(v).ok_or_else(|| CommError::Config {
                key: "ssh_pty".into(),
                message: format!("expected true or false, got {v}"),
            })?;
        }
        Ok(c)
    }

    /// Check that some way to authenticate is configured.
    pub fn validate(&self) -> Result<(), CommError> {
        if self.username.is_empty() {
            return Err(CommError::Config {
                key: "ssh_username".into(),
                message: "is empty; set ssh_username in the platform or spec".into(),
            });
        }
        if self.password.is_none() && self.private_key_file.is_none() {
            return Err(CommError::Config {
                key: "ssh_password".into(),
                message: "neither ssh_password nor ssh_private_key_file is set".into(),
            });
        }
        Ok(())
    }
}

fn str_key(m: &Map<String, Value>, key: &str) -> Result<Option<String>, CommError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(CommError::Config {
            key: key.into(),
            message: format!("expected a string, got {}", type_name(other)),
        }),
    }
}

fn num_key(m: &Map<String, Value>, key: &str) -> Result<Option<u64>, CommError> {
    let bad = |v: &Value| CommError::Config {
        key: key.into(),
        message: format!("expected a non-negative integer, got {v}"),
    };
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| bad(&m[key])),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(&m[key])),
        Some(v) => Err(bad(v)),
    }
}

/// Packer (Go mapstructure, weakly typed) booleans: true/false, "true"/"false", 1/0, "1"/"0".
pub(crate) fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" | "yes" => Some(true),
            "false" | "0" | "f" | "no" | "" => Some(false),
            _ => None,
        },
        Value::Null => Some(false),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A duration of a builder key (`ssh_timeout`, `pause_before`, …): the one rule of
/// [`osimager_drivers::bootcmd::parse_duration`] (Go syntax, or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    osimager_drivers::bootcmd::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h5m2s").unwrap(), Duration::from_secs(3902));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn builder_keys() {
        let b = json!({"type": "qemu", "ssh_username": "root", "ssh_password": "s3cret-pw",
            "ssh_port": "2200", "ssh_timeout": "1h", "ssh_handshake_attempts": 3, "ssh_pty": "true"});
        let c = SshConfig::from_builder(b.as_object().unwrap()).unwrap();
        assert_eq!(c.username, "root");
        assert_eq!(c.port, 2200);
        assert_eq!(c.timeout, Duration::from_secs(3600));
        assert_eq!(c.handshake_attempts, 3);
        assert!(c.pty);
        assert_eq!(c.password.as_ref().unwrap().expose(), "s3cret-pw");
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        c.validate().unwrap();

        let d = SshConfig::from_builder(json!({}).as_object().unwrap()).unwrap();
        assert_eq!(d.timeout, Duration::from_secs(300));
        assert_eq!(d.handshake_attempts, 10);
        assert!(d.validate().is_err());

        let e = SshConfig::from_builder(json!({"ssh_timeout": "soon"}).as_object().unwrap());
        assert!(e.unwrap_err().to_string().contains("ssh_timeout"));
    }
}
