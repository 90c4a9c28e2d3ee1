//! Parallel builds from separate `osimager build` processes of one user (issue 15, section 2
//! of docs/RELIABILITY.md): same configuration, same per-user dirs (state, caches, temp),
//! outputs side by side in one directory, real QEMU guests (TCG) of the hermetic test OS.
//!
//! Every build is `osimager build qemu/hermetic/testos-1-x86_64 par` (one name: the answer
//! file holds the hostname, and the install-cache key covers it), each into its own output dir.
//!
//! 1. Two builds at once, the ISO from a loopback HTTP server and an empty ISO cache, the
//!    install cache on (`--cache use`): both miss and install; the ISO is downloaded ONCE (the
//!    server's request log) and both builds boot the same verified cache file; both store the
//!    same install-cache key (one entry is left: the second finds the first's and drops its
//!    copy).
//! 2. Four builds at once from that entry (cache hits: the VM resumes the stored install, then
//!    provisioning, shutdown and export run for real): no two share an HTTP port, SSH
//!    forward, VNC display or QMP socket (read from their logs, from QEMU's argv and from the
//!    TCP ports their processes listen on, sampled from /proc while they run); each output holds only its own image, whose playbook marker
//!    is its own and no other's; the manifest next to them lists every build once.
//!
//! Opt-in (`#[ignore]`, ~10 min of guest time under TCG): `OSIMAGER_E2E_PARALLEL=1
//! scripts/test.sh`, or `OSIMAGER_E2E=1 flock /tmp/osimager-guest.lock cargo test --test
//! parallel_builds -- --ignored --nocapture`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::canary::{file_contains, Canary, Sampler, Samples};
use support::process::Spawned;

const TARGET: &str = "qemu/hermetic/testos-1-x86_64";
/// Every build has the same name (the guest's hostname is in the answer file, which the
/// install-cache key covers); each has its own output dir, `vms/<label>`.
const NAME: &str = "par";

/// Serve `file` at `/testos.iso` on 127.0.0.1 (a thread per connection); every request line
/// is logged. Returns (URL, log).
fn iso_server(file: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/testos.iso", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (file, log) = (file.clone(), log2.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                log.lock().unwrap().push(first.trim().to_string());
                let mut s = s;
                if !first.starts_with("GET /testos.iso ") {
                    let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                let mut f = std::fs::File::open(&file).unwrap();
                let len = f.metadata().unwrap().len();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                );
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, log)
}

/// The sha256 of the test OS ISO, from the media's SHA256SUMS.
fn iso_sha256() -> String {
    let sums = std::fs::read_to_string(support::media_cache().join("current/SHA256SUMS")).unwrap();
    sums.lines()
        .find(|l| l.ends_with("testos.iso"))
        .and_then(|l| l.split_whitespace().next())
        .expect("testos.iso in SHA256SUMS")
        .to_string()
}

struct Env {
    s: PathBuf,
    iso_url: String,
    sha: String,
    nonce: String,
}

struct Done {
    name: String,
    text: String,
    samples: Samples,
    secs: f64,
}

impl Env {
    fn out(&self, name: &str) -> PathBuf {
        self.s.join("vms").join(name)
    }

    fn marker(&self, name: &str) -> String {
        format!("marker-{name}-{}", self.nonce)
    }

    /// `osimager build TARGET par` into `vms/<name>`: one user's environment, shared by
    /// every build.
    fn command(&self, name: &str) -> Command {
        let s = &self.s;
        for d in ["tmp", "data", "cache", "state"] {
            std::fs::create_dir_all(s.join(d)).unwrap();
        }
        let mut c = Command::new(support::osimager_bin());
        c.args(["build", TARGET, NAME, "--engine", "native", "--force"])
            .args(["--cache", "use", "--cache-dir"])
            .arg(s.join("install-cache"))
            .arg("--output-dir")
            .arg(self.out(name))
            .arg("-D")
            .arg(format!("iso_url={}", self.iso_url))
            .arg("-D")
            .arg(format!("iso_checksum=sha256:{}", self.sha))
            .arg("-D")
            .arg(format!(
                "ansible_extra_vars=osimager_marker={}",
                self.marker(name)
            ))
            .env(
                "XDG_CONFIG_HOME",
                support::repo().join("tests/testos/config"),
            )
            .env("XDG_DATA_HOME", s.join("data"))
            .env("XDG_CACHE_HOME", s.join("cache"))
            .env("XDG_STATE_HOME", s.join("state"))
            .env("OSIMAGER_TESTOS_CACHE", support::media_cache())
            .env("TMPDIR", s.join("tmp"))
            .env("PATH", support::path_with_tools());
        c
    }

