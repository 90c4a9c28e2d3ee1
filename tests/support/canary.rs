//! The secret canary (issue 15, docs/RELIABILITY.md section 5): a distinctive secret value
//! that a test feeds to a build through its secret channels (secrets file, Vault, a location's
//! password, an answer file), then searches for everywhere osimager could have put it.
//!
//! * [`Canary`]: the value (`osi-canary-<16 hex>`) and tagged variants of it (`-vault`,
//!   `-file`, …): every variant contains the value, so one search finds them all.
//! * [`Sampler`]: a thread that reads `/proc/<pid>/cmdline` and `/proc/<pid>/environ` of a
//!   process and all its descendants every ~100 ms while a build runs (QEMU, ssh, Packer,
//!   ansible-playbook, socat …), and keeps every distinct command line and every TCP port they
//!   listened on (tests check for port collisions with them).
//! * [`Scan`]: searches texts, files and directory trees (recursively, symlinks not followed)
//!   and the sampler's findings; counts the places searched and the hits.
//!
//! What a hit is: the value, or its base64 encoding at any alignment, in any byte of a place
//! osimager writes or hands to another program. The installed guest is the exception: the
//! answer file is served to the guest on purpose, so a copy inside the guest's own disk or
//! memory image is counted apart ([`Scan::guest`]) and reported, not failed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A canary value.
#[derive(Clone, Debug)]
pub struct Canary {
    pub value: String,
}

impl Canary {
    /// A fresh random canary: `osi-canary-<16 hex digits>`.
    pub fn new() -> Canary {
        let mut b = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .expect("reading /dev/urandom");
        Canary::with_value(format!("osi-canary-{}", hex(&b)))
    }

    /// A canary with a given value (e.g. one kept with an install cache so builds can hit it).
    pub fn with_value(value: impl Into<String>) -> Canary {
        let value = value.into();
        assert!(value.len() >= 12, "a canary must be distinctive: {value:?}");
        Canary { value }
    }

    /// A variant for one channel (`<value>-<tag>`): found by the same search.
    pub fn tagged(&self, tag: &str) -> String {
        format!("{}-{tag}", self.value)
    }

