//! ISO faults (no guest): a checksum mismatch of a download and of a local file; a download
//! cut off mid-way (a loopback server that closes the connection) then resumed by the next
//! build; a corrupted file in the ISO cache.

use crate::harness::{
    assert_clean, assert_complete, fake_builder, payload, qemu_builder, sha256_hex, Scratch, Spec,
};
use crate::support::process::entries;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A loopback HTTP server for one file (`/test.iso`) that honours `Range` with `If-Range`
/// (ETag `"v1"`) and, while `cut` is non-zero, closes every connection after `cut` bytes of
/// body. Every request is logged (lower-cased head).
struct IsoServer {
    url: String,
    cut: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
}

impl IsoServer {
    fn start(data: Vec<u8>) -> IsoServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/test.iso", l.local_addr().unwrap());
        let cut = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (cut2, log2) = (cut.clone(), log.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line.to_ascii_lowercase());
                }
                log2.lock().unwrap().push(head.clone());
                let start = head
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|v| v.trim().trim_end_matches('-').parse::<usize>().ok())
                    .filter(|_| head.contains("if-range: \"v1\""));
                let len = data.len();
                let (status, from) = match start {
                    Some(st) if st < len => (
                        format!(
                            "206 Partial Content\r\nContent-Range: bytes {st}-{}/{len}",
                            len - 1
                        ),
                        st,
                    ),
                    _ => ("200 OK".to_string(), 0),
                };
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n\
                         Connection: close\r\n\r\n",
                        len - from
                    )
                    .as_bytes(),
                );
                let limit = match cut2.load(Ordering::SeqCst) {
                    0 => len,
                    c => (from + c).min(len),
                };
                let _ = s.write_all(&data[from..limit]);
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
        IsoServer { url, cut, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Files in the ISO cache (not its `.verified/` sidecars).
fn iso_files(s: &Scratch) -> Vec<String> {
    entries(&s.path().join("iso"))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn checksum_mismatch_of_a_download_discards_it() {
    let s = Scratch::new("iso-mismatch");
    let srv = IsoServer::start(payload(300_000));
    let wrong = sha256_hex(b"another file");
    let spec = Spec {
        driver: "builtin".into(),
        builder: qemu_builder(
            &s,
            json!({"iso_url": srv.url, "iso_checksum": format!("sha256:{wrong}")}),
        ),
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed(
        "iso",
        &[
            &srv.url,
            "checksum mismatch",
            &wrong,
            "the download was discarded (check iso_checksum or the mirror)",
        ],
    );
    assert_eq!(
        iso_files(&s),
        Vec::<String>::new(),
        "nothing half-verified kept"
    );
    assert_clean(&s, &s.out(), "ISO checksum mismatch");
}

#[test]
fn checksum_mismatch_of_a_local_iso_keeps_the_users_file() {
    let s = Scratch::new("iso-local");
    let iso = s.path().join("mine.iso");
    std::fs::write(&iso, payload(100_000)).unwrap();
    let wrong = sha256_hex(b"another file");
    let spec = Spec {
        driver: "builtin".into(),
        builder: qemu_builder(
            &s,
            json!({"iso_url": iso.display().to_string(), "iso_checksum": format!("sha256:{wrong}")}),
        ),
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed("iso", &["checksum mismatch", "check iso_checksum"]);
    assert_eq!(std::fs::read(&iso).unwrap(), payload(100_000));
    assert_clean(&s, &s.out(), "local ISO mismatch");
}

/// A fake-driver build of the ISO `srv` serves, with its right checksum.
fn served_iso_spec(s: &Scratch, srv: &IsoServer, data: &[u8]) -> Spec {
    Spec {
        driver: "fake".into(),
        builder: fake_builder(
            &s.out(),
            json!({"iso_url": srv.url, "iso_checksum": format!("sha256:{}", sha256_hex(data))}),
        ),
        ..Spec::default()
    }
}

/// The server closes every connection after 64 KiB: the build retries (resuming) and then
/// fails, keeping the partial download; the next build resumes it from where it stopped
/// (a `Range` request) and completes.
#[test]
fn a_download_cut_off_fails_the_build_and_the_next_build_resumes_it() {
    let s = Scratch::new("iso-cut");
    let data = payload(1 << 20);
    let srv = IsoServer::start(data.clone());
    srv.cut.store(64 << 10, Ordering::SeqCst);
    let spec = served_iso_spec(&s, &srv, &data);
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed("iso", &[&srv.url, "check the address and network"]);
    assert_clean(&s, &s.out(), "download cut off");
    let first = srv.requests();
    assert_eq!(
        first.len(),
        4,
        "one request and three resumptions: {first:?}"
    );
    let part: Vec<_> = iso_files(&s)
        .into_iter()
        .filter(|f| f.ends_with(".part"))
        .collect();
    assert_eq!(
        part.len(),
        1,
        "the partial download is kept for the next build"
    );
    let kept = std::fs::metadata(s.path().join("iso").join(&part[0]))
        .unwrap()
        .len();
    assert_eq!(kept, 4 * (64 << 10));

    srv.cut.store(0, Ordering::SeqCst);
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_ok();
    let next = &srv.requests()[first.len()..];
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(
        next[0].contains(&format!("range: bytes={kept}-")),
        "resumed where it stopped: {}",
        next[0]
    );
    assert_complete(&s.out());
    let files = iso_files(&s);
    assert!(!files.iter().any(|f| f.contains(".part")), "{files:?}");
    let iso = files.iter().find(|f| f.ends_with(".iso")).unwrap();
    assert_eq!(std::fs::read(s.path().join("iso").join(iso)).unwrap(), data);
    crate::support::process::assert_nothing_left(s.path(), &[], crate::harness::OURS, "resumed");
}

/// A cached ISO that changed on disk (same size, other bytes) is hashed again, found wrong,
/// removed and downloaded again; the build succeeds.
#[test]
fn a_corrupted_iso_in_the_cache_is_downloaded_again() {
    let s = Scratch::new("iso-corrupt");
    let data = payload(200_000);
    let srv = IsoServer::start(data.clone());
    let spec = served_iso_spec(&s, &srv, &data);
    s.run(&spec, Duration::from_secs(120)).assert_ok();
    let iso = s.path().join("iso").join(
        iso_files(&s)
            .into_iter()
            .find(|f| f.ends_with(".iso"))
            .unwrap(),
    );
    let mut bad = data.clone();
    for b in bad.iter_mut().skip(1000).take(100) {
        *b ^= 0xff;
    }
    std::thread::sleep(Duration::from_millis(20)); // a new modification time
    std::fs::write(&iso, &bad).unwrap();
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_ok();
    assert_eq!(srv.requests().len(), 2, "downloaded again");
    assert_eq!(std::fs::read(&iso).unwrap(), data);
    assert_complete(&s.out());
    crate::support::process::assert_nothing_left(
        s.path(),
        &[],
        crate::harness::OURS,
        "re-download",
    );
}
