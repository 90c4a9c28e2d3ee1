//! The CLI's consumers of the build-event stream: the terminal renderer and the `--dispatcher`
//! lines. (`--events FILE|-` uses `osimager_events::NdjsonSink`.)

use crate::engine::native::diag::event_text;
use indicatif::{ProgressBar, ProgressStyle};
use osimager_events::{
    BuildEvent, BuildResult, EngineName, EventRecord, EventSink, LogSource, Progress,
};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shows a build on the terminal: steps and the engine's lines on stderr, the Packer
/// transcript (the command line, Packer's own output, hook output) on stdout as mkosimage did,
/// progress as bars on a terminal or a line every 10 s otherwise.
pub struct Terminal {
    state: Mutex<TermState>,
    /// Show detail lines (typed keys, HTTP requests) too.
    verbose: bool,
    /// Show the guest's serial console.
    console: bool,
    tty: bool,
    timestamps: bool,
}

struct TermState {
    engine: Option<EngineName>,
    bar: Option<(String, ProgressBar)>,
    last_plain: Option<Instant>,
}

impl Terminal {
    pub fn new(verbose: bool, console: bool, timestamps: bool) -> Terminal {
        Terminal {
            state: Mutex::new(TermState {
                engine: None,
                bar: None,
                last_plain: None,
            }),
            verbose,
            console,
            tty: std::io::stderr().is_terminal(),
            timestamps,
        }
    }

    fn err_line(&self, st: &mut TermState, time: &str, text: &str) {
        let text = if self.timestamps {
            format!("{time} {text}")
        } else {
            text.to_string()
        };
        match &st.bar {
            Some((_, b)) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn end_bar(st: &mut TermState) {
        if let Some((_, b)) = st.bar.take() {
            b.finish_and_clear();
        }
    }

    fn progress(&self, st: &mut TermState, p: &Progress) {
        let (key, label) = match p {
            Progress::Bytes { label, .. } => (format!("bytes:{label}"), label.clone()),
            Progress::Keys { .. } => ("keys".to_string(), "typing the boot command".into()),
            Progress::Wait { label, .. } => (format!("wait:{label}"), label.clone()),
        };
        if !self.tty {
            let due = st
                .last_plain
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if due {
                st.last_plain = Some(Instant::now());
                eprintln!("{}", plain(p));
            }
            return;
        }
        if st.bar.as_ref().is_none_or(|(k, _)| *k != key) {
            Self::end_bar(st);
            let bar = match p {
                Progress::Bytes { total: Some(t), .. } => {
                    let b = ProgressBar::new(*t);
                    if let Ok(s) = ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    ) {
                        b.set_style(s.progress_chars("=> "));
                    }
                    b
                }
                Progress::Keys { total, .. } => {
                    let b = ProgressBar::new(*total);
                    if let Ok(s) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
                        b.set_style(s.progress_chars("=> "));
                    }
                    b
                }
                _ => {
                    let b = ProgressBar::new_spinner();
                    if let Ok(s) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                        b.set_style(s);
                    }
                    b.enable_steady_tick(Duration::from_millis(200));
                    b
                }
            };
            bar.set_message(label);
            st.bar = Some((key, bar));
        }
        if let Some((_, b)) = &st.bar {
            match p {
                Progress::Bytes { done, .. } => b.set_position(*done),
                Progress::Keys { typed, .. } => b.set_position(*typed),
                Progress::Wait { .. } => {}
            }
        }
    }
}

/// A progress report as one line (for logs and non-terminals).
fn plain(p: &Progress) -> String {
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    match p {
        Progress::Bytes {
            label,
            done,
            total: Some(t),
        } if *t > 0 => format!(
            "{label}: {:.0}% ({:.1} of {:.1} MiB)",
            *done as f64 * 100.0 / *t as f64,
            mib(*done),
            mib(*t)
        ),
        Progress::Bytes { label, done, .. } => format!("{label}: {:.1} MiB", mib(*done)),
        Progress::Keys { typed, total } => format!("typing the boot command: {typed}/{total} keys"),
        Progress::Wait {
            label, elapsed_ms, ..
        } => format!("{label} ({}s elapsed)", elapsed_ms / 1000),
    }
}