    /// The byte strings that count as a hit: the value and its base64 encodings at the three
    /// alignments (only the characters that depend on the value's bytes alone).
    fn needles(&self) -> Vec<Vec<u8>> {
        use base64::Engine as _;
        let v = self.value.as_bytes();
        let mut out = vec![v.to_vec()];
        for k in 0..3usize {
            let mut s = vec![b'_'; k];
            s.extend_from_slice(v);
            let enc = base64::engine::general_purpose::STANDARD.encode(&s);
            // Groups of 3 input bytes made of canary bytes only: from ceil(k/3) up to the last
            // complete group inside it.
            let first = k.div_ceil(3);
            let last = (k + v.len()) / 3; // exclusive
            if last > first + 2 {
                out.push(enc.as_bytes()[first * 4..last * 4].to_vec());
            }
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a [`Sampler`] saw.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Sampling rounds (one every ~100 ms).
    pub rounds: usize,
    /// Distinct processes seen (pid + start time), the root included if it was sampled.
    pub processes: usize,
    /// Every distinct command line seen (arguments joined by spaces), by pid.
    pub cmdlines: Vec<(u32, String)>,
    /// `cmdline`/`environ` reads that held the canary: "pid N (argv0) environ".
    pub hits: Vec<String>,
    /// TCP ports the processes listened on (IPv4 and IPv6), with the pid and its argv[0].
    pub listening: Vec<(u16, u32, String)>,
}

/// Samples the argv and environment of a process tree until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Samples>>,
}

impl Sampler {
    /// Sample `root` (when `include_root`) and every descendant of it.
    pub fn start(canary: &Canary, root: u32, include_root: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let needles = canary.needles();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Samples::default();
            let mut seen: HashSet<(u32, u64)> = HashSet::new();
            let mut lines: BTreeSet<(u32, String)> = BTreeSet::new();
            let mut listening: BTreeSet<(u16, u32, String)> = BTreeSet::new();
            loop {
                // One last round after the stop request, so a short-lived tail is not missed.
                let last = s.load(Ordering::SeqCst);
                out.rounds += 1;
                let listeners = listening_sockets();
                for pid in tree(root, include_root) {
                    for inode in socket_inodes(pid) {
                        if let Some(port) = listeners.get(&inode) {
                            let argv0 = std::fs::read(format!("/proc/{pid}/cmdline"))
                                .map(|b| {
                                    let first = b.split(|c| *c == 0).next().unwrap_or(&[]);
                                    String::from_utf8_lossy(first).into_owned()
                                })
                                .unwrap_or_default();
                            listening.insert((*port, pid, argv0));
                        }
                    }
                    let start = start_time(pid).unwrap_or(0);
                    seen.insert((pid, start));
                    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                    let shown = String::from_utf8_lossy(&argv).replace('\0', " ");
                    let name = shown.split(' ').next().unwrap_or("").to_string();
                    for (what, bytes) in [("argv", &argv), ("environ", &env)] {
                        if contains_any(bytes, &needles) {
                            let h = format!("pid {pid} ({name}) {what}");
                            if !out.hits.contains(&h) {
                                out.hits.push(h);
                            }
                        }
                    }
                    if !shown.is_empty() {
                        lines.insert((pid, shown.trim_end().to_string()));
                    }
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            out.processes = seen.len();
            out.listening = listening.into_iter().collect();
            out.cmdlines = lines.into_iter().collect();
            out
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop sampling and return what was seen.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().expect("sampler thread")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Listening TCP sockets now: inode → local port (`/proc/net/tcp` and `tcp6`, state 0A).
fn listening_sockets() -> std::collections::HashMap<u64, u16> {
    let mut m = std::collections::HashMap::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for l in text.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Ok(inode)) = (port, cols[9].parse::<u64>()) {
                m.insert(inode, port);
            }
        }
    }
    m
}

/// Inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// `(pid, ppid)` of every process now.
fn parents() -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = stat_field(pid, 4) {
            v.push((pid, ppid as u32));
        }
    }
    v
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`, for fields after the command.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split(' ').nth(n - 3)?.parse().ok()
}

fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

/// `root` (if asked) and its descendants.
fn tree(root: u32, include_root: bool) -> Vec<u32> {
    let all = parents();
    let mut out = if include_root { vec![root] } else { vec![] };
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &all {
            if pp == p && c != root {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Whether the file at `path` holds `needle` (read in 4 MiB blocks: fine for disk images).
/// For tests that look for a marker inside an exported image (not compressed).
pub fn file_contains(path: &Path, needle: &str) -> bool {
    find_in_file(path, &[needle.as_bytes().to_vec()]).0
}

/// (any of `needles` found, bytes read); an unreadable file holds nothing.
fn find_in_file(path: &Path, needles: &[Vec<u8>]) -> (bool, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (false, 0);
    };
    let keep = needles.iter().map(Vec::len).max().unwrap_or(0);
    let mut buf = vec![0u8; 4 << 20];
    let (mut carry, mut read) = (0usize, 0u64);
    loop {
        let n = match f.read(&mut buf[carry..]) {
            Ok(0) | Err(_) => return (false, read),
            Ok(n) => n,
        };
        read += n as u64;
        let end = carry + n;
        if contains_any(&buf[..end], needles) {
            return (true, read);
        }
        let k = keep.min(end);
        buf.copy_within(end - k..end, 0);
        carry = k;
    }
}

fn contains_any(hay: &[u8], needles: &[Vec<u8>]) -> bool {
    needles
        .iter()
        .any(|n| memchr::memmem::find(hay, n).is_some())
}

/// A search for one canary: places searched, by kind, and hits.
pub struct Scan {
    canary: Canary,
    needles: Vec<Vec<u8>>,
    /// Places searched, by kind ("file", "text", "process", …).
    pub places: BTreeMap<String, usize>,
    /// Hits in places osimager owns: each fails [`Scan::assert_clean`].
    pub hits: Vec<String>,
    /// Copies inside the guest's own data (served to it on purpose): reported only.
    pub guest_hits: Vec<String>,
    bytes: u64,
}

impl Scan {
    pub fn new(canary: &Canary) -> Scan {
        Scan {
            canary: canary.clone(),
            needles: canary.needles(),
            places: BTreeMap::new(),
            hits: Vec::new(),
            guest_hits: Vec::new(),
            bytes: 0,
        }
    }

    fn count(&mut self, kind: &str) {
        *self.places.entry(kind.to_string()).or_default() += 1;
    }

    /// Search a text or byte string osimager produced (a response body, stderr, an event
    /// stream held in memory); `kind` groups the count.
    pub fn text(&mut self, kind: &str, label: &str, bytes: impl AsRef<[u8]>) {
        let b = bytes.as_ref();
        self.count(kind);
        self.bytes += b.len() as u64;
        if contains_any(b, &self.needles) {
            self.hits.push(format!("{kind}: {label}"));
        }
    }

    /// Whether `path` holds the canary (streamed, for big images).
    fn file_has(&mut self, path: &Path) -> bool {
        let (found, read) = find_in_file(path, &self.needles);
        self.bytes += read;
        found
    }

    /// Search one file (a log, the manifest, the `--events` stream …).
    pub fn file(&mut self, path: &Path) {
        self.count("file");
        if self.file_has(path) {
            self.hits.push(format!("file: {}", path.display()));
        }
    }

    /// Search every regular file under `dir` (recursively; symlinks are not followed; a missing
    /// dir counts nothing). Files for which `guest(path)` is true are the guest's own data
    /// (the disk image, an install-cache entry): their hits go to [`Scan::guest_hits`].
    pub fn tree_with(&mut self, dir: &Path, guest: &dyn Fn(&Path) -> bool) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        self.count("directory");
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                self.tree_with(&p, guest);
            } else if md.is_file() {
                if guest(&p) {
                    self.guest(&p);
                } else {
                    self.file(&p);
                }
            } else if md.file_type().is_symlink() {
                // The link's target text can hold a value too.
                self.count("symlink");
                if let Ok(t) = std::fs::read_link(&p) {
                    if contains_any(t.as_os_str().as_encoded_bytes(), &self.needles) {
                        self.hits.push(format!("symlink: {}", p.display()));
                    }
                }
            }
        }
    }

    /// [`Scan::tree_with`], every file being osimager's.
    pub fn tree(&mut self, dir: &Path) {
        self.tree_with(dir, &|_| false);
    }

    /// Search a file of the guest's own data: a copy there is reported, not failed.
    pub fn guest(&mut self, path: &Path) {
        self.count("guest file");
        if self.file_has(path) {
            self.guest_hits
                .push(format!("guest file: {}", path.display()));
        }
    }

    /// Add what a [`Sampler`] saw (each process sampled counts as a place; argv and environ
    /// of each as two).
    pub fn samples(&mut self, s: &Samples) {
        *self.places.entry("process".into()).or_default() += s.processes;
        *self.places.entry("process sample".into()).or_default() += s.rounds;
        self.hits.extend(s.hits.iter().cloned());
    }

    /// Total places searched (processes count once; sampling rounds are not places).
    pub fn total(&self) -> usize {
        self.places
            .iter()
            .filter(|(k, _)| k.as_str() != "process sample")
            .map(|(_, v)| v)
            .sum()
    }

    /// One line: places searched by kind, bytes read, hits.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self
            .places
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "secret canary {}: {} places searched ({}; {:.1} MiB read), {} hits, {} guest-side \
             copies{}",
            self.canary.value,
            self.total(),
            kinds.join(", "),
            self.bytes as f64 / (1 << 20) as f64,
            self.hits.len(),
            self.guest_hits.len(),
            if self.guest_hits.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.guest_hits.join("; "))
            }
        )
    }

    /// Print the summary (and write it as report `<name>`) and fail on any hit.
    pub fn assert_clean(&self, report: &str) {
        super::write_report(report, &self.summary());
        assert!(
            self.hits.is_empty(),
            "the secret canary {} leaked into: {:#?}",
            self.canary.value,
            self.hits
        );
    }
}