    /// Start every build at once, each with a /proc sampler; wait for all.
    fn run_all(&self, names: &[String]) -> Vec<Done> {
        let probe = Canary::new();
        let started = Instant::now();
        let running: Vec<_> = names
            .iter()
            .map(|n| {
                let sp = Spawned::start(self.command(n));
                let sampler = Sampler::start(&probe, sp.id(), true);
                (n.clone(), sp, sampler)
            })
            .collect();
        running
            .into_iter()
            .map(|(name, mut sp, sampler)| {
                let (code, _) = sp.exit_and_output(Duration::from_secs(3600));
                let samples = sampler.finish();
                let text = sp.seen.join("\n");
                assert_eq!(code, 0, "build {name} failed:\n{text}");
                Done {
                    name,
                    text,
                    samples,
                    secs: started.elapsed().as_secs_f64(),
                }
            })
            .collect()
    }
}

/// The word after `prefix` in `s`, up to one of `ends`.
fn after<'a>(s: &'a str, prefix: &str, ends: &[char]) -> Option<&'a str> {
    let i = s.find(prefix)? + prefix.len();
    let rest = &s[i..];
    Some(&rest[..rest.find(ends).unwrap_or(rest.len())])
}

/// What each build used that another must not: HTTP port and SSH address (its log), QMP
/// socket and the forwards of its QEMU (argv), and every TCP port any of its processes
/// listened on (QEMU's SSH forward and VNC display, osimager's HTTP server), sampled from
/// /proc while it ran.
fn resources(d: &Done) -> BTreeSet<(&'static str, String)> {
    let mut m = BTreeSet::new();
    for l in d.text.lines() {
        if let Some(p) = after(l, "HTTP server: http://", &[' ', '/']) {
            m.insert(("http", p.to_string()));
        }
        if let Some(p) = after(l, "waiting for SSH on ", &[' ']) {
            m.insert(("ssh", p.to_string()));
        }
    }
    for (_, c) in &d.samples.cmdlines {
        if !c.starts_with("qemu-system") {
            continue;
        }
        if let Some(p) = after(c, "hostfwd=tcp:", &['-', ',']) {
            m.insert(("ssh forward (qemu argv)", p.to_string()));
        }
        if let Some(p) = after(c, "guestfwd=tcp:10.0.2.2:", &['-', ',']) {
            m.insert(("http (qemu guestfwd)", p.to_string()));
        }
        if let Some(p) = after(c, "-qmp unix:", &[' ', ',']) {
            m.insert(("qmp", p.to_string()));
        }
    }
    for (port, _, argv0) in &d.samples.listening {
        let who = if argv0.contains("qemu-system") {
            "tcp listen (qemu)"
        } else {
            "tcp listen (other)"
        };
        m.insert((who, port.to_string()));
    }
    m
}

/// No value of any kind is used by two builds, and no TCP port is listened on by two builds;
/// returns the table for the report.
fn assert_no_collision(done: &[Done], must: &[&str]) -> String {
    let mut by_kind: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut ports: BTreeMap<String, String> = BTreeMap::new();
    for d in done {
        let r = resources(d);
        for k in must {
            assert!(
                r.iter().any(|(kind, _)| kind == k),
                "{}: no {k} found in {r:?}",
                d.name
            );
        }
        let mut own = BTreeSet::new();
        for (k, v) in r {
            if k.starts_with("tcp listen") {
                own.insert(v.clone());
            }
            by_kind.entry(k).or_default().push((d.name.clone(), v));
        }
        for p in own {
            if let Some(other) = ports.insert(p.clone(), d.name.clone()) {
                panic!("TCP port {p} listened on by {other} and {}", d.name);
            }
        }
    }
    let mut report = String::new();
    for (k, v) in &by_kind {
        let mut vals: Vec<&String> = v.iter().map(|(_, x)| x).collect();
        vals.sort();
        vals.dedup();
        if !k.starts_with("tcp listen") {
            assert_eq!(vals.len(), v.len(), "{k} shared between builds: {v:?}");
        }
        report.push_str(&format!("  {k}: {v:?}\n"));
    }
    report
}

