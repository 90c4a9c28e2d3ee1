//! A newcomer's environment: the real binary with HOME in a fresh temporary directory and no
//! XDG_*, VAULT_* or OSIMAGER_DATA_DIR variables (the bundled tree is found the way an installed
//! binary finds it).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("newcomer-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn user(&self) -> PathBuf {
        self.path().join(".config/osimager")
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osimager"));
        c.args(args).env("HOME", self.path()).env("TMPDIR", "/tmp");
        for v in [
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_ROLE_ID",
            "VAULT_SECRET_ID",
            "OSIMAGER_DATA_DIR",
        ] {
            c.env_remove(v);
        }
        c.stdin(Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        out(self.cmd(args).output().unwrap())
    }
    /// Run with `input` on standard input (not a terminal).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> (bool, String, String) {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        out(child.wait_with_output().unwrap())
    }
}

pub fn out(o: Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