impl EventSink for Terminal {
    fn send(&self, r: &EventRecord) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match &r.event {
            BuildEvent::BuildStarted { engine, .. } => st.engine = Some(*engine),
            BuildEvent::Progress { progress, .. } => self.progress(&mut st, progress),
            BuildEvent::StepStarted { .. } | BuildEvent::StepFinished { .. } => {
                Self::end_bar(&mut st);
                // The Packer engine's steps are ours, not OSImager's: its transcript is Packer's.
                if st.engine == Some(EngineName::Native) {
                    if let Some(t) = event_text(&r.event) {
                        self.err_line(&mut st, &r.time, &t);
                    }
                }
            }
            BuildEvent::Log {
                source: LogSource::Packer,
                line,
                ..
            } => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            BuildEvent::Log {
                source: LogSource::Serial,
                line,
                ..
            } => {
                if self.console {
                    self.err_line(&mut st, &r.time, &format!("console: {line}"));
                }
            }
            BuildEvent::Log { detail: true, .. }
            | BuildEvent::Log {
                source: LogSource::Http,
                ..
            } => {
                if self.verbose {
                    if let Some(t) = event_text(&r.event) {
                        self.err_line(&mut st, &r.time, &t);
                    }
                }
            }
            BuildEvent::Screenshot { .. } | BuildEvent::Artifact { .. } => {
                if self.verbose {
                    if let Some(t) = event_text(&r.event) {
                        self.err_line(&mut st, &r.time, &t);
                    }
                }
            }
            BuildEvent::BuildFinished { result, .. } => {
                Self::end_bar(&mut st);
                // A failure is reported once, by the command's error message.
                if *result == BuildResult::Succeeded && st.engine == Some(EngineName::Native) {
                    if let Some(t) = event_text(&r.event) {
                        self.err_line(&mut st, &r.time, &t);
                    }
                }
            }
            _ => {
                if let Some(t) = event_text(&r.event) {
                    self.err_line(&mut st, &r.time, &t);
                }
            }
        }
    }
}

/// `--dispatcher`: `PROGRESS=N` as steps finish, then `PROGRESS=100` + `RESULT={…}` or
/// `ERROR={…}` on stdout, in OSImager's exact format (a build farm's dispatcher reads them).
/// The Packer engine reports 5 / 10 / 15 where OSImager did; the native engine reports each
/// step's share of a typical build.
pub struct Dispatcher {
    state: Mutex<(String, String)>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher {
            state: Mutex::new((String::new(), String::new())),
        }
    }
}

/// Percent done when a step finishes.
fn step_percent(step: &str) -> Option<u8> {
    Some(match step {
        // Packer engine (OSImager's own points).
        "preflight" => 5,
        "files" => 10,
        "command" => 15,
        // Native engine.
        "validate" => 2,
        "temp_dir" => 3,
        "iso" => 8,
        "http_server" => 9,
        "create_vm" => 11,
        "launch" => 13,
        "boot_wait" => 15,
        "boot_command" => 18,
        "wait_for_ssh" => 50,
        "provision" => 88,
        "shutdown" => 92,
        "export" => 98,
        "manifest" => 99,
        _ => return None,
    })
}

fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

impl EventSink for Dispatcher {
    fn send(&self, r: &EventRecord) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match &r.event {
            BuildEvent::BuildStarted { target, name, .. } => {
                let spec = target.rsplit('/').next().unwrap_or(target).to_string();
                *st = (spec, name.clone());
            }
            BuildEvent::StepFinished {
                step,
                outcome: osimager_events::Outcome::Ok | osimager_events::Outcome::Skipped,
                ..
            } => {
                if let Some(p) = step_percent(step) {
                    line(&format!("PROGRESS={p}"));
                }
            }
            BuildEvent::BuildFinished { result, error, .. } => {
                let (spec, name) = (&st.0, &st.1);
                if *result == BuildResult::Succeeded {
                    line("PROGRESS=100");
                    line(&format!(
                        "RESULT={{\"spec\": \"{spec}\", \"name\": \"{name}\", \"status\": \"success\"}}"
                    ));
                } else {
                    let message = error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
                    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
                    line(&format!(
                        "ERROR={{\"message\": {msg}, \"spec\": \"{spec}\", \"name\": \"{name}\"}}"
                    ));
                }
            }
            _ => {}
        }
    }
}
