//! The secret canary (issue 15, docs/RELIABILITY.md section 5): a distinctive secret
//! (`osi-canary-<random>`) in the secrets file, in Vault (a real OpenBao dev server), in a
//! location's password and in an answer file (tests/canary_support); builds use it while a
//! sampler reads the argv and environment of every process of the build from /proc; afterwards
//! every log, the `--events` stream, the manifest, the output and `<out>.build` directories,
//! temp leftovers, the per-user dirs and the install cache are searched (tests/support/canary).
//! Zero hits; the number of places searched is printed and written to the test reports.
//!
//! * `dry_runs_from_both_stores` (CI, no guest): each store delivers its canary values
//!   (`osimager defs` prints them, as `mkosimage -x` does), and `build -n` (native and Packer) and
//!   `dump --redact` show none of them.
//! * `native_build_with_the_canary` (guest, opt-in: `#[ignore]`, run by `scripts/test.sh` with
//!   `OSIMAGER_E2E_CANARY=1`): a real native build
//!   of the test OS with the Vault channel. It uses an install cache kept with the media
//!   (`$OSIMAGER_TESTOS_CACHE/canary/`, with its own persistent canary value), so only the first
//!   run on a machine installs; later runs boot the stored install.

mod bao_support;
mod canary_support;
mod support;

use canary_support::{user_config, Store, TARGET};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::canary::{Canary, Sampler, Scan};
use support::process::Spawned;

/// The per-user dirs and temp dir of a run, all in `s`.
fn command(s: &Path, home: &Path, vault: Option<u16>, args: &[&str]) -> Command {
    for d in ["tmp", "data", "cache", "state"] {
        std::fs::create_dir_all(s.join(d)).unwrap();
    }
    let mut c = Command::new(support::osimager_bin());
    c.args(args)
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", s.join("data"))
        .env("XDG_CACHE_HOME", s.join("cache"))
        .env("XDG_STATE_HOME", s.join("state"))
        .env("OSIMAGER_TESTOS_CACHE", support::media_cache())
        .env("OSIMAGER_DATA_DIR", support::repo())
        .env("TMPDIR", s.join("tmp"))
        .env("PATH", support::path_with_tools())
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null());
    if let Some(port) = vault {
        // The dev server's root token: not a canary value.
        c.env("VAULT_ADDR", format!("http://127.0.0.1:{port}"))
            .env("VAULT_TOKEN", "root");
    }
    c
}

/// Run to the end with the sampler on the process; (success, stdout + stderr).
fn run_sampled(c: Command, canary: &Canary, scan: &mut Scan) -> (bool, String) {
    let mut sp = Spawned::start(c);
    let sampler = Sampler::start(canary, sp.id(), true);
    let (code, _) = sp.exit_and_output(Duration::from_secs(120));
    scan.samples(&sampler.finish());
    let text = sp.seen.join("\n");
    scan.text("command output", "stdout and stderr", &text);
    (code == 0, text)
}

/// The search itself: it finds the canary plainly and base64-encoded at every alignment, in a
/// file and in a tree, and in a child's argv and environment; it finds nothing in clean ones.
#[test]
fn the_search_finds_what_it_looks_for() {
    use base64::Engine as _;
    let canary = Canary::new();
    let t = tempfile::tempdir().unwrap();
    let mut planted = 0;
    for (i, prefix) in ["", "a", "ab"].iter().enumerate() {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(format!("{prefix}{}:pw", canary.value));
        std::fs::write(t.path().join(format!("b64-{i}")), format!("Basic {b64}\n")).unwrap();
        planted += 1;
    }
    std::fs::create_dir(t.path().join("sub")).unwrap();
    std::fs::write(t.path().join("sub/plain"), canary.tagged("x")).unwrap();
    std::fs::write(t.path().join("clean"), "osi-canary-0000000000000000").unwrap();
    planted += 1;
    let mut scan = Scan::new(&canary);
    scan.tree(t.path());
    assert_eq!(scan.hits.len(), planted, "{:?}", scan.hits);

    let mut c = Command::new("sh");
    c.args(["-c", "sleep 1 & sleep 1; wait", "x", &canary.value]);
    let mut clean = Command::new("sh");
    clean.args(["-c", "sleep 1"]);
    let mut env = Command::new("sh");
    env.args(["-c", "sleep 1"])
        .env("SOMETHING", canary.tagged("env"));
    let mut hits = Vec::new();
    for (cmd, want) in [(c, true), (clean, false), (env, true)] {
        let mut sp = Spawned::start(cmd);
        let sampler = Sampler::start(&canary, sp.id(), true);
        sp.exit_and_output(Duration::from_secs(10));
        let got = sampler.finish();
        assert_eq!(!got.hits.is_empty(), want, "{got:?}");
        hits.extend(got.hits);
    }
    assert!(hits.iter().any(|h| h.ends_with("environ")), "{hits:?}");
}

