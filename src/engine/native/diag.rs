//! Build diagnostics: the per-build log file (a sink of the event stream) and the
//! serial-console tail shown on failure.
//!
//! Diagnostics live next to the output directory, in `<output_directory>.build/` (the output
//! directory itself only appears once the build succeeded): `build.log`, the serial console
//! and QEMU logs written by the driver, and screenshots (`boot-wait.png` after boot_wait,
//! `typed.png` after the boot command, `failure.png` when a step fails). The directory is
//! replaced by the next build of the same output and kept otherwise, so a failed build can be
//! inspected after cleanup removed everything else.

use osimager_events::{BuildEvent, EventRecord, EventSink, LogSource, Outcome};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `build.log`: one line per event worth reading later, each starting with its time
/// (RFC 3339, UTC): `2026-12-07T07:29:00.123Z ==> iso`. Events arrive redacted.
pub struct BuildLogSink {
    file: Mutex<std::fs::File>,
}

impl BuildLogSink {
    /// Create (truncate) the log at `path`.
    pub fn create(path: &Path) -> std::io::Result<BuildLogSink> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        Ok(BuildLogSink {
            file: Mutex::new(std::fs::File::create(path)?),
        })
    }
}

/// The human text of an event (what the build log and a plain terminal show), if any.
pub fn event_text(e: &BuildEvent) -> Option<String> {
    Some(match e {
        BuildEvent::BuildStarted {
            target,
            engine,
            name,
            ..
        } => format!("build of {target} ({name}) with the {engine:?} engine").to_lowercase(),
        BuildEvent::StepStarted { step } => format!("==> {}", step.replace('_', " ")),
        BuildEvent::StepFinished {
            step,
            outcome: Outcome::Failed,
            ..
        } => format!("step {} failed", step.replace('_', " ")),
        BuildEvent::StepFinished { .. } => return None,
        BuildEvent::Log {
            source: LogSource::Serial,
            ..
        } => return None,
        BuildEvent::Log {
            source: LogSource::Http,
            line,
            ..
        } => format!("http: {line}"),
        BuildEvent::Log { line, .. } => line.clone(),
        BuildEvent::Progress { .. } => return None,
        BuildEvent::Screenshot { path, .. } => format!("screenshot: {path}"),
        BuildEvent::Artifact { path, size, .. } => format!("artifact: {path} ({size} bytes)"),
        BuildEvent::Warning { message } => format!("warning: {message}"),
        BuildEvent::BuildFinished {
            duration_ms,
            output_dir: Some(out),
            error: None,
            ..
        } => format!(
            "Build finished in {:.1}s: {out}",
            *duration_ms as f64 / 1000.0
        ),
        BuildEvent::BuildFinished {
            error: Some(e),
            duration_ms,
            ..
        } => format!(
            "Build failed after {:.1}s{}: {}",
            *duration_ms as f64 / 1000.0,
            e.step
                .as_ref()
                .map(|s| format!(" in step {:?}", s.replace('_', " ")))
                .unwrap_or_default(),
            e.message
        ),
        BuildEvent::BuildFinished { duration_ms, .. } => {
            format!("Build finished in {:.1}s", *duration_ms as f64 / 1000.0)
        }
    })
}

impl EventSink for BuildLogSink {
    fn send(&self, r: &EventRecord) {
        let Some(text) = event_text(&r.event) else {
            return;
        };
        if let Ok(mut f) = self.file.lock() {
            for line in text.lines() {
                let _ = writeln!(f, "{} {line}", r.time);
            }
        }
    }
}

/// The last `n` lines of `path` (lossy UTF-8, control characters other than tab removed).
pub fn tail(path: &Path, n: usize) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let clean: String = text
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let lines: Vec<&str> = clean.lines().collect();
    let start = lines.len().saturating_sub(n);
    Some(lines[start..].join("\n"))
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
