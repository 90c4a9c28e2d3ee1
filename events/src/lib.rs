//! The build-event stream of osimager: every engine reports what it does as typed
//! [`BuildEvent`]s, stamped into [`EventRecord`]s (schema version, build id, sequence number,
//! time) and handed to [`EventSink`]s. Front ends — the terminal renderer, `--events` NDJSON,
//! `--dispatcher` lines, the build service, remote workers, tests — are all sinks; engines
//! never print.
//!
//! The wire format (one JSON object per record, `type` naming the event) is documented in
//! `docs/EVENTS.md` and versioned by [`SCHEMA_VERSION`]: fields are only ever added within a
//! version, so readers must ignore fields they do not know.
//!
//! ```
//! use osimager_events::{BuildEvent, EventRecord, LogSource, MemorySink, EventSink};
//! let sink = MemorySink::default();
//! let rec = EventRecord::new("b1", 0, BuildEvent::Log {
//!     source: LogSource::Engine, line: "hello".into(), detail: false });
//! sink.send(&rec);
//! assert_eq!(sink.records()[0].event, rec.event);
//! let line = serde_json::to_string(&rec).unwrap();
//! assert!(line.contains(r#""type":"log""#));
//! ```
#![deny(missing_docs)]

mod sinks;

pub use sinks::{FnSink, MemorySink, NdjsonSink};

use serde::{Deserialize, Serialize};

/// Version of the record format. Bumped only for changes a reader could misread.
pub const SCHEMA_VERSION: u32 = 1;

/// One event as it travels: an NDJSON line, a WebSocket message, a stored row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// [`SCHEMA_VERSION`] of the writer.
    pub v: u32,
    /// The build this event belongs to.
    pub build: String,
    /// 0, 1, 2, … within a build, without gaps: a reader that resumes asks for `seq > N`.
    pub seq: u64,
    /// When it happened: RFC 3339, UTC, milliseconds (`2026-12-07T07:29:00.123Z`).
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub event: BuildEvent,
}