#[test]
fn dry_runs_from_both_stores() {
    let canary = Canary::new();
    let mut scan = Scan::new(&canary);
    for store in [Store::File, Store::Vault] {
        let s = tempfile::Builder::new()
            .prefix("canary-dry-")
            .tempdir()
            .unwrap();
        let s = s.path();
        let bao = (store == Store::Vault).then(|| canary_support::vault(&canary));
        let port = bao.as_ref().map(|b| b.port);
        let home = user_config(&s.join("config"), &canary, store, None);
        // The channel is live: the resolved defs hold this store's values (defs prints
        // secrets by design, like `mkosimage -x`; it is not searched).
        let out = command(s, &home, port, &["defs", TARGET, "c1"])
            .output()
            .unwrap();
        let defs = String::from_utf8_lossy(&out.stdout);
        let (pw, loc) = match store {
            Store::File => (
                canary_support::file_password(&canary),
                canary_support::file_location_password(&canary),
            ),
            Store::Vault => (
                canary_support::vault_password(&canary),
                canary_support::vault_location_password(&canary),
            ),
        };
        assert!(
            out.status.success() && defs.contains(&format!("\"{pw}\"")),
            "{store:?}: the guest password is not read from the store:\n{defs}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(defs.contains(&format!("\"{loc}\"")), "{store:?}: {defs}");
        let events = s.join("events.ndjson");
        let ev = events.display().to_string();
        for args in [
            vec![
                "build",
                TARGET,
                "c1",
                "-n",
                "--force",
                "--events",
                ev.as_str(),
            ],
            vec!["dump", TARGET, "c1", "--redact"],
            vec!["build", TARGET, "c1", "-n", "--force", "--engine", "packer"],
        ] {
            let (ok, text) = run_sampled(command(s, &home, port, &args), &canary, &mut scan);
            assert!(ok, "{store:?} {args:?} failed:\n{text}");
        }
        scan.file(&events);
        for d in ["tmp", "data", "cache", "state"] {
            scan.tree(&s.join(d));
        }
        drop(bao);
    }
    scan.assert_clean("secret-canary-dry-run.txt");
}

/// The canary value and install cache kept with the test-OS media, so that a rebuild with the
/// same answer file hits the cache: `$OSIMAGER_TESTOS_CACHE/canary/{value,install}`.
fn persistent_canary() -> (Canary, PathBuf) {
    let dir = support::media_cache().join("canary");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("value");
    let c = match std::fs::read_to_string(&f) {
        Ok(v) if v.trim().starts_with("osi-canary-") => Canary::with_value(v.trim()),
        _ => {
            let c = Canary::new();
            std::fs::write(&f, &c.value).unwrap();
            c
        }
    };
    (c, dir.join("install"))
}

/// Files of the guest's own data: the image in the output dir, an install-cache entry's
/// disks and memory.
fn guest_data(out: &Path) -> impl Fn(&Path) -> bool + '_ {
    move |p: &Path| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        (p.parent() == Some(out) && name != "SHA256SUMS")
            || name.ends_with(".qcow2")
            || name == "vmstate.bin"
            || name.ends_with(".fd")
    }
}

#[test]
#[ignore = "opt-in guest build: OSIMAGER_E2E_CANARY=1 scripts/test.sh, or OSIMAGER_E2E=1 cargo test --test secret_canary -- --ignored"]
fn native_build_with_the_canary() {
    if !support::e2e_enabled() {
        return;
    }
    let (canary, install_cache) = persistent_canary();
    let mut scan = Scan::new(&canary);
    let scratch = tempfile::Builder::new()
        .prefix("canary-e2e-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let bao = canary_support::vault(&canary);
    let home = user_config(&s.join("config"), &canary, Store::Vault, None);
    let out = s.join("vms/canary1");
    let events = s.join("events.ndjson");
    let args = [
        "build",
        TARGET,
        "canary1",
        "--engine",
        "native",
        "--force",
        "--cache",
        "use",
        "--cache-dir",
        install_cache.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ];
    let started = Instant::now();
    let mut sp = Spawned::start(command(s, &home, Some(bao.port), &args));
    let sampler = Sampler::start(&canary, sp.id(), true);
    let (code, _) = sp.exit_and_output(Duration::from_secs(1800));
    let samples = sampler.finish();
    let took = started.elapsed().as_secs_f64();
    let text = sp.seen.join("\n");
    assert_eq!(code, 0, "the canary build failed:\n{text}");
    let cache_line = text
        .lines()
        .find(|l| l.contains("install cache:"))
        .unwrap_or("no install cache line")
        .to_string();
    // The guest's password is the Vault canary: the build logged in over SSH with it.
    assert!(text.contains("connected to"), "{text}");
    // The processes really were sampled: QEMU among them.
    assert!(
        samples
            .cmdlines
            .iter()
            .any(|(_, c)| c.contains("qemu-system")),
        "the sampler never saw QEMU: {:?}",
        samples.cmdlines
    );

    scan.samples(&samples);
    scan.text("command output", "stdout and stderr", &text);
    scan.file(&events);
    // The output, its .build dir and the manifest next to them; every per-user dir; temp
    // leftovers; the install cache (entry.json and friends are osimager's, the disks and the
    // memory image the guest's).
    let guest = guest_data(&out);
    scan.tree_with(&s.join("vms"), &guest);
    for d in ["tmp", "data", "cache", "state"] {
        scan.tree(&s.join(d));
    }
    scan.tree_with(&install_cache, &guest);
    drop(bao);
    eprintln!(
        "canary build took {took:.1}s ({cache_line}); {} processes sampled in {} rounds",
        samples.processes, samples.rounds
    );
    scan.assert_clean("secret-canary-native.txt");
}
