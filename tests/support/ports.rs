//! Loopback ports found at run time (never fixed numbers: other tests and other engineers'
//! builds share the machine). Dependency-free apart from tokio, so the drivers and http crates
//! include this file by path.
#![allow(dead_code)]

use std::net::TcpListener;

/// A port nobody listens on right now (the kernel picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// `n` consecutive ports that are all free right now, as `(first, last)`: for code that takes
/// a port range. Found by letting the kernel pick a start and checking the ones after it.
pub fn free_port_range(n: u16) -> (u16, u16) {
    assert!(n >= 1);
    for _ in 0..200 {
        let first = free_port();
        let Some(last) = first.checked_add(n - 1) else {
            continue;
        };
        let held: Vec<_> = (first..=last)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == n as usize {
            return (first, last);
        }
    }
    panic!("no {n} consecutive free loopback ports found");
}

/// A port that refuses connections for as long as the returned socket lives: bound, never
/// listening, so no concurrently running test can take it.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}
