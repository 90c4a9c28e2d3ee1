//! What happens to each record a build sends: numbered, stored in full, published live, and
//! its side effects kept (current step, screenshots copied into the state dir, artifacts).

use crate::live::Hub;
use crate::store::{Artifact, JobId, JobStore, Screenshot, StoredEvent};
use osimager_events::{BuildEvent, BuildResult, ErrorInfo, ErrorKind, EventRecord, EventSink};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The sink a backend gets: hands records to the recorder task without waiting.
pub(crate) struct ChannelSink(pub mpsc::UnboundedSender<EventRecord>);

impl EventSink for ChannelSink {
    fn send(&self, record: &EventRecord) {
        let _ = self.0.send(record.clone());
    }
}

/// The `type` of an event.
pub fn event_kind(e: &BuildEvent) -> &'static str {
    match e {
        BuildEvent::BuildStarted { .. } => "build_started",
        BuildEvent::StepStarted { .. } => "step_started",
        BuildEvent::StepFinished { .. } => "step_finished",
        BuildEvent::Log { .. } => "log",
        BuildEvent::Progress { .. } => "progress",
        BuildEvent::Screenshot { .. } => "screenshot",
        BuildEvent::Artifact { .. } => "artifact",
        BuildEvent::Warning { .. } => "warning",
        BuildEvent::BuildFinished { .. } => "build_finished",
    }
}

/// How the build said it ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub result: BuildResult,
    pub error: Option<ErrorInfo>,
    pub output_dir: Option<String>,
}

/// The largest screenshot kept (a console PNG is a few hundred KiB at most).
const MAX_SCREENSHOT: u64 = 32 << 20;

pub(crate) struct Recorder {
    pub id: JobId,
    pub store: Arc<dyn JobStore>,
    pub hub: Arc<Hub>,
    /// `<state>/builds/<id>`: the copies of its screenshots.
    pub files_dir: PathBuf,
    next_seq: u64,
    shots: u32,
    artifact_names: HashSet<String>,
    pending: Vec<StoredEvent>,
    pub ending: Option<Ending>,
}

impl Recorder {
    pub fn new(id: JobId, store: Arc<dyn JobStore>, hub: Arc<Hub>, files_dir: PathBuf) -> Self {
        Recorder {
            id,
            store,
            hub,
            files_dir,
            next_seq: 0,
            shots: 0,
            artifact_names: HashSet::new(),
            pending: Vec::new(),
            ending: None,
        }
    }

    /// Number the next record `seq` (a remote run continues after what is stored).
    pub fn starting_at(mut self, seq: u64) -> Self {
        self.next_seq = seq;
        self
    }

    /// Take one record: renumber it, keep its side effects, publish it, queue it for the store.
    pub async fn take(&mut self, mut rec: EventRecord) {
        if self.ending.is_some() {
            tracing::warn!(build = self.id, "a record after build_finished was dropped");
            return;
        }
        // The server numbers the records itself: resuming by offset must never skip or
        // repeat, whatever the backend sent.
        rec.build = self.id.to_string();
        rec.seq = self.next_seq;
        self.next_seq += 1;
        self.side_effects(&rec).await;
        let json: Arc<str> = match serde_json::to_string(&rec) {
            Ok(j) => j.into(),
            Err(e) => {
                tracing::error!(build = self.id, "cannot encode a record: {e}");
                return;
            }
        };
        let kind = event_kind(&rec.event);
        self.hub.publish_event(self.id, rec.seq, kind, json.clone());
        self.pending.push(StoredEvent {
            seq: rec.seq,
            kind: kind.to_string(),
            json: json.to_string(),
        });
    }

    /// Write the records taken so far to the store.
    pub async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        if let Err(e) = self.store.append_events(self.id, &batch).await {
            tracing::error!(build = self.id, "storing {} records: {e}", batch.len());
        }
    }

    async fn side_effects(&mut self, rec: &EventRecord) {
        match &rec.event {
            BuildEvent::StepStarted { step } => {
                if let Err(e) = self.store.set_step(self.id, step).await {
                    tracing::error!(build = self.id, "recording step {step}: {e}");
                }
            }
            BuildEvent::Screenshot { name, path } => {
                // Before the record is published: a follower that sees it can fetch it.
                let index = self.shots;
                let dest = self.files_dir.join(format!("screenshot-{index:04}.png"));
                let src = PathBuf::from(path);
                let copy = tokio::task::spawn_blocking({
                    let dest = dest.clone();
                    move || copy_png(&src, &dest)
                })
                .await;
                match copy {
                    Ok(Ok(())) => {
                        self.shots += 1;
                        let shot = Screenshot {
                            index,
                            seq: rec.seq,
                            name: name.clone(),
                            file: dest.to_string_lossy().into_owned(),
                            time: rec.time.clone(),
                        };
                        if let Err(e) = self.store.put_screenshot(self.id, &shot).await {
                            tracing::error!(build = self.id, "recording a screenshot: {e}");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(build = self.id, "screenshot {path}: {e}"),
                    Err(e) => tracing::warn!(build = self.id, "screenshot {path}: {e}"),
                }
            }
            BuildEvent::Artifact { path, size, sha256 } => {
                let base = Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "artifact".into());
                let mut name = base.clone();
                let mut n = 1;
                while !self.artifact_names.insert(name.clone()) {
                    n += 1;
                    name = format!("{base}.{n}");
                }
                let a = Artifact {
                    name,
                    path: path.clone(),
                    size: *size,
                    sha256: sha256.clone(),
                };
                if let Err(e) = self.store.put_artifact(self.id, &a).await {
                    tracing::error!(build = self.id, "recording artifact {path}: {e}");
                }
            }
            BuildEvent::BuildFinished {
                result,
                error,
                output_dir,
                ..
            } => {
                self.ending = Some(Ending {
                    result: *result,
                    error: error.clone(),
                    output_dir: output_dir.clone(),
                });
            }
            _ => {}
        }
    }

    /// The build ended without `build_finished`: say so as its last record.
    pub async fn synthesize_end(&mut self, why: String) {
        let ev = BuildEvent::BuildFinished {
            result: BuildResult::Failed,
            duration_ms: 0,
            error: Some(ErrorInfo {
                kind: ErrorKind::Internal,
                message: why,
                step: None,
            }),
            output_dir: None,
            left_in_place: Vec::new(),
        };
        self.take(EventRecord::new(self.id.to_string(), 0, ev))
            .await;
    }
}

/// Copy a PNG (checked by its signature, size-capped), without following a symlink at `dest`.
fn copy_png(src: &Path, dest: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut f = std::fs::File::open(src)?;
    let len = f.metadata()?.len();
    if len > MAX_SCREENSHOT {
        return Err(bad("larger than 32 MiB; not kept"));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.read_to_end(&mut buf)?;
    if !buf.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(bad("not a PNG file; not kept"));
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = dest.with_extension("part");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags_nofollow()
        .open(&tmp)?;
    out.write_all(&buf)?;
    drop(out);
    std::fs::rename(&tmp, dest)
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}
