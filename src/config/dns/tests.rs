use super::*;
use std::net::UdpSocket;

/// A one-name DNS responder on 127.0.0.1: answers A queries for `name` with `ip`, NXDOMAIN
/// otherwise. Serves `n` queries then stops.
fn responder(
    name: &'static str,
    ip: [u8; 4],
    n: usize,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..n {
            let Ok((len, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..len];
            // Question name starts at 12; read labels.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < len && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + l]).to_lowercase());
                i += 1 + l;
            }
            let qend = i + 5; // zero byte + qtype + qclass
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let hit = labels.join(".") == name && qtype == 1;
            let mut r = Vec::new();
            r.extend_from_slice(&q[0..2]);
            r.extend_from_slice(&[0x81, if hit { 0x80 } else { 0x83 }]);
            r.extend_from_slice(&[0, 1, 0, hit as u8, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..qend]);
            if hit {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&ip);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    (addr, h)
}

#[test]
fn answers_from_a_loopback_server() {
    let (addr, h) = responder("vm1.lab.test", [10, 1, 2, 3], 1);
    let cfg = DnsConfig {
        servers: vec![addr.to_string()],
        search: vec!["lab.test".into()],
    };
    assert_eq!(
        lookup_a("vm1.lab.test", &cfg),
        Some(Ipv4Addr::new(10, 1, 2, 3))
    );
    h.join().unwrap();
}

#[test]
fn search_list_does_not_expand_short_names() {
    // Like dnspython with use_search_by_default = False: "vm1" is asked as "vm1.", not
    // "vm1.lab.test.", so the answer is NXDOMAIN → None.
    let (addr, h) = responder("vm1.lab.test", [10, 1, 2, 3], 1);
    let cfg = DnsConfig {
        servers: vec![addr.to_string()],
        search: vec!["lab.test".into()],
    };
    assert_eq!(lookup_a("vm1", &cfg), None);
    h.join().unwrap();
}

#[test]
fn failures_give_none() {
    // A loopback port where nothing answers (bound, never read): times out → None.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = DnsConfig {
        servers: vec![silent.local_addr().unwrap().to_string()],
        search: vec![],
    };
    assert_eq!(lookup_a("nothing.test", &cfg), None);
    assert_eq!(lookup_a("", &cfg), None);
    let bad = DnsConfig {
        servers: vec!["not-an-ip".into()],
        search: vec![],
    };
    assert_eq!(lookup_a("x.test", &bad), None);
}

#[test]
fn config_from_location_json() {
    let c = DnsConfig::from_json(
        &serde_json::json!({"servers": ["10.0.0.1", "10.0.0.2"], "search": "a.test b.test"}),
    );
    assert_eq!(c.servers, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(c.search, ["a.test", "b.test"]);
}
