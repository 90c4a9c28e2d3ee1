//! `--dispatcher` progress lines, exactly as OSImager prints them (a build farm's dispatcher reads
//! them from stdout): `PROGRESS=5` after the required-file check, `PROGRESS=10` after the files
//! are generated, `PROGRESS=15` after the command is printed, then `PROGRESS=100` +
//! `RESULT={…}` or `ERROR={…}`.
//!
//! OSImager printed nothing when it stopped before Packer ran (a missing required file, a
//! missing venv); we print an `ERROR=` line for those too, in the same shape, so the dispatcher
//! learns why.

use std::io::Write;

/// Prints progress lines when enabled; a no-op otherwise.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pub enabled: bool,
    pub spec: String,
    pub name: String,
}

impl Dispatcher {
    fn line(&self, text: &str) {
        if self.enabled {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    pub fn progress(&self, pct: u8) {
        self.line(&format!("PROGRESS={pct}"));
    }

    /// `PROGRESS=100` and the success `RESULT=` line.
    pub fn success(&self) {
        self.progress(100);
        self.line(&format!(
            "RESULT={{\"spec\": \"{}\", \"name\": \"{}\", \"status\": \"success\"}}",
            self.spec, self.name
        ));
    }

    /// OSImager's line for a failed `packer build`.
    pub fn packer_failed(&self, code: i32) {
        self.line(&format!(
            "ERROR={{\"message\": \"packer build failed with exit code {code}\", \"spec\": \"{}\", \"name\": \"{}\"}}",
            self.spec, self.name
        ));
    }

    /// An `ERROR=` line for a failure before Packer ran (message JSON-escaped).
    pub fn failed(&self, message: &str) {
        let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
        self.line(&format!(
            "ERROR={{\"message\": {msg}, \"spec\": \"{}\", \"name\": \"{}\"}}",
            self.spec, self.name
        ));
    }
}