impl EventRecord {
    /// A record stamped with the current time.
    pub fn new(build: impl Into<String>, seq: u64, event: BuildEvent) -> EventRecord {
        EventRecord {
            v: SCHEMA_VERSION,
            build: build.into(),
            seq,
            time: now_rfc3339(),
            event,
        }
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Which engine runs the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineName {
    /// osimager drives the hypervisor itself.
    Native,
    /// `packer build` runs the generated template.
    Packer,
}

/// Where a log line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The engine's own account of what it does.
    Engine,
    /// The guest's serial console.
    Serial,
    /// A provisioner (Ansible, shell, …): its output, line by line.
    Provisioner,
    /// `packer build`'s output (Packer engine).
    Packer,
    /// A request to the build's HTTP server (answer files, `http_directory`).
    Http,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// The step failed; the build fails with it.
    Failed,
    /// The build was cancelled while the step ran.
    Cancelled,
    /// Nothing to do (e.g. no ISO, no provisioners).
    Skipped,
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildResult {
    /// The image was built (or, for a dry run, everything checked out).
    Succeeded,
    /// A step failed.
    Failed,
    /// Stopped on request (signal, API, cancel button).
    Cancelled,
}

/// What kind of failure ended a build, so a server can map it (HTTP status, retry policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The configuration (platform, location, spec, settings) is wrong or incomplete.
    Configuration,
    /// Input the build was given is unusable: ISO checksum, missing file, existing output.
    BadInput,
    /// The hypervisor or one of its tools failed.
    Hypervisor,
    /// The guest did not answer in time (SSH, shutdown).
    GuestTimeout,
    /// A provisioner failed.
    Provisioner,
    /// The build was cancelled.
    Cancelled,
    /// A bug or an environment problem osimager cannot classify.
    Internal,
}

/// The error that ended a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// For machines.
    pub kind: ErrorKind,
    /// For people: what failed, where, and what to do (secrets redacted).
    pub message: String,
    /// The step that failed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// Progress of a long step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// Bytes of a download, a checksum or an export.
    Bytes {
        /// What is being counted (e.g. "downloading debian-12.iso").
        label: String,
        /// Bytes done so far.
        done: u64,
        /// Bytes in all, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// Key events of the boot command typed so far.
    Keys {
        /// Typed so far.
        typed: u64,
        /// In all.
        total: u64,
    },
    /// An open-ended wait (SSH, shutdown, boot_wait).
    Wait {
        /// What is awaited.
        label: String,
        /// Time waited so far.
        elapsed_ms: u64,
        /// When the wait gives up, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// Something that happened in a build. Serialized with a `type` field naming the variant
/// (`build_started`, `step_started`, …) and the variant's fields beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    /// The first event of every build.
    BuildStarted {
        /// `platform/location/spec` (after `-latest-` resolution).
        target: String,
        /// The engine that runs it.
        engine: EngineName,
        /// The builder type (`qemu`, `virtualbox-iso`, …).
        builder_type: String,
        /// The machine name.
        name: String,
        /// `-n`: only checked, nothing is created.
        #[serde(default, skip_serializing_if = "is_false")]
        dry_run: bool,
    },
    /// A step began. Steps of a build never overlap.
    StepStarted {
        /// Step name (docs/EVENTS.md lists them per engine).
        step: String,
    },
    /// A step ended.
    StepFinished {
        /// Step name.
        step: String,
        /// How it ended.
        outcome: Outcome,
        /// How long it took.
        duration_ms: u64,
    },
    /// A line of text.
    Log {
        /// Who wrote it.
        source: LogSource,
        /// The line, without its line end; secrets redacted.
        line: String,
        /// Verbose detail (the build log keeps it; a terminal shows it only when asked).
        #[serde(default, skip_serializing_if = "is_false")]
        detail: bool,
    },
    /// Progress inside the running step.
    Progress {
        /// The step it belongs to.
        step: String,
        /// How far it got.
        progress: Progress,
    },
    /// A console screenshot was saved.
    Screenshot {
        /// Short name (`boot-wait`, `typed`, `failure`, …).
        name: String,
        /// Where the PNG is.
        path: String,
    },
    /// A file of the image was written (after the output directory is in place).
    Artifact {
        /// Where it is.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256, hex, when computed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Something the user should know that does not stop the build.
    Warning {
        /// What and what to do (secrets redacted).
        message: String,
    },
    /// The last event of every build.
    BuildFinished {
        /// How it ended.
        result: BuildResult,
        /// From `build_started` to now.
        duration_ms: u64,
        /// Why it failed or was cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
        /// The output directory of a successful build.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_dir: Option<String>,
        /// Where things were left with `--on-error abort`, and how to remove them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left_in_place: Vec<String>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl BuildEvent {
    /// Apply `f` to every free-text field (log lines, messages, labels, paths): the hook for
    /// secret redaction. Exhaustive, so a new field cannot be forgotten.
    pub fn map_text(&mut self, f: &dyn Fn(&str) -> String) {
        let m = |s: &mut String| *s = f(s);
        match self {
            BuildEvent::BuildStarted {
                target,
                builder_type,
                name,
                engine: _,
                dry_run: _,
            } => {
                m(target);
                m(builder_type);
                m(name);
            }
            BuildEvent::StepStarted { step } => m(step),
            BuildEvent::StepFinished { step, .. } => m(step),
            BuildEvent::Log { line, .. } => m(line),
            BuildEvent::Progress { step, progress } => {
                m(step);
                match progress {
                    Progress::Bytes { label, .. } | Progress::Wait { label, .. } => m(label),
                    Progress::Keys { .. } => {}
                }
            }
            BuildEvent::Screenshot { name, path } => {
                m(name);
                m(path);
            }
            BuildEvent::Artifact { path, .. } => m(path),
            BuildEvent::Warning { message } => m(message),
            BuildEvent::BuildFinished {
                error,
                output_dir,
                left_in_place,
                ..
            } => {
                if let Some(e) = error {
                    m(&mut e.message);
                    if let Some(s) = &mut e.step {
                        m(s);
                    }
                }
                if let Some(o) = output_dir {
                    m(o);
                }
                left_in_place.iter_mut().for_each(m);
            }
        }
    }
}

/// Receives the records of a build, in order. Called from the build's tasks: keep it quick
/// (buffer or forward to a channel for anything slow).
pub trait EventSink: Send + Sync {
    /// One record.
    fn send(&self, record: &EventRecord);
}

#[cfg(test)]
mod tests;
