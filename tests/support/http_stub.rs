//! A tiny HTTP/1.1 stub on 127.0.0.1 for tests that need status codes and redirects (ISO URL
//! checks): one thread, one request per connection, the response chosen by path.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Serve on a kernel-chosen loopback port; `respond(path)` gives the status line's code and
/// reason plus extra header lines (each ending in `\r\n`). Returns `http://127.0.0.1:PORT`.
/// The thread lives as long as the test process.
pub fn start(respond: fn(&str) -> (&'static str, String)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut first = String::new();
            if reader.read_line(&mut first).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, headers) = respond(&path);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    format!("http://{addr}")
}
