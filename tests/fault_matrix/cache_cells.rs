//! A corrupted install-cache entry (no guest): the FAKE driver (its "disk" is a file) with a
//! real OpenSSH server on 127.0.0.1 as the guest (tests/ssh_common), so the real cache store,
//! lookup, locks and `sync` over SSH run. Each kind of damage — `entry.json` garbled or empty,
//! the disk truncated, overwritten or missing — must be detected and reported, the entry
//! removed and never booted, the install done again and stored afresh, which the next build
//! then uses.

use crate::harness::{assert_complete, fake_builder, FakeKnobs, Scratch, Spec};
use crate::ssh_common::{prepare, Sshd};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one entry of the cache.
fn the_entry(cache: &Path) -> PathBuf {
    let e = crate::support::process::entries(&cache.join("entries"));
    assert_eq!(e.len(), 1, "one entry: {e:?}");
    e[0].clone()
}

type Damage = fn(&Path);

#[test]
fn a_damaged_install_cache_entry_is_reported_removed_and_never_booted() {
    let s = Scratch::new("cache-damage");
    let files = prepare(false);
    let mut sshd = Sshd::start(&files, crate::support::free_port(), None);
    sshd.wait_listening();
    let cache = s.path().join("cache");
    let spec = Spec {
        driver: "fake".into(),
        fake: FakeKnobs {
            disk_state: true,
            ssh_port: Some(sshd.port),
            ..Default::default()
        },
        builder: fake_builder(
            &s.out(),
            json!({
                "communicator": "ssh",
                "ssh_username": "root",
                "ssh_private_key_file": files.client_key.display().to_string(),
                "ssh_timeout": "30s",
            }),
        ),
        cache_dir: Some(cache.clone()),
        ..Spec::default()
    };
    let build = |what: &str| {
        let r = s.run(&spec, Duration::from_secs(120));
        assert_eq!(r.code, 0, "{what}:\n{}", r.text);
        assert_complete(&s.out());
        r.text
    };
    let first = build("first build");
    assert!(first.contains("install cache: miss"), "{first}");
    assert!(first.contains("install cache: stored"), "{first}");

    let damages: [(&str, Damage, &str); 5] = [
        (
            "entry.json garbled",
            |e| std::fs::write(e.join("entry.json"), "{\"format\": 1, \"key\": tru").unwrap(),
            "entry.json is not valid",
        ),
        (
            "entry.json empty",
            |e| std::fs::write(e.join("entry.json"), "").unwrap(),
            "entry.json is not valid",
        ),
        (
            "disk truncated",
            |e| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(e.join("disk0.qcow2"))
                    .unwrap();
                f.set_len(1).unwrap();
            },
            "disk0.qcow2 is 1 bytes but was 4 when stored",
        ),
        (
            "disk overwritten in place",
            |e| std::fs::write(e.join("disk0.qcow2"), "DISK").unwrap(),
            "disk0.qcow2 was modified after it was stored",
        ),
        (
            "disk missing",
            |e| std::fs::remove_file(e.join("disk0.qcow2")).unwrap(),
            "disk0.qcow2 (disk0): No such file or directory",
        ),
    ];
    for (what, damage, says) in damages {
        let entry = the_entry(&cache);
        std::thread::sleep(Duration::from_millis(20)); // a later modification time
        damage(&entry);
        let text = build(what);
        let warning = text
            .lines()
            .find(|l| l.contains("is damaged"))
            .unwrap_or_else(|| panic!("{what}: not reported:\n{text}"));
        assert!(warning.contains(says), "{what}: {warning}");
        assert!(warning.contains("it was removed"), "{what}: {warning}");
        assert!(
            warning.contains("installing from the media"),
            "{what}: {warning}"
        );
        assert!(
            !text.contains("install cache: hit"),
            "{what}: booted:\n{text}"
        );
        assert!(
            text.contains("install cache: stored"),
            "{what}: a fresh entry is stored:\n{text}"
        );
    }
    // The fresh entry is whole: the next build boots it.
    let last = build("after the damage");
    assert!(last.contains("install cache: hit"), "{last}");
    crate::support::process::assert_nothing_left(s.path(), &[], crate::harness::OURS, "cache");
}
