//! The install cache through the native engine, without a guest: the FAKE driver
//! (`osimager_drivers::fake`, which runs no VM and keeps its "disk" as a file) with a real
//! OpenSSH server on 127.0.0.1 as the communicator's guest (tests/ssh_common), so the engine's
//! real `wait_for_ssh`, `sync` over SSH, cache store, locks and eviction run. What a real
//! QEMU guest adds (snapshot, overlay boot, the exported image's content) is in
//! tests/install_cache_e2e.rs.

mod ssh_common;
mod support;

use osimager::engine::{self, Build, BuildContext, BuildOptions};
use osimager::install_cache::{CacheMode, CacheOptions, Store};
use osimager::plan::{BuildPlan, RenderedFile};
use osimager_drivers::fake::{registry_entry, FakeControl};
use osimager_drivers::{DriverRegistry, SshAddress};
use osimager_events::{BuildEvent, MemorySink, Outcome};
use serde_json::json;
use ssh_common::{prepare, Sshd, SshdFiles};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::free_port;

struct Guest {
    files: SshdFiles,
    sshd: Sshd,
}

fn guest() -> Guest {
    let files = prepare(false);
    let mut sshd = Sshd::start(&files, free_port(), None);
    sshd.wait_listening();
    Guest { files, sshd }
}

fn plan(g: &Guest, out: &Path, memory: u64, answer: &str) -> BuildPlan {
    let b = json!({
        "type": "fake-iso",
        "vm_name": "fake-vm",
        "output_directory": out.display().to_string(),
        "boot_wait": "0s",
        "boot_command": ["<esc>install ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "memory": memory,
        "communicator": "ssh",
        "ssh_username": "root",
        "ssh_private_key_file": g.files.client_key.display().to_string(),
        "ssh_timeout": "30s",
        "shutdown_timeout": "5s",
    });
    let mut p = BuildPlan {
        target: "fake/lab/os-1-x86_64".into(),
        name: "vm1".into(),
        builder: b.as_object().unwrap().clone(),
        ..BuildPlan::default()
    };
    p.inputs.files = vec![RenderedFile {
        dest: "ks.cfg".into(),
        content: answer.into(),
    }];
    p
}

struct Run {
    ok: bool,
    error: String,
    calls: Vec<String>,
    log: Vec<String>,
    steps: Vec<(String, Outcome)>,
}

async fn build(
    g: &Guest,
    root: &Path,
    cache_dir: &Path,
    mode: CacheMode,
    plan: BuildPlan,
    max_size: Option<u64>,
) -> Run {
    let control = FakeControl {
        disk_state: true,
        ssh: Some(SshAddress {
            host: "127.0.0.1".into(),
            port: g.sshd.port,
        }),
        ..FakeControl::default()
    };
    let temp = tempfile::tempdir_in(root).unwrap();
    let mut ctx = BuildContext::from_process();
    ctx.secrets = osimager::secret::Registry::new();
    ctx.temp_root = root.to_path_buf();
    ctx.drivers = DriverRegistry::default().register(registry_entry("fake-iso", control.clone()));
    let opts = BuildOptions {
        temp_dir: Some(temp.path().to_path_buf()),
        force: true,
        cache: CacheOptions {
            mode,
            dir: Some(cache_dir.to_path_buf()),
            max_size,
        },
        ..BuildOptions::default()
    };
    let b = Build::new(plan, opts, ctx);
    let sink = MemorySink::default();
    b.events.attach(Arc::new(sink.clone()), false);
    let r = engine::run(b).await;
    let recs = sink.records();
    Run {
        ok: r.is_ok(),
        error: r.err().map(|e| e.message()).unwrap_or_default(),
        calls: control.calls(),
        log: recs
            .iter()
            .filter_map(|r| match &r.event {
                BuildEvent::Log { line, .. } => Some(line.clone()),
                BuildEvent::Warning { message } => Some(format!("warning: {message}")),
                _ => None,
            })
            .collect(),
        steps: recs
            .iter()
            .filter_map(|r| match &r.event {
                BuildEvent::StepFinished { step, outcome, .. } => Some((step.clone(), *outcome)),
                _ => None,
            })
            .collect(),
    }
}

fn line<'a>(r: &'a Run, needle: &str) -> &'a str {
    r.log
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line with {needle:?}: {:#?}", r.log))
}

fn outcome(r: &Run, step: &str) -> Option<Outcome> {
    r.steps.iter().find(|(s, _)| s == step).map(|(_, o)| *o)
}

