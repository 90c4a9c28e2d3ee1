//! Child processes of the tests: the osimager binary, or a helper of the same test binary (an
//! `#[ignore = "helper: …"]` test run explicitly, so it never counts as a test of its own),
//! with their output read line by line by threads that are joined before the rest of the
//! output is inspected; bounded waits; leftover checks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The command that runs helper `name` of this test binary (an `#[ignore]`d test function):
/// `--ignored --exact NAME --nocapture`.
pub fn helper_command(name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current test binary"));
    c.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    c
}

/// A running child whose stdout and stderr lines are collected (and echoed as `  | line` on
/// the test's stderr) by reader threads.
pub struct Spawned {
    pub child: Child,
    rx: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
    /// Every line received so far (by `wait_line` and `finish`).
    pub seen: Vec<String>,
}

impl Spawned {
    /// Spawn `cmd` with stdin closed and stdout/stderr piped to the readers.
    pub fn start(mut cmd: Command) -> Spawned {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, rx) = channel();
        let mut readers = Vec::new();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ] {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("  | {l}");
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            }));
        }
        Spawned {
            child,
            rx,
            readers,
            seen: Vec::new(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Wait (at most `limit`) for a line containing `needle`; panics with what was seen.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "never saw {needle:?} within {limit:?} ({e}); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Send a signal to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.child.id());
    }

    /// Wait (at most `limit`, polling) for the child to exit; kills it and panics on timeout.
    /// Returns the exit code (-1 for a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "child did not exit within {limit:?}; output so far:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After the child exited: join the readers (so nothing it wrote is lost) and return every
    /// line not consumed by `wait_line`.
    pub fn finish(&mut self) -> Vec<String> {
        for h in self.readers.drain(..) {
            h.join().expect("output reader thread");
        }
        let rest: Vec<String> = self.rx.try_iter().collect();
        self.seen.extend(rest.iter().cloned());
        rest
    }

    /// `wait_exit` then `finish`: (exit code, lines not consumed by `wait_line`).
    pub fn exit_and_output(&mut self, limit: Duration) -> (i32, Vec<String>) {
        let code = self.wait_exit(limit);
        (code, self.finish())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Processes (not this one, not those whose command line contains any of `except`) whose
/// command line mentions `needle`: a QEMU, sshd or Packer left running would.
pub fn processes_mentioning(needle: &str, except: &[&str]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&b).replace('\0', " ");
            if cmd.contains(needle) && !except.iter().any(|x| cmd.contains(x)) {
                v.push(format!("{pid}: {cmd}"));
            }
        }
    }
    v
}

/// Poll `cond` every 20 ms for at most `limit`; true as soon as it holds. For state that
/// settles asynchronously (a closed session, a port released), instead of a fixed sleep.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entries of `dir` (none if it does not exist).
pub fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The leftover check after a build in a scratch dir: no temp dir under `<scratch>/tmp`, none
/// of `outputs` exists, and no process mentions the scratch dir (QEMU, ansible, sshd …),
/// other than those matching `except`.
pub fn assert_nothing_left(scratch: &Path, outputs: &[&Path], except: &[&str], what: &str) {
    let tmp = entries(&scratch.join("tmp"));
    assert!(tmp.is_empty(), "{what}: temp dirs left: {tmp:?}");
    for o in outputs {
        assert!(!o.exists(), "{what}: output left: {}", o.display());
    }
    let procs = processes_mentioning(&scratch.display().to_string(), except);
    assert!(procs.is_empty(), "{what}: processes left: {procs:?}");
}

/// [`eventually`] for async tests: polls `cond` every 10 ms without blocking the runtime (the
/// state it waits for is often set by a task on the same runtime).
pub async fn eventually_async(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
