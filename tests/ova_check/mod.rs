//! Taking an OVA apart in tests (shared by `tests/virtualbox_e2e.rs` and the drivers crate's
//! `virtualbox_fake.rs`, which includes this file by path): the members of the ustar archive,
//! and the check of its manifest against them.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

/// The members of a ustar archive, in order: (name, contents).
pub fn tar_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while off + 512 <= data.len() && data[off] != 0 {
        let h = &data[off..off + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&h[124..136]).trim_matches(|c: char| c == '\0' || c == ' '),
            8,
        )
        .unwrap();
        out.push((name, data[off + 512..off + 512 + size].to_vec()));
        off += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// SHA-1 of `data` in hex (with `sha1sum`, as a user would check).
pub fn sha1_hex(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, data).unwrap();
    let out = std::process::Command::new("sha1sum")
        .arg(&p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every member but the manifest has a right SHA-1 line in the manifest text (VirtualBox's
/// `SHA1 (name) = hex`, or the OVF specification's `SHA1(name)= hex`).
pub fn assert_manifest(members: &[(String, Vec<u8>)], manifest: &str) {
    for (name, body) in members.iter().filter(|(n, _)| !n.ends_with(".mf")) {
        let sum = sha1_hex(body);
        assert!(
            manifest
                .lines()
                .any(|l| l == format!("SHA1 ({name}) = {sum}")
                    || l == format!("SHA1({name})= {sum}")),
            "no right digest for {name} in the manifest:\n{manifest}"
        );
    }
}
