//! Host ports for the NAT forward and the VRDP server.
//!
//! VirtualBox binds a forwarded port itself, so we cannot hand it a socket. What we can do:
//! pick a free port and keep it bound (a listening socket) until the moment VirtualBox needs
//! it — through all the VM configuration — so no other program or build takes it meanwhile;
//! release it right before `startvm`; and afterwards check that VirtualBox really holds it
//! (VirtualBox starts the VM even when a forward cannot be set up, and only notes
//! `NAT: Failed to redirect TCP 127.0.0.1:PORT -> …` in VBox.log). A forward that did not
//! come up is moved to a new port on the running VM (`controlvm … natpf1`).

use std::net::{IpAddr, TcpListener};

/// A port kept bound until [`HeldPort::release`].
#[derive(Debug)]
pub struct HeldPort {
    pub port: u16,
    listener: Option<TcpListener>,
}

impl HeldPort {
    /// Let go of the port so VirtualBox can bind it.
    pub fn release(&mut self) {
        self.listener = None;
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 17)
}

/// Bind a free port in `min..=max` on `addr` (random start so parallel builds rarely probe
/// the same ports), skipping `avoid`.
pub fn hold(addr: IpAddr, min: u16, max: u16, avoid: &[u16]) -> Option<HeldPort> {
    let span = u64::from(max - min) + 1;
    let start = seed() % span;
    (0..span)
        .map(|k| min + ((start + k * 7919) % span) as u16)
        .filter(|p| !avoid.contains(p))
        .find_map(|p| {
            TcpListener::bind((addr, p)).ok().map(|l| HeldPort {
                port: p,
                listener: Some(l),
            })
        })
}

/// Whether nothing listens on `addr:port` (we could bind it).
#[cfg(test)]
fn is_free(addr: IpAddr, port: u16) -> bool {
    TcpListener::bind((addr, port)).is_ok()
}

/// The VBox.log line VirtualBox writes when a forward could not be set up.
pub fn redirect_failed(log: &str, port: u16) -> bool {
    log.lines()
        .any(|l| l.contains(&format!("Failed to redirect TCP 127.0.0.1:{port} ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_held_port_is_not_free_until_released() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut h = hold(lo, 40000, 40999, &[]).unwrap();
        assert!(!is_free(lo, h.port));
        let again = hold(lo, h.port, h.port, &[]);
        assert!(again.is_none(), "the same port was handed out twice");
        h.release();
        assert!(is_free(lo, h.port));
    }

    #[test]
    fn log_line_for_a_failed_forward() {
        let log = "00:00:01.072530 NAT: Failed to redirect TCP 127.0.0.1:2222 -> 0.0.0.0:22 (Unknown error)\n";
        assert!(redirect_failed(log, 2222));
        assert!(!redirect_failed(log, 222));
        assert!(!redirect_failed(log, 22220));
    }
}