#[test]
#[ignore = "opt-in: 2 then 4 concurrent guest builds, ~10 min (OSIMAGER_E2E_PARALLEL=1 scripts/test.sh)"]
fn builds_from_separate_processes_share_nothing_but_the_caches() {
    if !support::e2e_enabled() {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("parallel-")
        .tempdir()
        .unwrap();
    let (iso_url, requests) = iso_server(support::media_cache().join("current/testos.iso"));
    let e = Env {
        s: scratch.path().to_path_buf(),
        iso_url,
        sha: iso_sha256(),
        nonce: Canary::new().value[11..19].to_string(),
    };

    // 1. Two installs at once: one download, one verified file for both.
    let first: Vec<String> = ["par-a", "par-b"].map(String::from).to_vec();
    let done = e.run_all(&first);
    let gets: Vec<String> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("GET /testos.iso"))
        .cloned()
        .collect();
    assert_eq!(gets.len(), 1, "the ISO was downloaded {} times", gets.len());
    let iso_lines: Vec<String> = done
        .iter()
        .map(|d| {
            assert!(
                d.text.contains("install cache: miss"),
                "{}: not a miss:\n{}",
                d.name,
                d.text
            );
            d.text
                .lines()
                .find(|l| l.contains("ISO: "))
                .unwrap_or_else(|| panic!("{}: no ISO line:\n{}", d.name, d.text))
                .to_string()
        })
        .collect();
    let iso_of = |l: &str| l[l.find("ISO: ").unwrap()..].to_string();
    assert_eq!(iso_of(&iso_lines[0]), iso_of(&iso_lines[1]));
    assert!(iso_of(&iso_lines[0]).contains(&e.s.display().to_string()));
    let table1 = assert_no_collision(&done, &["http", "ssh", "qmp", "tcp listen (qemu)"]);
    let entries = support::process::entries(&e.s.join("install-cache/entries"));
    assert_eq!(entries.len(), 1, "one install-cache entry: {entries:?}");
    let secs1: Vec<String> = done
        .iter()
        .map(|d| format!("{} {:.0}s", d.name, d.secs))
        .collect();

    // 2. Four at once from the stored install.
    let names: Vec<String> = (0..4).map(|i| format!("par-{i}")).collect();
    let done = e.run_all(&names);
    for d in &done {
        assert!(
            d.text.contains("install cache: hit"),
            "{}: not a hit:\n{}",
            d.name,
            d.text
        );
    }
    let table2 = assert_no_collision(&done, &["ssh", "qmp", "tcp listen (qemu)"]);
    let secs2: Vec<String> = done
        .iter()
        .map(|d| format!("{} {:.0}s", d.name, d.secs))
        .collect();
    // Outputs never mixed: each holds its own image with its own marker only, and verifies.
    for d in &done {
        let out = e.out(&d.name);
        let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
        let files: Vec<&str> = sums.lines().filter_map(|l| l.split("  ").nth(1)).collect();
        assert_eq!(files, [NAME], "{}: {sums}", d.name);
        let ok = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&out)
            .status()
            .unwrap();
        assert!(ok.success(), "{}: checksums do not verify", d.name);
        let image = out.join(NAME);
        for other in &names {
            let has = file_contains(&image, &e.marker(other));
            assert_eq!(
                has,
                other == &d.name,
                "{}'s image and the marker of {other}",
                d.name
            );
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.s.join("vms").join("packer-manifest.json")).unwrap(),
    )
    .unwrap();
    // Each entry lists its own output's image: vms/<label>/par.
    let mut listed: Vec<String> = manifest["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let f = b["files"][0]["name"].as_str().unwrap_or("");
            let p = std::path::Path::new(f);
            assert_eq!(p.file_name().unwrap(), NAME, "{f}");
            let dir = p.parent().unwrap().file_name().unwrap();
            dir.to_string_lossy().into_owned()
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        ["par-0", "par-1", "par-2", "par-3", "par-a", "par-b"],
        "every build is in the manifest once"
    );
    let left = support::process::processes_mentioning(&e.s.display().to_string(), &[]);
    assert!(left.is_empty(), "processes left: {left:?}");
    support::write_report(
        "parallel-builds.txt",
        &format!(
            "parallel builds: 2 installs at once ({}), ISO GETs {}; 4 cache hits at once ({}); \
             0 collisions\nfirst pair:\n{table1}four:\n{table2}",
            secs1.join(", "),
            gets.len(),
            secs2.join(", ")
        ),
    );
}