#[tokio::test]
async fn miss_stores_hit_boots_the_stored_disk_and_a_change_misses_naming_it() {
    let g = guest();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let out = root.path().join("out/vm1");

    // 1. Empty cache: miss, install, store.
    let r1 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 512, "a\n"),
        None,
    )
    .await;
    assert!(r1.ok, "{}\n{:#?}", r1.error, r1.log);
    assert!(line(&r1, "install cache: miss").contains("no cached install of fake/lab/os-1-x86_64"));
    assert!(
        r1.calls.iter().any(|c| c == "save_disk_state"),
        "{:?}",
        r1.calls
    );
    assert!(
        r1.calls.iter().any(|c| c.starts_with("keys:")),
        "installs: {:?}",
        r1.calls
    );
    line(&r1, "install cache: stored");
    assert_eq!(outcome(&r1, "save_install"), Some(Outcome::Ok));
    let store = Store::open(&cache, u64::MAX).unwrap();
    let entries = store.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].meta.target, "fake/lab/os-1-x86_64");
    assert!(!entries[0].in_use);
    // The entry's disk is what the fake wrote at install time, read-only.
    let disk = entries[0].dir.join(&entries[0].meta.files["disk0"]);
    assert_eq!(std::fs::read_to_string(&disk).unwrap(), "disk");
    assert!(std::fs::metadata(&disk).unwrap().permissions().readonly());
    // No secret and no input value in the entry, only salted digests.
    let meta = std::fs::read_to_string(entries[0].dir.join("entry.json")).unwrap();
    assert!(!meta.contains("a\\n") && !meta.contains("esc"), "{meta}");

    // 2. Same inputs: hit. The VM is made from the cached disk; nothing is typed; no ISO.
    let r2 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 512, "a\n"),
        None,
    )
    .await;
    assert!(r2.ok, "{}\n{:#?}", r2.error, r2.log);
    line(&r2, "install cache: hit");
    assert!(
        r2.calls.iter().any(|c| c == "use_disk_state:disk"),
        "{:?}",
        r2.calls
    );
    assert!(
        !r2.calls.iter().any(|c| c.starts_with("keys:")),
        "{:?}",
        r2.calls
    );
    assert!(
        !r2.calls.iter().any(|c| c == "save_disk_state"),
        "{:?}",
        r2.calls
    );
    for step in ["boot_wait", "boot_command", "iso"] {
        assert_eq!(outcome(&r2, step), Some(Outcome::Skipped), "{step}");
    }
    assert_eq!(outcome(&r2, "save_install"), None);
    // The lease ended with the build.
    assert!(!store.entries()[0].in_use);

    // 3. A hardware key changed: miss, and the log says which.
    let r3 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 1024, "a\n"),
        None,
    )
    .await;
    assert!(r3.ok, "{}", r3.error);
    let miss = line(&r3, "install cache: miss");
    assert!(miss.contains("builder key memory changed"), "{miss}");
    assert!(!miss.contains("generated file"), "{miss}");
    // 4. The answer file changed: miss naming it.
    let r4 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 1024, "b\n"),
        None,
    )
    .await;
    let miss = line(&r4, "install cache: miss");
    assert!(miss.contains("generated file ks.cfg changed"), "{miss}");
    assert_eq!(store.entries().len(), 3);

    // 5. --cache off: no cache steps at all.
    let r5 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Off,
        plan(&g, &out, 512, "a\n"),
        None,
    )
    .await;
    assert!(r5.ok);
    assert_eq!(outcome(&r5, "install_cache"), None);
    assert!(!r5.log.iter().any(|l| l.contains("install cache")));

    // 6. --cache refresh: installs although an entry exists, and replaces it.
    let created_before: Vec<u64> = store.entries().iter().map(|e| e.meta.created).collect();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r6 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Refresh,
        plan(&g, &out, 512, "a\n"),
        None,
    )
    .await;
    assert!(r6.ok, "{}", r6.error);
    assert!(line(&r6, "install cache: miss").contains("--cache refresh"));
    assert!(r6.calls.iter().any(|c| c.starts_with("keys:")));
    line(&r6, "install cache: stored");
    let after = store.entries();
    assert_eq!(after.len(), 3);
    // The entry of the first build's key was replaced by a newer one.
    let newest = after.iter().map(|e| e.meta.created).max().unwrap();
    assert!(
        newest > *created_before.iter().max().unwrap(),
        "not replaced"
    );
}

#[tokio::test]
async fn concurrent_builds_with_one_key_store_one_entry() {
    let g = guest();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let runs = futures_join(
        build(
            &g,
            root.path(),
            &cache,
            CacheMode::Use,
            plan(&g, &root.path().join("o1"), 512, "a\n"),
            None,
        ),
        build(
            &g,
            root.path(),
            &cache,
            CacheMode::Use,
            plan(&g, &root.path().join("o2"), 512, "a\n"),
            None,
        ),
    )
    .await;
    for r in [&runs.0, &runs.1] {
        assert!(r.ok, "{}\n{:#?}", r.error, r.log);
    }
    let store = Store::open(&cache, u64::MAX).unwrap();
    let entries = store.entries();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(
        std::fs::read_to_string(entries[0].dir.join(&entries[0].meta.files["disk0"])).unwrap(),
        "disk"
    );
    // Nothing half-written is left behind.
    let staging: Vec<PathBuf> = std::fs::read_dir(cache.join("staging"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    // Both said what they did: one stored, the other stored too or found it there.
    let said = |r: &Run| {
        r.log.iter().any(|l| {
            l.contains("install cache: stored")
                || l.contains("stored meanwhile")
                || l.contains("install cache: hit")
        })
    };
    assert!(said(&runs.0) && said(&runs.1));
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test]
async fn the_size_limit_evicts_the_least_recently_used_entry_not_in_use() {
    let g = guest();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let out = root.path().join("out/vm1");
    // Every entry here takes one file-system block or so (4-8 KiB with entry.json).
    let r1 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 512, "a\n"),
        None,
    )
    .await;
    assert!(r1.ok, "{}", r1.error);
    let store = Store::open(&cache, u64::MAX).unwrap();
    let one = store.entries()[0].size;
    let first = store.entries()[0].meta.key.clone();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r2 = build(
        &g,
        root.path(),
        &cache,
        CacheMode::Use,
        plan(&g, &out, 768, "a\n"),
        Some(one + one / 2),
    )
    .await;
    assert!(r2.ok, "{}", r2.error);
    let evicted = line(&r2, "install cache: evicted");
    assert!(evicted.contains(&first[..12]), "{evicted}");
    let left = store.entries();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].meta.key, first);
}
