//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) and every crash the fuzzers
//! found (fuzz/regressions/<target>/) through the same harness the libFuzzer targets run
//! (fuzz/src/harness.rs), on stable, in CI. The fuzzing itself runs from scripts/fuzz.sh
//! (nightly + cargo-fuzz); see docs/RELIABILITY.md for executions and findings.

#[path = "../fuzz/src/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut v = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) {
            v.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

fn replay(target: &str, f: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for p in &files {
        let data = std::fs::read(p).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: {} panics", p.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn bootcmd_corpus() {
    replay("bootcmd", harness::bootcmd);
}

#[test]
fn expr_corpus() {
    // The fuzzer runs on an 8 MiB main thread; tests get 2 MiB, which the evaluator's
    // nesting limit is sized for.
    replay("expr", harness::expr);
}

#[test]
fn markers_corpus() {
    replay("markers", harness::markers);
}

#[test]
fn loaders_corpus() {
    replay("loaders", harness::loaders);
}

#[test]
fn http_corpus() {
    replay("http", harness::http);
}
