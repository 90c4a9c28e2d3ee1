//! Readiness polling and one connect + authenticate attempt.

use super::session::Session;
use super::{fmt_duration, CommError, SshConfig, WaitStage};
use crate::secret::redact;
use russh::client::{self, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::MethodKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// russh handler: accept-and-record host key policy (see the module documentation).
pub(crate) struct Client {
    host_key: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        *self.host_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.public_key());
        Ok(true)
    }
}

/// Why one attempt failed.
enum AttemptError {
    /// TCP connect failed (refused, unreachable, timed out).
    Tcp(String),
    /// TCP accepted, but the connection closed or stayed silent before the SSH banner.
    NoBanner(String),
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
    tracing::info!(
        "waiting for SSH on {addr} as {} (timeout {})",
        cfg.username,
        fmt_duration(cfg.timeout)
    );
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let pause = match attempt(host, port, cfg, key.clone(), remaining, note).await {
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
            Err(AttemptError::Tcp(e)) => {
                last_error = e;
                cfg.poll_interval
            }
            Err(AttemptError::NoBanner(e)) => {
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
    attempt(host, port, cfg, key, limit, &|_| {})
        .await
        .map_err(|e| match e {
            AttemptError::Auth { tried, offered } => CommError::AuthRejected {
                addr,
                user: cfg.username.clone(),
                attempts: 1,
                tried: tried.join(", "),
                offered,
            },
            AttemptError::Tcp(m) | AttemptError::NoBanner(m) | AttemptError::Handshake(m) => {
                CommError::Ssh {
                    addr,
                    context: "connect".into(),
                    message: redact(&m),
                }
            }
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

/// Silent connections kept open at once (OpenSSH's MaxStartups starts refusing at 10).
const MAX_PROBES: usize = 8;

/// A TCP connection on which the server has started to speak (its SSH banner is waiting).
///
/// An SSH server speaks first, so waiting for its banner distinguishes "port forwarded but
/// nobody home" from a real handshake problem, cheaply. A refused connection, or one closed
/// before the banner while no other probe waits, is reported at once (the caller polls again
/// shortly). A connection that stays silent (QEMU's forward while the guest's network is not up
/// yet: its SYN towards the guest goes unanswered and is only retried on the user-network
/// stack's own back-off) does not hold up detection: a fresh probe is started every
/// [`SshConfig::banner_probe_interval`] while earlier ones keep waiting (each up to
/// `banner_timeout`, so a slow sshd still gets through), and the first banner wins. Once a
/// probe is reset while others still wait (the guest's network is up, sshd is not), the next
/// probe follows after [`SshConfig::poll_interval`].
async fn connect_banner(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    remaining: Duration,
) -> Result<TcpStream, AttemptError> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let limit = remaining.min(cfg.banner_timeout);
    let deadline = tokio::time::Instant::now() + limit;
    let interval = cfg.banner_probe_interval.max(Duration::from_millis(50));
    let mut pending = FuturesUnordered::new();
    pending.push(probe(host, port, deadline));
    let mut next_probe = tokio::time::Instant::now() + interval;
    loop {
        tokio::select! {
            done = pending.next() => match done {
                Some(Ok(stream)) => return Ok(stream),
                // Refused: the port is closed, say so now. A probe closed before the banner
                // while others still wait (sshd's MaxStartups dropping one of ours) is not
                // the final word.
                Some(Err(e)) if pending.is_empty() || matches!(e, AttemptError::Tcp(_)) => return Err(e),
                // Closed before the banner while older probes still wait: the guest's network
                // answers now (its TCP stack reset us), so sshd may be seconds away or less.
                // Probe again at the poll cadence instead of the slow silent-probe one.
                Some(Err(_)) => {
                    next_probe = next_probe.min(tokio::time::Instant::now() + cfg.poll_interval);
                }
                None => return Err(AttemptError::NoBanner("no SSH banner".into())),
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(AttemptError::NoBanner(format!(
                    "no SSH banner within {}",
                    fmt_duration(limit)
                )))
            }
            _ = tokio::time::sleep_until(next_probe), if next_probe < deadline && pending.len() < MAX_PROBES => {
                tracing::debug!("no SSH banner yet on {host}:{port}; probing with a new connection");
                pending.push(probe(host, port, deadline));
                next_probe += interval;
            }
        }
    }
}

/// One TCP connection, waiting until `deadline` for the server's first bytes.
async fn probe(
    host: &str,
    port: u16,
    deadline: tokio::time::Instant,
) -> Result<TcpStream, AttemptError> {
    let connect = tokio::time::timeout_at(deadline, TcpStream::connect((host, port)));
    let tcp = match connect.await {
        Err(_) => return Err(AttemptError::Tcp("TCP connect timed out".into())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(AttemptError::Tcp("connection refused (port closed)".into()))
        }
        Ok(Err(e)) => return Err(AttemptError::Tcp(format!("TCP connect failed: {e}"))),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let mut buf = [0u8; 4];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
        // Silent until the deadline: `connect_banner` reports that itself.
        Err(_) => std::future::pending().await,
        Ok(Ok(0)) => Err(AttemptError::NoBanner(
            "connection closed before the SSH banner (sshd not up yet)".into(),
        )),
        Ok(Err(e)) => Err(AttemptError::NoBanner(format!(
            "connection failed before the SSH banner: {e}"
        ))),
        Ok(Ok(_)) => Ok(tcp),
    }
}

async fn attempt(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    key: Option<Arc<PrivateKey>>,
    remaining: Duration,
    note: &(dyn Fn(&str) + Sync),
) -> Result<Session, AttemptError> {
    let addr = format!("{host}:{port}");
    let tcp = connect_banner(host, port, cfg, remaining).await?;
    note(&format!(
        "SSH server answered on {addr}; authenticating as {}",
        cfg.username
    ));
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
