//! Link the `osimager` binary with packed relative relocations (`DT_RELR`) where the GNU linker
//! supports them (binutils >= 2.38; glibc >= 2.36 loads them, and the linker packs nothing
//! when the C library cannot). The binary is position-independent: the dynamic loader
//! relocates ~44 000 pointers at every start, read from a 1 MiB `.rela.dyn` table; packed,
//! the table is a few KiB, which is part of what makes `list` and `dump` start fast
//! (docs/BENCHMARKS.md "Configuration"). Only the final link changes; the code is the same.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" || !linker_packs_relocs() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}

/// Whether the system linker (the one `cc` runs for rustc on Linux) knows the option.
fn linker_packs_relocs() -> bool {
    Command::new("ld")
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("pack-relative-relocs"))
        .unwrap_or(false)
}
