//! The fuzz targets' bodies, shared with the stable replay test (tests/fuzz_corpus.rs
//! includes `harness.rs` by path), so a crash found by libFuzzer is replayed in CI exactly.

#[path = "harness.rs"]
pub mod harness;
