//! A real test-OS build by a REMOTE worker (QEMU under TCG): `osimager serve --no-local-worker`
//! and `osimager worker` as two separate processes on loopback. A build of
//! `qemu/hermetic/testos-1-x86_64` is submitted through the API; the worker claims it, runs the
//! install natively with real QEMU (a child of the worker, not of the server), provisions it,
//! exports it and uploads the image; the test downloads the image from the SERVER's API and
//! checks it: its SHA-256 against the server's listing and `checksums`, against the
//! `SHA256SUMS` the engine wrote on the worker, and its qcow2 header (`qemu-img info`).
//!
//! Not a test of the install: the build asks for the install cache (`"cache": "use"`) and the
//! worker's cache directory (`OSIMAGER_CACHE_DIR`) is the test run's shared installed test OS
//! (tests/support/installed.rs, one install per test run): the worker boots the installed
//! system, provisions it, exports and uploads. Server and worker use the test configuration the
//! shared install was made with (the secret canary is serve_worker's and serve_e2e's subject).
//!
//! Guest test: runs only with OSIMAGER_E2E=1 and the media built; one guest at a time
//! (`flock /tmp/osimager-guest.lock cargo test --test worker_e2e`).

mod serve_support;
mod support;

use serde_json::{json, Value};
use serve_support::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::process::Spawned;

const HERMETIC: &str = support::installed::SHARED_TARGET;
const WORKER: &str = "lab-1";
const BUILD: Duration = Duration::from_secs(900);

