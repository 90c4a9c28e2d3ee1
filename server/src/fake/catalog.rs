//! The fake backend's fixed catalog: targets, platforms, and name suggestions.

use crate::backend::{BackendError, BackendErrorKind};

/// dist, version, arch, platforms.
pub(super) type Entry = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

pub(super) const TARGETS: &[Entry] = &[
    ("testos", "1", "x86_64", &["qemu"]),
    ("debian", "11.11", "x86_64", &["qemu", "vsphere"]),
    (
        "debian",
        "12.12",
        "x86_64",
        &["qemu", "vsphere", "virtualbox"],
    ),
    ("debian", "12.12", "aarch64", &["qemu"]),
    ("rhel", "8.10", "x86_64", &["qemu", "vsphere", "vmware"]),
    ("rhel", "9.4", "x86_64", &["qemu", "vsphere", "vmware"]),
    ("rhel", "9.6", "x86_64", &["qemu", "vsphere", "vmware"]),
    ("rhel", "9.6", "aarch64", &["qemu"]),
    (
        "ubuntu",
        "24.04",
        "x86_64",
        &["qemu", "vsphere", "virtualbox"],
    ),
    ("alpine", "3.20", "x86_64", &["qemu"]),
];

pub(super) const PLATFORMS: &[(&str, &str, &[&str], bool)] = &[
    ("qemu", "qemu", &["x86_64", "aarch64"], true),
    ("virtualbox", "virtualbox-iso", &["x86_64"], false),
    ("vmware", "vmware-iso", &["x86_64"], false),
    ("vsphere", "vsphere-iso", &["x86_64"], false),
];

pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn closest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<(usize, &str)> = names.map(|n| (levenshtein(n, name), n)).collect();
    v.sort();
    v.into_iter().take(3).map(|(_, n)| n.to_string()).collect()
}

pub(super) fn not_found(
    kind: &str,
    name: &str,
    suggestions: Vec<String>,
    field: &str,
) -> BackendError {
    BackendError::new(
        BackendErrorKind::NotFound,
        format!(
            "unknown {kind} '{name}'; closest: {}",
            suggestions.join(", ")
        ),
    )
    .field(field)
    .suggest(suggestions)
}

pub(super) fn key(t: &Entry) -> String {
    format!("{}-{}-{}", t.0, t.1, t.2)
}

pub(super) fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let n = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    n(a).cmp(&n(b))
}
