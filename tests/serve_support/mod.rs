//! A real `osimager serve` for tests: its own state dir, a user config dir made from the test
//! OS's (tests/testos/config) plus a `canary` location whose password is a secret read from
//! the secrets file (the canary that must never show), the tools venv on PATH. Built on the
//! shared harness (`tests/support`): the including test declares `mod support;` first.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CANARY: &str = "osi-canary-5f1e9b7d";
pub const TARGET: &str = "qemu/canary/testos-1-x86_64";

pub use crate::support::{media_cache, repo};

/// Guest builds run only with OSIMAGER_E2E=1 and the media built (a counted skip otherwise,
/// a failure in CI: `support::e2e_enabled`).
pub fn e2e() -> bool {
    crate::support::e2e_enabled()
}

fn link_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            link_tree(&src, &dst);
        } else {
            std::os::unix::fs::symlink(src.canonicalize().unwrap(), &dst).unwrap();
        }
    }
}

/// `<dir>/config/osimager`: the test OS's user dir, a secrets file with the canary, the test
/// OS spec with the guest's password taken from that secret, and a `canary` location (the
/// hermetic one).
pub fn user_config(dir: &Path) -> PathBuf {
    let src = repo().join("tests/testos/config/osimager");
    let home = dir.join("config");
    let user = home.join("osimager");
    for sub in ["specs", "files"] {
        std::fs::create_dir_all(user.join(sub)).unwrap();
        link_tree(&src.join(sub), &user.join(sub));
    }
    std::fs::create_dir_all(user.join("locations")).unwrap();
    std::fs::copy(src.join("config.json"), user.join("config.json")).unwrap();
    std::fs::copy(
        src.join("locations/hermetic.json"),
        user.join("locations/hermetic.json"),
    )
    .unwrap();
    std::fs::write(
        user.join("secrets"),
        format!("images/canary username=testos password={CANARY}\n"),
    )
    .unwrap();
    std::fs::copy(
        src.join("locations/hermetic.json"),
        user.join("locations/canary.json"),
    )
    .unwrap();
    // A spec's own defs win over a location's: the user layer's copy of the spec carries it.
    let spec_file = user.join("specs/testos/spec.json");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();
    spec["defs"]["testos_password"] = Value::String("|>images/canary:password<|".into());
    std::fs::remove_file(&spec_file).unwrap();
    std::fs::write(&spec_file, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    home
}

pub struct Serve {
    pub child: Child,
    pub base: String,
    pub root: String,
    pub port: u16,
    pub state: PathBuf,
    pub config_home: PathBuf,
    pub scratch: PathBuf,
}

impl Serve {
    /// Start `osimager serve` on `port` (0: any) with the state in `scratch/state`.
    pub fn start(scratch: &Path, port: u16, extra: &[&str]) -> Serve {
        let config_home = scratch.join("config");
        if !config_home.exists() {
            user_config(scratch);
        }
        let state = scratch.join("state");
        let path = crate::support::path_with_tools();
        let mut child = Command::new(crate::support::osimager_bin())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--state-dir",
            ])
            .arg(&state)
            .args(extra)
            .env("XDG_CONFIG_HOME", &config_home)
            .env("XDG_DATA_HOME", scratch.join("data"))
            .env("XDG_CACHE_HOME", scratch.join("cache"))
            .env("OSIMAGER_TESTOS_CACHE", media_cache())
            .env("OSIMAGER_DATA_DIR", repo())
            .env("PATH", path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("osimager serve did not start: {line:?}"))
            .to_string();
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Serve {
            child,
            base: format!("http://{addr}/api/v1"),
            root: format!("http://{addr}"),
            port,
            state,
            config_home,
            scratch: scratch.to_path_buf(),
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait (running builds are stopped and cleaned up first).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    pub fn work_dir(&self, id: i64) -> PathBuf {
        self.state.join("work").join(id.to_string())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn get(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn json(c: &reqwest::Client, url: String) -> Value {
    let (_, t) = get(c, url).await;
    serde_json::from_str(&t).unwrap_or(Value::String(t))
}

/// Wait until build `id` is in one of `states`.
pub async fn wait_state(
    c: &reqwest::Client,
    base: &str,
    id: i64,
    states: &[&str],
    within: Duration,
) -> Value {
    let end = Instant::now() + within;
    loop {
        let j = json(c, format!("{base}/builds/{id}")).await;
        if states.contains(&j["state"].as_str().unwrap_or("")) {
            return j;
        }
        assert!(
            Instant::now() < end,
            "build {id} never reached {states:?}: {j}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// QEMU processes whose command line names `needle` (the VM name or the work dir).
pub fn qemu_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("qemu-system") && cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Wait until no QEMU names `needle` and nothing runs in `work`; panics after `within`.
pub async fn wait_gone(needle: &str, work: &Path, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let q = qemu_with(needle);
        let p = osimager_server::reaper::processes_using(work);
        if q.is_empty() && p.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "left running: qemu {q:?}, in the work dir {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
