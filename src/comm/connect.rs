//! Readiness polling and one connect + authenticate attempt.

use super::handler::Client;
use super::probe::{connect_banner, ProbeError};
use super::session::Session;
use super::{fmt_duration, CommError, SshConfig, WaitStage};
use crate::secret::redact;
use russh::client::{self, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
use russh::MethodKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why one attempt failed.
enum AttemptError {
    /// No SSH banner: refused, closed before the banner, or silent.
    Probe(ProbeError),
    /// Key exchange or the SSH transport failed.
    Handshake(String),
    /// Authentication rejected: methods tried, methods the server offers.
    Auth {
        tried: Vec<&'static str>,
        offered: String,
    },
}

/// Wait until SSH on `host:port` accepts our credentials, polling until `cfg.timeout`.
///
/// A closed port or a connection dropped before the SSH banner is retried every
/// `cfg.poll_interval`; an authentication rejection counts against `cfg.handshake_attempts`
/// and is retried after `cfg.auth_retry_delay`. A progress line (elapsed time, last error) is
/// logged every `cfg.progress_interval`.
pub async fn wait_ready(host: &str, port: u16, cfg: &SshConfig) -> Result<Session, CommError> {
    wait_ready_observed(host, port, cfg, &|m| tracing::info!("{m}")).await
}

/// [`wait_ready`], telling `note` when the SSH server first answers (its banner arrived; what
/// follows is the guest's key exchange and login check): a build log records the moment the
/// guest's sshd was detected apart from the moment the login succeeded.
pub async fn wait_ready_observed(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    note: &(dyn Fn(&str) + Sync),
) -> Result<Session, CommError> {
    cfg.validate()?;
    let key = load_key(cfg)?;
    let addr = format!("{host}:{port}");
    let start = Instant::now();
    let deadline = start + cfg.timeout;
    let mut last_report = start;
    let mut stage = WaitStage::NeverConnected;
    let mut last_error: String;
    let mut auth_failures = 0u32;
    let mut attempts = 0u64;
    // Did the last attempt hear from the guest's network (refusal, reset, an SSH server)?
    let mut net_answered = false;
    tracing::info!(
        "waiting for SSH on {addr} as {} (timeout {})",
        cfg.username,
        fmt_duration(cfg.timeout)
    );
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let result = attempt(host, port, cfg, key.clone(), remaining, net_answered, note).await;
        net_answered = match &result {
            Err(AttemptError::Probe(e)) => e.answered(),
            _ => true,
        };
        let pause = match result {
            Ok(session) => {
                tracing::info!(
                    "SSH ready on {addr} after {} ({attempts} attempt(s)); host key {} accepted (fresh guest: accept-and-record)",
                    fmt_duration(start.elapsed()),
                    session.host_key_fingerprint()
                );
                if let Some(path) = &cfg.known_hosts_file {
                    session.record_host_key(host, port, path)?;
                }
                return Ok(session);
            }
            Err(AttemptError::Probe(ProbeError::Refused(e) | ProbeError::Tcp(e))) => {
                last_error = e;
                cfg.poll_interval
            }
            Err(AttemptError::Probe(ProbeError::Closed(e) | ProbeError::Silent(e))) => {
                stage = stage.max(WaitStage::NoBanner);
                last_error = e;
                cfg.poll_interval
            }
            Err(AttemptError::Handshake(e)) => {
                stage = stage.max(WaitStage::Handshake);
                last_error = e;
                cfg.poll_interval.max(Duration::from_millis(500))
            }
            Err(AttemptError::Auth { tried, offered }) => {
                stage = stage.max(WaitStage::Handshake);
                auth_failures += 1;
                last_error = format!(
                    "authentication rejected (attempt {auth_failures} of {})",
                    cfg.handshake_attempts
                );
                tracing::warn!("SSH on {addr}: {last_error}");
                if auth_failures >= cfg.handshake_attempts {
                    return Err(CommError::AuthRejected {
                        addr,
                        user: cfg.username.clone(),
                        attempts: auth_failures,
                        tried: tried.join(", "),
                        offered,
                    });
                }
                cfg.auth_retry_delay
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(addr, start, stage, &last_error));
        }
        if now.duration_since(last_report) >= cfg.progress_interval {
            last_report = now;
            tracing::info!(
                "still waiting for SSH on {addr}: {} elapsed of {}, {attempts} attempt(s), last error: {}",
                fmt_duration(start.elapsed()),
                fmt_duration(cfg.timeout),
                redact(&last_error)
            );
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        // No attempt with a budget of nothing: its "timed out" would hide the real last error.
        if Instant::now() >= deadline {
            return Err(timed_out(addr, start, stage, &last_error));
        }
    }
}

fn timed_out(addr: String, start: Instant, stage: WaitStage, last_error: &str) -> CommError {
    CommError::Timeout {
        addr,
        waited: start.elapsed(),
        stage,
        last_error: redact(last_error),
        hint: stage.hint(),
    }
}

/// One attempt: connect, key exchange and authenticate, without retries. Useful to reconnect to
/// a guest already known to be up.
pub async fn connect_once(host: &str, port: u16, cfg: &SshConfig) -> Result<Session, CommError> {
    cfg.validate()?;
    let key = load_key(cfg)?;
    let addr = format!("{host}:{port}");
    let limit = cfg.banner_timeout + cfg.handshake_timeout;
    attempt(host, port, cfg, key, limit, false, &|_| {})
        .await
        .map_err(|e| match e {
            AttemptError::Auth { tried, offered } => CommError::AuthRejected {
                addr,
                user: cfg.username.clone(),
                attempts: 1,
                tried: tried.join(", "),
                offered,
            },
            AttemptError::Probe(
                ProbeError::Refused(m)
                | ProbeError::Tcp(m)
                | ProbeError::Closed(m)
                | ProbeError::Silent(m),
            )
            | AttemptError::Handshake(m) => CommError::Ssh {
                addr,
                context: "connect".into(),
                message: redact(&m),
            },
        })
}

fn load_key(cfg: &SshConfig) -> Result<Option<Arc<PrivateKey>>, CommError> {
    let Some(path) = &cfg.private_key_file else {
        return Ok(None);
    };
    russh::keys::load_secret_key(path, None)
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| CommError::Key {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

async fn attempt(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    key: Option<Arc<PrivateKey>>,
    remaining: Duration,
    net_answered: bool,
    note: &(dyn Fn(&str) + Sync),
) -> Result<Session, AttemptError> {
    let addr = format!("{host}:{port}");
    let banner = connect_banner(host, port, cfg, remaining, net_answered)
        .await
        .map_err(AttemptError::Probe)?;
    note(&format!(
        "SSH server answered on {addr} ({:.2} s after this connection was opened); authenticating as {}",
        banner.waited.as_secs_f64(),
        cfg.username
    ));
    let tcp = banner.tcp;
    let host_key = Arc::new(Mutex::new(None));
    let handler = Client {
        host_key: host_key.clone(),
    };
    let config = Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 8,
        ..Default::default()
    });
    let limit = remaining.min(cfg.handshake_timeout);
    let fut = async {
        let mut handle = client::connect_stream(config, tcp, handler)
            .await
            .map_err(|e| AttemptError::Handshake(format!("SSH handshake failed: {e}")))?;
        authenticate(&mut handle, cfg, key).await?;
        Ok::<_, AttemptError>(handle)
    };
    let handle = match tokio::time::timeout(limit, fut).await {
        Err(_) => {
            return Err(AttemptError::Handshake(format!(
                "SSH handshake/authentication did not finish within {}",
                fmt_duration(limit)
            )))
        }
        Ok(r) => r?,
    };
    let key = host_key.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(Session::new(
        handle,
        addr,
        cfg.username.clone(),
        cfg.pty,
        key,
    ))
}

async fn authenticate(
    handle: &mut client::Handle<Client>,
    cfg: &SshConfig,
    key: Option<Arc<PrivateKey>>,
) -> Result<(), AttemptError> {
    let err = |e: russh::Error| {
        AttemptError::Handshake(format!("SSH authentication exchange failed: {e}"))
    };
    let mut tried = Vec::new();
    let mut offered = String::from("unknown");
    let user = cfg.username.as_str();
    if let Some(key) = key {
        tried.push("publickey");
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(err)?
                .flatten()
                .or(Some(HashAlg::Sha256))
        } else {
            None
        };
        let r = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(err)?;
        match r {
            client::AuthResult::Success => return Ok(()),
            client::AuthResult::Failure {
                remaining_methods, ..
            } => offered = methods(&remaining_methods),
        }
    }
    if let Some(pw) = &cfg.password {
        tried.push("password");
        let r = handle
            .authenticate_password(user, pw.expose())
            .await
            .map_err(err)?;
        let remaining = match r {
            client::AuthResult::Success => return Ok(()),
            client::AuthResult::Failure {
                remaining_methods, ..
            } => remaining_methods,
        };
        offered = methods(&remaining);
        if remaining.contains(&MethodKind::KeyboardInteractive) {
            // Solaris, BSDs and PAM-only setups: answer every prompt with the password, as
            // Packer's communicator does.
            tried.push("keyboard-interactive");
            let mut r = handle
                .authenticate_keyboard_interactive_start(user, None)
                .await
                .map_err(err)?;
            for _ in 0..8 {
                match r {
                    KeyboardInteractiveAuthResponse::Success => return Ok(()),
                    KeyboardInteractiveAuthResponse::Failure { .. } => break,
                    KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                        let answers = prompts.iter().map(|_| pw.expose().to_string()).collect();
                        r = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await
                            .map_err(err)?;
                    }
                }
            }
        }
    }
    Err(AttemptError::Auth { tried, offered })
}

fn methods(set: &russh::MethodSet) -> String {
    let names: Vec<&str> = set.iter().map(<&str>::from).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
