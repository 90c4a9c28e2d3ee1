//! One installed test OS shared by the guest tests that are not about installing.
//!
//! A test-OS install costs minutes under TCG. Tests whose subject is what happens after the
//! install (a wrong SSH password, faults while provisioning, a remote worker, the secret canary
//! scan, …) build [`SHARED_TARGET`] named [`SHARED_NAME`] with the test configuration and
//! `--cache use --cache-dir` [`shared_install`]: their build boots the installed system from the
//! install cache (docs/CACHE.md) instead of the ISO. The first test of a run that needs it pays
//! for one real install (a CLI build interrupted once the install is stored); the others, in this
//! or any other test binary of the run, find it. A file lock serializes the populating build.
//!
//! Where: `$OSIMAGER_TEST_INSTALL_CACHE`, else `<target>/testos-install-cache` (kept between
//! local runs; CI starts without it). The build's key covers everything that changes the install
//! (the ISO, answer files, boot command, hardware keys): a test that changes one of those gets a
//! miss and installs, as any build would — pass only defines that do not change the install.

use super::process::Spawned;
use super::{media_cache, osimager_bin, path_with_tools, repo, target_dir};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The target the shared install is of.
pub const SHARED_TARGET: &str = "qemu/hermetic/testos-1-x86_64";
/// The build name (the guest's host name, part of the answer file) of the shared install.
pub const SHARED_NAME: &str = "testos-shared";

/// The test configuration (`XDG_CONFIG_HOME`) the shared install is built with.
pub fn testos_config() -> PathBuf {
    repo().join("tests/testos/config")
}

/// `osimager ARGS` with the test configuration, every per-user directory in `scratch`, and the
/// tools venv on PATH (ansible-playbook).
pub fn testos_cli(scratch: &Path, args: &[&str]) -> Command {
    std::fs::create_dir_all(scratch.join("tmp")).unwrap();
    let mut c = Command::new(osimager_bin());
    c.args(args)
        .env("XDG_CONFIG_HOME", testos_config())
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .env("OSIMAGER_TESTOS_CACHE", media_cache())
        .env("TMPDIR", scratch.join("tmp"))
        .env("PATH", path_with_tools());
    c
}

/// The install cache directory that holds the shared install of [`SHARED_TARGET`] /
/// [`SHARED_NAME`], installing it first when it is not there (a guest build: call it from a
/// test that checked [`super::e2e_enabled`]).
pub fn shared_install() -> PathBuf {
    let dir = std::env::var_os("OSIMAGER_TEST_INSTALL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("testos-install-cache"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let lock_path = dir.join(".populate.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
    // Held until this function returns (the File closes): one populating build at a time.
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", lock_path.display());

    let scratch = tempfile::Builder::new()
        .prefix("shared-install-")
        .tempdir()
        .unwrap();
    let decision = decide(scratch.path(), &dir);
    if decision.contains("install cache: would hit") {
        return dir;
    }
    eprintln!("shared test-OS install: {decision}\nshared test-OS install: installing it once");
    let out = scratch.path().join("out");
    let dir_s = dir.display().to_string();
    let out_s = out.display().to_string();
    let mut child = Spawned::start(testos_cli(
        scratch.path(),
        &[
            "build",
            SHARED_TARGET,
            SHARED_NAME,
            "--cache",
            "use",
            "--cache-dir",
            &dir_s,
            "--force",
            "--output-dir",
            &out_s,
        ],
    ));
    // The install is stored in the background while provisioning starts; once it is committed
    // the rest of the build is of no use here: interrupt it (its cleanup waits for the store).
    child.wait_line("install cache: stored", Duration::from_secs(1800));
    child.signal(libc::SIGINT);
    child.wait_exit(Duration::from_secs(300));
    let after = decide(scratch.path(), &dir);
    assert!(
        after.contains("install cache: would hit"),
        "the shared test-OS install was built but the next build would not use it: {after}"
    );
    dir
}

/// `build -n --cache use`: the install cache's decision for the shared install, nothing built.
fn decide(scratch: &Path, dir: &Path) -> String {
    let out = testos_cli(
        scratch,
        &[
            "build",
            SHARED_TARGET,
            SHARED_NAME,
            "-n",
            "--cache",
            "use",
            "--cache-dir",
            &dir.display().to_string(),
        ],
    )
    .output()
    .expect("osimager runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "osimager build -n failed:\n{text}");
    text.lines()
        .find(|l| l.contains("install cache"))
        .unwrap_or_else(|| panic!("no install cache line in the dry run:\n{text}"))
        .to_string()
}
