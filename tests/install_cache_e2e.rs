//! The install cache with real QEMU guests (TCG) of the hermetic test OS (tests/testos), the
//! real SSH communicator and real ansible-playbook, through the `osimager` CLI:
//!
//! * one full install with `--cache use` (a miss: the guest's disk is frozen when it answers on
//!   SSH and stored), then a rebuild after a playbook-only change (a different marker in the
//!   extra-vars): a hit that boots the cached install, and the exported image holds the new
//!   marker and not the old one (booted again and read over SSH);
//! * each class of key input changed in turn — the ISO, the answer file, the boot command, the
//!   memory and disk keys, a data-tree template — each a miss naming what changed, checked with
//!   `build -n --cache use` (the same lookup a build makes, without installing again); the
//!   unchanged configuration still hits;
//! * `osimager cache list` and `prune`.
//!
//! CI cost: one full install plus one cached rebuild (`OSIMAGER_E2E=1`). With
//! `OSIMAGER_E2E_CACHE_FULL=1` every changed input is also built for real (a full install
//! each, ~6 more): each must miss, install and succeed.

mod support;

use osimager::comm::{wait_ready, SshConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{e2e_enabled, free_port, media_cache, path_with_tools, repo};

const TARGET: &str = "qemu/hermetic/testos-1-x86_64";
const NAME: &str = "cache-e2e";

/// `cp -rL`: the test config with its symlinks (spec, answer-file template) as files.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let to = dst.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

struct Env {
    scratch: tempfile::TempDir,
}

impl Env {
    fn s(&self) -> &Path {
        self.scratch.path()
    }

    fn cache(&self) -> PathBuf {
        self.s().join("cache")
    }

    /// `osimager ARGS` with the test configuration `config` (an XDG_CONFIG_HOME).
    fn osimager(&self, config: &Path, args: &[&str]) -> (bool, String) {
        std::fs::create_dir_all(self.s().join("tmp")).unwrap();
        let out = Command::new(support::osimager_bin())
            .args(args)
            .env("XDG_CONFIG_HOME", config)
            .env("XDG_DATA_HOME", self.s().join("data"))
            .env("XDG_CACHE_HOME", self.s().join("xdgcache"))
            .env("OSIMAGER_TESTOS_CACHE", media_cache())
            .env("OSIMAGER_CACHE_DIR", self.cache())
            .env("TMPDIR", self.s().join("tmp"))
            .env("PATH", path_with_tools())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A real build with `--cache use`.
    fn build(&self, config: &Path, out: &str, extra: &[&str]) -> String {
        let out_dir = self.s().join("vms").join(out);
        let started = Instant::now();
        let mut args = vec![
            "build",
            TARGET,
            NAME,
            "--cache",
            "use",
            "--force",
            "--output-dir",
            out_dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, text) = self.osimager(config, &args);
        eprintln!(
            "build {out} took {:.1}s\n{}",
            started.elapsed().as_secs_f64(),
            text.lines()
                .filter(|l| l.contains("==>") || l.contains("install cache"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(ok, "build {out} failed:\n{text}");
        text
    }

    /// `build -n --cache use`: the cache's decision, nothing built.
    fn decide(&self, config: &Path, extra: &[&str]) -> String {
        let mut args = vec!["build", TARGET, NAME, "-n", "--cache", "use"];
        args.extend(extra);
        let (ok, text) = self.osimager(config, &args);
        assert!(ok, "dry run failed:\n{text}");
        text.lines()
            .find(|l| l.contains("install cache"))
            .unwrap_or_else(|| panic!("no install cache line:\n{text}"))
            .to_string()
    }
}

/// The image's marker files, read over SSH from a VM booted on it (snapshot=on: the image is
/// not changed).
fn read_markers(image: &Path) -> String {
    let port = free_port();
    let mut qemu = support::boot_image(image, port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(async {
        let cfg = SshConfig {
            username: "testos".into(),
            password: Some(osimager::secret::Secret::new("osi-test-pw")),
            timeout: Duration::from_secs(600),
            ..SshConfig::default()
        };
        let sess = wait_ready("127.0.0.1", port, &cfg).await?;
        let (_st, out, _err) = sess
            .exec_capture("cat /etc/osimager-marker /etc/osimager-build")
            .await?;
        sess.close().await;
        Ok::<_, osimager::comm::CommError>(out)
    });
    let _ = qemu.kill();
    let _ = qemu.wait();
    r.expect("SSH into the exported image")
}

fn image_of(out: &Path) -> PathBuf {
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    out.join(sums.lines().next().unwrap().split("  ").nth(1).unwrap())
}

/// A media directory holding another ISO (the test OS's, with padding appended: a different
/// file that boots the same) and its SHA256SUMS.
fn other_media(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let iso = dir.join("testos.iso");
    std::fs::copy(media_cache().join("current/testos.iso"), &iso).unwrap();
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&iso).unwrap();
    f.write_all(&[0u8; 2048]).unwrap();
    drop(f);
    let sum = Command::new("sha256sum").arg(&iso).output().unwrap();
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(dir.join("SHA256SUMS"), format!("{hex}  testos.iso\n")).unwrap();
    dir.to_path_buf()
}

/// The classes of key input, each changed in turn: (what, config dir, -D defines, the input
/// the miss must name).
fn changes(e: &Env) -> Vec<(&'static str, PathBuf, Vec<String>, &'static str)> {
    let base = e.s().join("config-base");
    copy_tree(&repo().join("tests/testos/config"), &base);
    // The boot command: a spec (user layer) whose boot command adds a kernel argument.
    let boot = e.s().join("config-boot");
    copy_tree(&base, &boot);
    let spec = boot.join("osimager/specs/testos/spec.json");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(
            "<wait>install url=",
            "<wait>install testos.onerror=poweroff url=",
        ),
    )
    .unwrap();
    // A data-tree template: the answer-file template with a comment line more.
    let tpl = e.s().join("config-template");
    copy_tree(&base, &tpl);
    let cfg = tpl.join("osimager/files/testos/testos.cfg");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("# changed by the install cache test\n");
    std::fs::write(&cfg, text).unwrap();
    let media = other_media(&e.s().join("media2"));
    vec![
        (
            "ISO",
            base.clone(),
            vec![format!("testos_media={}", media.display())],
            "ISO changed",
        ),
        (
            "answer file",
            base.clone(),
            vec!["testos_password=osi-test-pw-2".into()],
            "generated file testos.cfg changed",
        ),
        ("boot command", boot, vec![], "boot command changed"),
        (
            "memory",
            base.clone(),
            vec!["memory=640".into()],
            "builder key memory changed",
        ),
        (
            "disk",
            base.clone(),
            vec!["boot_disk_size=2304".into()],
            "builder key disk_size changed",
        ),
        (
            "data-tree template",
            tpl,
            vec![],
            "data-tree file files/testos/testos.cfg changed",
        ),
    ]
}

fn defines(d: &[String]) -> Vec<&str> {
    d.iter().flat_map(|x| ["-D", x.as_str()]).collect()
}

#[test]
fn e2e_cached_rebuild_after_a_playbook_change_and_a_miss_for_each_key_input() {
    if !e2e_enabled() {
        return;
    }
    let e = Env {
        scratch: tempfile::Builder::new()
            .prefix("cache-e2e-")
            .tempdir()
            .unwrap(),
    };
    let config = repo().join("tests/testos/config");
    let first = e.build(
        &config,
        "first",
        &["-D", "ansible_extra_vars=osimager_marker=first-marker"],
    );
    assert!(
        first.contains("install cache: miss (no cached install"),
        "{first}"
    );
    assert!(first.contains("install cache: stored"), "{first}");
    let second = e.build(
        &config,
        "second",
        &["-D", "ansible_extra_vars=osimager_marker=second-marker"],
    );
    assert!(second.contains("install cache: hit"), "{second}");
    assert!(
        !second.contains("typing "),
        "a hit types no boot command:\n{second}"
    );
    // The cached rebuild's image: the new playbook's marker, not the old one's.
    let markers = read_markers(&image_of(&e.s().join("vms/second")));
    assert!(markers.contains("second-marker"), "{markers}");
    assert!(!markers.contains("first-marker"), "{markers}");
    assert!(
        markers.contains("OSIMAGER_MARKER=second-marker"),
        "{markers}"
    );
    let _ = std::fs::remove_dir_all(e.s().join("vms"));

    // Each class of key input: a miss naming it; the unchanged configuration: a hit.
    let cases = changes(&e);
    let same = e.decide(&cases[0].1, &[]);
    assert!(same.contains("would hit"), "{same}");
    for (what, config, d, named) in &cases {
        let line = e.decide(config, &defines(d));
        eprintln!("{what}: {line}");
        assert!(line.contains("would miss"), "{what}: {line}");
        assert!(line.contains(named), "{what}: {line}");
    }
    if std::env::var("OSIMAGER_E2E_CACHE_FULL").as_deref() == Ok("1") {
        for (i, (what, config, d, named)) in cases.iter().enumerate() {
            let text = e.build(config, &format!("changed-{i}"), &defines(d));
            let miss = text
                .lines()
                .find(|l| l.contains("install cache: miss"))
                .unwrap_or_else(|| panic!("{what}: no miss:\n{text}"));
            assert!(miss.contains(named), "{what}: {miss}");
            let _ = std::fs::remove_dir_all(e.s().join("vms"));
        }
    }

    // cache list / prune.
    let (ok, list) = e.osimager(&config, &["cache", "list"]);
    assert!(ok, "{list}");
    assert!(list.contains(TARGET) && list.contains(NAME), "{list}");
    let (ok, json) = e.osimager(&config, &["cache", "list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v[0]["size"].as_u64().unwrap() > 10 << 20, "{json}");
    assert_eq!(v[0]["in_use"], false);
    let (ok, text) = e.osimager(&config, &["cache", "prune", "--all"]);
    assert!(ok, "{text}");
    let (_, list) = e.osimager(&config, &["cache", "list"]);
    assert!(list.contains("no cached installs"), "{list}");
}