/// `osimager serve token create --worker NAME`: the token it prints.
fn worker_token(state: &Path, name: &str) -> String {
    let out = Command::new(support::osimager_bin())
        .args(["serve", "token", "create", "--worker", name, "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `osimager worker` with the same user configuration as the server (the test OS's), the
/// shared install cache, its own work dir and working directory.
fn start_worker(s: &Serve, dir: &Path, token: &str, cache: &Path) -> Spawned {
    let cwd = dir.join("wcwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut cmd = Command::new(support::osimager_bin());
    cmd.args(["worker", "--server", &s.root, "--heartbeat-secs", "2"])
        .arg("--work-dir")
        .arg(dir.join("worker"))
        .current_dir(&cwd)
        .env("OSIMAGER_WORKER_TOKEN", token)
        .env("XDG_CONFIG_HOME", &s.config_home)
        .env("XDG_DATA_HOME", dir.join("wdata"))
        .env("XDG_CACHE_HOME", dir.join("wcache"))
        .env("XDG_STATE_HOME", dir.join("wstate"))
        .env("OSIMAGER_TESTOS_CACHE", media_cache())
        .env("OSIMAGER_CACHE_DIR", cache)
        .env("OSIMAGER_DATA_DIR", repo())
        .env("PATH", support::path_with_tools())
        .stdin(Stdio::null());
    Spawned::start(cmd)
}

/// The parent of process `pid` (from /proc/PID/stat), if it still runs.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `ancestor` is a (grand…)parent of `pid`.
fn descends_from(mut pid: i32, ancestor: i32) -> bool {
    while let Some(p) = parent_of(pid) {
        if p == ancestor {
            return true;
        }
        if p <= 1 {
            return false;
        }
        pid = p;
    }
    false
}

async fn bytes(c: &reqwest::Client, url: String) -> Vec<u8> {
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.bytes().await.unwrap().to_vec()
}

/// `qemu-img info --output=json FILE`.
fn qemu_img_info(file: &Path) -> Value {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(file)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img info {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `sha256sum`-format lines → (name, digest).
fn sums(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(d, n)| {
            let n = n.trim_start().trim_start_matches('*');
            (n.rsplit('/').next().unwrap().to_string(), d.to_string())
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_builds_the_test_os_and_the_image_is_downloaded_from_the_server() {
    if !e2e() {
        return;
    }
    let cache = support::installed::shared_install();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // The test OS's configuration (Serve::start makes its canary configuration only when
    // `<scratch>/config` is not there).
    std::os::unix::fs::symlink(
        support::installed::testos_config(),
        dir.path().join("config"),
    )
    .unwrap();
    let token = worker_token(&dir.path().join("state"), WORKER);
    let mut s = Serve::start(dir.path(), 0, &["--no-local-worker"]);
    let c = http();
    let mut w = start_worker(&s, dir.path(), &token, &cache);
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let ws = json(&c, format!("{}/workers", s.base)).await;
        if ws["items"][0]["name"] == WORKER {
            assert_eq!(ws["items"][0]["capabilities"]["native"], json!(["qemu"]));
            break;
        }
        assert!(Instant::now() < end, "the worker never registered: {ws}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let name = support::installed::SHARED_NAME.to_string();
    let out_dir = media_cache().join("vms").join(&name);
    let _ = std::fs::remove_dir_all(&out_dir);
    let b: Value = c
        .post(format!("{}/builds", s.base))
        .json(
            &json!({"target": HERMETIC, "name": name, "engine": "native", "force": true,
                     "cache": "use"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = b["id"].as_i64().unwrap_or_else(|| panic!("{b}"));

    // It runs on the worker: its QEMU is a descendant of the worker process, not the server.
    let j = wait_state(&c, &s.base, id, &["running"], Duration::from_secs(120)).await;
    assert_eq!(j["worker"], WORKER, "{j}");
    let end = Instant::now() + BUILD;
    let qemu = loop {
        if let Some(&pid) = qemu_with(&name).first() {
            break pid;
        }
        let j = json(&c, format!("{}/builds/{id}", s.base)).await;
        assert_eq!(
            j["state"], "running",
            "the build ended before a VM ran: {j}"
        );
        assert!(Instant::now() < end, "no QEMU of {name} ever ran");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        descends_from(qemu, w.id() as i32),
        "QEMU {qemu} runs under the worker {}",
        w.id()
    );
    assert!(!descends_from(qemu, s.child.id() as i32));

    let j = wait_state(
        &c,
        &s.base,
        id,
        &["succeeded", "failed", "cancelled", "interrupted"],
        BUILD,
    )
    .await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["worker"], WORKER);
    let built_in = started.elapsed();

    // Download every artifact from the server and check it.
    let arts = json(&c, format!("{}/builds/{id}/artifacts", s.base)).await;
    let items = arts["items"].as_array().unwrap().clone();
    assert!(!items.is_empty(), "no artifacts uploaded: {arts}");
    let down = dir.path().join("download");
    std::fs::create_dir_all(&down).unwrap();
    let mut got = Vec::new();
    let mut images = 0;
    for a in &items {
        let n = a["name"].as_str().unwrap();
        let data = bytes(&c, format!("{}{}", s.root, a["url"].as_str().unwrap())).await;
        assert_eq!(data.len() as u64, a["size"].as_u64().unwrap(), "{a}");
        let digest = hex::encode(Sha256::digest(&data));
        assert_eq!(Some(digest.as_str()), a["sha256"].as_str(), "{a}");
        let f = down.join(n);
        std::fs::write(&f, &data).unwrap();
        if n != "SHA256SUMS" {
            got.push((n.to_string(), digest));
            let info = qemu_img_info(&f);
            assert_eq!(info["format"], "qcow2", "{n}: {info}");
            assert_eq!(
                info["virtual-size"].as_u64(),
                Some(2048 << 20),
                "{n}: {info}"
            );
            images += 1;
        }
    }
    got.sort();
    assert_eq!(images, 1, "one qcow2 image: {arts}");
    let (_, listed) = get(&c, format!("{}/builds/{id}/checksums", s.base)).await;
    let listed: Vec<_> = sums(&listed)
        .into_iter()
        .filter(|(n, _)| n != "SHA256SUMS")
        .collect();
    assert_eq!(listed, got, "the server's checksums");
    // The SHA256SUMS the engine wrote next to the image on the worker host.
    let worker_out = PathBuf::from(j["output_dir"].as_str().unwrap());
    assert_eq!(worker_out, out_dir, "{j}");
    let on_worker = std::fs::read_to_string(worker_out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums(&on_worker), got, "the worker's SHA256SUMS");

    // The worker booted the shared install (the events the server recorded say so).
    let ev = json(&c, format!("{}/builds/{id}/events?limit=100000", s.base)).await;
    let text = ev.to_string();
    assert!(text.contains("build_finished"), "{text}");
    assert!(text.contains("install cache: hit"), "{text}");

    // Nothing of the build is left on the worker (its QEMU, anything in the job's work dir).
    let job_dir = dir.path().join("worker").join(id.to_string());
    wait_gone(&name, &job_dir, Duration::from_secs(60)).await;
    assert!(!job_dir.exists(), "the job's work dir is removed");
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(30)), 0, "the worker stops");
    s.stop();
    let _ = std::fs::remove_dir_all(&out_dir);
    support::write_report(
        "worker_e2e.txt",
        &format!(
            "worker_e2e: remote worker built {HERMETIC} in {:.0} s (from the server's start to \
             the build's end)\n",
            built_in.as_secs_f64()
        ),
    );
}
