//! Finding the SSH server's banner on a port that may be QEMU's user-network forward.
//!
//! An SSH server speaks first, so waiting for its banner distinguishes "port forwarded but
//! nobody home" from a real handshake problem, cheaply. What a probe connection sees:
//! * refused: nothing listens (a bridged guest whose sshd is not up);
//! * accepted, then closed before the banner: QEMU's forward with the guest's network up and
//!   port 22 closed (the guest's TCP stack reset QEMU's connection);
//! * accepted, then silent: the forward while the guest's network is down (QEMU's SYN towards
//!   the guest goes unanswered and is retried on QEMU's own back-off), *or* a guest sshd that
//!   accepted and is still starting the process that will send the banner.
//!
//! A silent probe is never wasted on the host but costs the guest: QEMU keeps retrying its SYN
//! for over a minute even after our side closed (it does not watch a forward's host socket
//! until the guest connection is established), so every silent probe opened while the guest's
//! network is down later reaches sshd and makes it start a process for a connection that is
//! already gone, on a guest that is still booting (seen on TCG: five such connections and the
//! banner 1.5 s after sshd listened). Hence the cadence below: silent probes are spaced out,
//! doubling from [`SshConfig::banner_probe_interval`], and when the previous attempt showed the
//! guest's network answering, the first extra probe waits three intervals, because a silent
//! connection then most likely is sshd starting up.

use super::{fmt_duration, SshConfig};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Silent connections kept open at once (OpenSSH's MaxStartups starts refusing at 10).
const MAX_PROBES: usize = 8;

/// Why no banner was found.
pub(super) enum ProbeError {
    /// Connection refused: nothing listens, but the host answered.
    Refused(String),
    /// TCP connect failed otherwise (unreachable, timed out).
    Tcp(String),
    /// Accepted, then closed or failed before the banner: something answers, sshd is not up.
    Closed(String),
    /// Accepted and silent until the deadline.
    Silent(String),
}

impl ProbeError {
    /// The guest's network stack answered (refusal or reset), as opposed to silence.
    pub(super) fn answered(&self) -> bool {
        match self {
            ProbeError::Refused(_) | ProbeError::Closed(_) => true,
            ProbeError::Tcp(_) | ProbeError::Silent(_) => false,
        }
    }
}

/// A TCP connection on which the server has started to speak (its SSH banner is waiting).
pub(super) struct Banner {
    pub tcp: TcpStream,
    /// From this connection's TCP connect to its first bytes: the server's own start-up time
    /// for one connection (sshd forks and re-executes itself per connection).
    pub waited: Duration,
}

/// Probe `host:port` until a banner arrives, for at most `remaining` (capped by
/// `cfg.banner_timeout`). A refusal, or a connection closed before the banner, ends the probing
/// at once (the caller polls again after [`SshConfig::poll_interval`]) and drops the silent
/// probes: the guest's TCP stack answers now, so they are stale. Silent probes do not hold up
/// detection: further probes are opened while earlier ones wait (each up to `banner_timeout`,
/// so a slow sshd still gets through), and the first banner wins. `net_answered`: the
/// previous attempt got a refusal or reset (see the module documentation).
pub(super) async fn connect_banner(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    remaining: Duration,
    net_answered: bool,
) -> Result<Banner, ProbeError> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let limit = remaining.min(cfg.banner_timeout);
    let deadline = Instant::now() + limit;
    let mut gap = cfg.banner_probe_interval.max(Duration::from_millis(50));
    if net_answered {
        gap *= 3;
    }
    let mut pending = FuturesUnordered::new();
    pending.push(probe(host, port, deadline));
    let mut next_probe = Instant::now() + gap;
    loop {
        tokio::select! {
            done = pending.next() => match done {
                Some(Ok(banner)) => return Ok(banner),
                Some(Err(e)) => return Err(e),
                None => return Err(ProbeError::Silent("no SSH banner".into())),
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ProbeError::Silent(format!(
                    "no SSH banner within {}",
                    fmt_duration(limit)
                )))
            }
            _ = tokio::time::sleep_until(next_probe), if next_probe < deadline && pending.len() < MAX_PROBES => {
                tracing::debug!("no SSH banner yet on {host}:{port}; probing with a new connection");
                pending.push(probe(host, port, deadline));
                gap *= 2;
                next_probe += gap;
            }
        }
    }
}

/// One TCP connection, waiting until `deadline` for the server's first bytes.
async fn probe(host: &str, port: u16, deadline: Instant) -> Result<Banner, ProbeError> {
    let connect = tokio::time::timeout_at(deadline, TcpStream::connect((host, port)));
    let tcp = match connect.await {
        Err(_) => return Err(ProbeError::Tcp("TCP connect timed out".into())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ProbeError::Refused(
                "connection refused (port closed)".into(),
            ))
        }
        Ok(Err(e)) => return Err(ProbeError::Tcp(format!("TCP connect failed: {e}"))),
        Ok(Ok(s)) => s,
    };
    let connected = Instant::now();
    let _ = tcp.set_nodelay(true);
    let mut buf = [0u8; 4];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
        // Silent until the deadline: `connect_banner` reports that itself.
        Err(_) => std::future::pending().await,
        Ok(Ok(0)) => Err(ProbeError::Closed(
            "connection closed before the SSH banner (sshd not up yet)".into(),
        )),
        Ok(Err(e)) => Err(ProbeError::Closed(format!(
            "connection failed before the SSH banner: {e}"
        ))),
        Ok(Ok(_)) => Ok(Banner {
            tcp,
            waited: connected.elapsed(),
        }),
    }
}
