//! The one harness shared by the integration and end-to-end tests (`mod support;`):
//!
//! * where things are: the repository, the cargo target dir, the tools venv
//!   (`$OSIMAGER_TOOLS_VENV`: the original OSImager, ansible-core, OpenBao, pykickstart), the
//!   hermetic test OS media, the report directory;
//! * skips that are visible and counted: [`skip`] prints the reason, appends it to
//!   `<reports>/skips.log` (scripts/test.sh prints the count and the reasons) and, in CI
//!   (`CI=true` or `OSIMAGER_E2E=1`), fails the test instead: CI runs everything;
//! * child processes ([`process`]): the osimager binary or a helper of the same test binary,
//!   their output read by a thread that is joined before the output is inspected, bounded
//!   waits, leftover-process and temp-dir checks;
//! * free loopback ports found at run time ([`ports`]) and a tiny HTTP stub ([`http_stub`]).
//! * the secret canary ([`canary`]): a value to feed to a build, a /proc sampler of the argv and
//!   environment of its processes, and a search of texts, files and trees for it.
//!
//! The drivers and http crates include `ports.rs` by path (it needs nothing but std + tokio).
#![allow(dead_code)]

pub mod canary;
pub mod http_stub;
pub mod installed;
pub mod ports;
pub mod process;

use std::io::Write;
use std::path::{Path, PathBuf};

#[allow(unused_imports)]
pub use ports::{closed_port, free_port, free_port_range};

/// The repository root (the osimager package).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test binary was built into (`<target>/<profile>/deps/<bin>`),
/// so `CARGO_TARGET_DIR` and profiles need no configuration.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() { d } else { repo().join(d) };
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| repo().join("target"))
}

/// Where tests write what the test command prints after the run (summaries, the skip log):
/// `$OSIMAGER_TEST_REPORTS`, else `<target>/test-reports`.
pub fn report_dir() -> PathBuf {
    let d = std::env::var_os("OSIMAGER_TEST_REPORTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-reports"));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

/// Write a summary the test command prints after the run (`<reports>/<name>`), and show it on
/// stderr for `--nocapture` runs.
pub fn write_report(name: &str, text: &str) {
    let p = report_dir().join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    eprintln!("{text}");
}

/// True in CI: `CI` is `true`/`1`, or `OSIMAGER_E2E=1` (what scripts/test.sh runs by default).
/// There nothing may be skipped.
pub fn ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
        || std::env::var("OSIMAGER_E2E").as_deref() == Ok("1")
}

/// The running test: `<binary>::<test>` (libtest names each test's thread after the test).
pub fn test_name() -> String {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => s,
        })
        .unwrap_or_default();
    let thread = std::thread::current();
    format!("{bin}::{}", thread.name().unwrap_or("?"))
}

/// Skip the running test (the caller returns right after): visible on stderr, counted in
/// `<reports>/skips.log`; a failure in CI (see [`ci`]).
pub fn skip(reason: &str) {
    let name = test_name();
    if ci() {
        panic!(
            "{name} would be skipped ({reason}), but CI (CI=true or OSIMAGER_E2E=1) runs every \
             test: install what is missing (scripts/setup-deps.sh) and build the test OS media \
             (tests/testos/build-media.sh)"
        );
    }
    eprintln!("SKIPPED {name}: {reason}");
    let log = report_dir().join("skips.log");
    let line = format!("{name}\t{}\n", reason.replace(['\n', '\t'], " "));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    f.write_all(line.as_bytes()).unwrap();
}

/// The tools venv (`$OSIMAGER_TOOLS_VENV`, set by scripts/test.sh; scripts/setup-deps.sh makes
/// it): the original OSImager, ansible-core, OpenBao, pykickstart.
pub fn tools_venv() -> PathBuf {
    let v = std::env::var_os("OSIMAGER_TOOLS_VENV").unwrap_or_else(|| {
        panic!(
            "OSIMAGER_TOOLS_VENV is not set: point it at the tools venv scripts/setup-deps.sh \
             creates (scripts/test.sh sets it), e.g. OSIMAGER_TOOLS_VENV=/opt/osimager-venv"
        )
    });
    let v = PathBuf::from(v);
    assert!(
        v.join("bin").is_dir(),
        "OSIMAGER_TOOLS_VENV={} has no bin/: run scripts/setup-deps.sh",
        v.display()
    );
    v
}

/// A program of the tools venv (`<venv>/bin/<name>`), which must exist.
pub fn tool(name: &str) -> PathBuf {
    let p = tools_venv().join("bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup-deps.sh (it installs the tools venv)",
        p.display()
    );
    p
}

/// `$PATH` with the tools venv's bin first (ansible-playbook for provisioners, `bao`, …).
pub fn path_with_tools() -> String {
    format!(
        "{}:{}",
        tools_venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The hermetic test OS media cache (`$OSIMAGER_TESTOS_CACHE`, default
/// `~/.cache/osimager-testos`); `current/` holds testos.iso and SHA256SUMS.
pub fn media_cache() -> PathBuf {
    std::env::var_os("OSIMAGER_TESTOS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/osimager-testos")
        })
}

/// The output directories of test-OS builds named here (`vms/NAME` under [`media_cache`],
/// where the hermetic location puts them, and `vms/NAME.build`, the build log a failed or
/// interrupted build keeps), removed when this is dropped, however the test ends.
pub struct VmOutputs(pub Vec<String>);

impl Drop for VmOutputs {
    fn drop(&mut self) {
        let vms = media_cache().join("vms");
        for n in &self.0 {
            let _ = std::fs::remove_dir_all(vms.join(n));
            let _ = std::fs::remove_dir_all(vms.join(format!("{n}.build")));
        }
    }
}

/// Guest builds of the test OS run with `OSIMAGER_E2E=1` (and need the media); otherwise the
/// test is skipped through [`skip`]. Returns whether to run.
pub fn e2e_enabled() -> bool {
    if std::env::var("OSIMAGER_E2E").as_deref() != Ok("1") {
        skip("guest build: set OSIMAGER_E2E=1 (and build the media: tests/testos/build-media.sh)");
        return false;
    }
    assert!(
        media_cache().join("current/testos.iso").is_file(),
        "no test OS media in {}: run tests/testos/build-media.sh first",
        media_cache().display()
    );
    true
}

/// The osimager binary of this build.
pub fn osimager_bin() -> &'static str {
    env!("CARGO_BIN_EXE_osimager")
}

/// Boot an exported test-OS qcow2 image under QEMU (TCG, 512 MiB, headless) with
/// `snapshot=on` (the image is not changed) and the guest's SSH port forwarded to
/// 127.0.0.1:`port` over a loopback-only user network. The caller kills the child.
pub fn boot_image(image: &Path, port: u16) -> std::process::Child {
    std::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-display",
            "none",
            "-no-user-config",
        ])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2,snapshot=on",
            image.display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
        ))
        .args(["-device", "virtio-net,netdev=n0", "-serial", "null"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 starts")
}
