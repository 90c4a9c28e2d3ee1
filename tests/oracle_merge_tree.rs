//! Differential test against the Python original on a project-written tree
//! (tests/data/merge-tree) exercising every merge rule and marker: includes (nested and a
//! list), method=replace, dict `merge` lists, all *_specific kinds (nested, case-insensitive,
//! hoisted keys), platform_defs protection, typed `%>` values, list splices, arithmetic, every
//! E> form, secrets, crypt, a TOML location, and the user layer overriding bundled files.
//!
//! The oracle's bundled layer is always its own package data, so both tools get the same
//! layers: the tree (data/ then user/) is the user layer — its platforms/qemu.json overrides
//! the bundled one — and the oracle's package data is the bundled layer (our --data-dir).

mod oracle_common;
mod support;
use oracle_common::compare::{compare_library, Summary};
use oracle_common::*;
use std::path::Path;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn merge_tree_matches_oracle() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let py = oracle_python();
    let data = oracle_data(&py);
    let tree = manifest().join("tests/data/merge-tree");
    let sc = Scratch::new("merge-tree");
    copy_tree(&tree.join("data"), &sc.user);
    copy_tree(&tree.join("user"), &sc.user);
    sc.apply();

    let cfg = load_config(&data);
    let index: Vec<String> = cfg
        .index()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("toy-") || k.starts_with("other-"))
        .map(str::to_string)
        .collect();
    assert!(index.iter().any(|k| k == "toy-2.01-x86_64"), "{index:?}");
    assert!(index.iter().any(|k| k == "other-2.1-i386"), "{index:?}");
    assert!(
        !index.iter().any(|k| k == "toy-1.0-aarch64"),
        "version_specific arches: {index:?}"
    );
    let mut cases: Vec<Case> = Vec::new();
    for k in &index {
        for p in ["qemu", "vmware"] {
            for l in ["lab", "lab2"] {
                cases.push(Case::new(
                    &format!("{p}/{l}/{k}"),
                    Some("box"),
                    Some("10.20.1.2"),
                    None,
                ));
            }
        }
    }
    cases.push(Case::new(
        "qemu/lab/toy-latest-x86_64",
        Some("web.example.test"),
        Some("10.20.1.3"),
        Some("memory=4096,extra=1"),
    ));
    cases.push(Case::new(
        "vmware/lab/toy-2-latest-x86_64",
        Some("b2"),
        Some("10.20.1.4"),
        None,
    ));
    cases.push(Case::new(
        "virtualbox/lab/toy-1.0-x86_64",
        Some("b2"),
        Some("10.20.1.4"),
        None,
    ));
    cases.push(Case::new(
        "qemu/lab/toy-1.0-x86_64",
        Some("b3"),
        Some("10.20.1.4"),
        Some("bad"),
    ));
    number_temps(&sc, &mut cases);

    let oracle = run_oracle(&py, &data, &sc, &cases);
    let outcomes = compare_library(&data, &sc, &cases, &oracle);
    let mut sum = Summary::default();
    for (c, o) in cases.iter().zip(&outcomes) {
        sum.add(c, "library", o);
    }
    let ok = oracle.iter().filter(|o| o.ok).count();
    let files = oracle
        .iter()
        .filter_map(|o| o.files.as_ref())
        .map(|f| f.len())
        .sum::<usize>();
    let mut report = sum.render(&format!(
        "merge tree (tests/data/merge-tree): {} cases, {ok} resolved, {files} generated files compared",
        cases.len()
    ));
    for m in sum.mismatches.iter().take(20) {
        report.push_str(&format!("  MISMATCH {m}\n"));
    }
    support::write_report("oracle-merge-tree.txt", &report);
    assert!(ok > cases.len() / 2, "most merge-tree cases must resolve");
    assert!(files > 0, "the tree's files must be generated and compared");
    assert!(sum.mismatches.is_empty(), "{:#?}", sum.mismatches);
}
