//! Build diagnostics: the per-build log file and the serial-console tail shown on failure.
//!
//! Diagnostics live next to the output directory, in `<output_directory>.build/` (the output
//! directory itself only appears once the build succeeded): `build.log` (every line redacted),
//! the serial console and QEMU logs written by the driver, and screenshots (`boot-wait.png`
//! after boot_wait, `typed.png` after the boot command, `failure.png` when a step fails). The
//! directory is replaced by the next build of the same output and kept otherwise, so a failed
//! build can be inspected after cleanup removed everything else.

use crate::secret::redact;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Append-only, redacting build log; also echoes to stderr.
#[derive(Clone)]
pub struct BuildLog {
    file: Option<Arc<Mutex<std::fs::File>>>,
    path: Option<PathBuf>,
    echo: bool,
}

impl BuildLog {
    /// A log that only echoes (before the log file exists, or in tests).
    pub fn stderr_only(echo: bool) -> BuildLog {
        BuildLog {
            file: None,
            path: None,
            echo,
        }
    }

    /// Open (truncate) `path` as the build log.
    pub fn open(path: &Path, echo: bool) -> std::io::Result<BuildLog> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let f = std::fs::File::create(path)?;
        Ok(BuildLog {
            file: Some(Arc::new(Mutex::new(f))),
            path: Some(path.to_path_buf()),
            echo,
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Log one message (redacted) to the file, stderr and tracing.
    pub fn line(&self, msg: &str) {
        let msg = redact(msg);
        tracing::info!(target: "osimager::native", "{msg}");
        if self.echo {
            eprintln!("{msg}");
        }
        self.file_only(&msg);
    }

    /// Log to the file only (verbose detail such as every typed key group).
    pub fn file_only(&self, msg: &str) {
        if let Some(f) = &self.file {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{ts:.3} {}", redact(msg));
            }
        }
    }
}

/// The last `n` lines of `path` (lossy UTF-8, control characters other than tab removed),
/// redacted.
pub fn tail(path: &Path, n: usize) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let clean: String = text
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let lines: Vec<&str> = clean.lines().collect();
    let start = lines.len().saturating_sub(n);
    Some(redact(&lines[start..].join("\n")))
}

/// Serial console logs in the diagnostics dir (drivers name them `*serial*.log`).
pub fn serial_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.contains("serial") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
