//! The engines' side of the build-event stream: [`Events`] stamps each [`BuildEvent`] with the
//! build id, a gap-free sequence number and the time, redacts it against the build's secret
//! registry, and hands it to every sink. Engines report only through it; they never print.

use crate::secret::Registry;
use osimager_events::{BuildEvent, EventRecord, EventSink, LogSource, Progress};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many records are kept for sinks attached late (the build log opens after `validate`).
const REPLAY: usize = 256;
/// Progress of one kind is reported at most this often (the final value always goes out).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The event emitter of one build. Cheap to clone: clones share the stream.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    build: String,
    secrets: Registry,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seq: u64,
    sinks: Vec<Arc<dyn EventSink>>,
    early: Vec<EventRecord>,
    step: String,
    last_progress: Option<(Instant, &'static str)>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Events({})", self.inner.build)
    }
}

impl Events {
    /// A stream for build `build` whose text is redacted against `secrets`.
    pub fn new(build: impl Into<String>, secrets: Registry) -> Events {
        Events {
            inner: Arc::new(Inner {
                build: build.into(),
                secrets,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A stream nobody listens to (tests, callers that only want the result).
    pub fn discard() -> Events {
        Events::new("discard", Registry::new())
    }

    /// Add a sink. With `replay`, it first receives the records emitted so far (up to a bound),
    /// so a file opened mid-build still starts at the beginning.
    pub fn attach(&self, sink: Arc<dyn EventSink>, replay: bool) {
        let mut st = self.lock();
        if replay {
            for r in &st.early {
                sink.send(r);
            }
        }
        st.sinks.push(sink);
    }

    /// This build's id.
    pub fn build_id(&self) -> &str {
        &self.inner.build
    }

    /// The build's secret registry (the same one the events are redacted against).
    pub fn secrets(&self) -> &Registry {
        &self.inner.secrets
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emit one event (redacted, stamped, in order).
    pub fn emit(&self, mut event: BuildEvent) {
        let secrets = &self.inner.secrets;
        event.map_text(&|s| secrets.redact(s));
        let mut st = self.lock();
        if let BuildEvent::StepStarted { step } = &event {
            st.step = step.clone();
            st.last_progress = None;
        }
        let rec = EventRecord::new(self.inner.build.clone(), st.seq, event);
        st.seq += 1;
        if st.early.len() < REPLAY {
            st.early.push(rec.clone());
        }
        for s in &st.sinks {
            s.send(&rec);
        }
    }

    /// The step running now ("" before the first).
    pub fn current_step(&self) -> String {
        self.lock().step.clone()
    }

    /// A line from `source`.
    pub fn log_from(&self, source: LogSource, line: impl Into<String>) {
        self.emit(BuildEvent::Log {
            source,
            line: line.into(),
            detail: false,
        });
    }

    /// The engine's account of what it does.
    pub fn log(&self, line: impl Into<String>) {
        self.log_from(LogSource::Engine, line)
    }

    /// Verbose detail (kept in the build log; a terminal shows it only when asked).
    pub fn detail(&self, line: impl Into<String>) {
        self.emit(BuildEvent::Log {
            source: LogSource::Engine,
            line: line.into(),
            detail: true,
        });
    }

    /// Something the user should know that does not stop the build.
    pub fn warn(&self, message: impl Into<String>) {
        self.emit(BuildEvent::Warning {
            message: message.into(),
        });
    }

    /// Progress of the current step, throttled per kind; `last` always goes out.
    pub fn progress(&self, progress: Progress, last: bool) {
        let kind = match &progress {
            Progress::Bytes { .. } => "bytes",
            Progress::Keys { .. } => "keys",
            Progress::Wait { .. } => "wait",
        };
        let step = {
            let mut st = self.lock();
            let due = match st.last_progress {
                Some((t, k)) if k == kind => t.elapsed() >= PROGRESS_EVERY,
                _ => true,
            };
            if !due && !last {
                return;
            }
            st.last_progress = Some((Instant::now(), kind));
            st.step.clone()
        };
        self.emit(BuildEvent::Progress { step, progress });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osimager_events::MemorySink;

    #[test]
    fn records_are_numbered_redacted_and_replayed() {
        let secrets = Registry::new();
        secrets.register("hunter2-pw");
        let ev = Events::new("b7", secrets);
        ev.log("before the sink: hunter2-pw");
        let sink = MemorySink::default();
        ev.attach(Arc::new(sink.clone()), true);
        ev.emit(BuildEvent::StepStarted { step: "iso".into() });
        ev.warn("w");
        let recs = sink.records();
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(recs.iter().all(|r| r.build == "b7"));
        let text = serde_json::to_string(&recs).unwrap();
        assert!(
            !text.contains("hunter2-pw") && text.contains("***"),
            "{text}"
        );
        assert_eq!(ev.current_step(), "iso");
    }

    #[test]
    fn progress_is_throttled_but_the_last_value_goes_out() {
        let ev = Events::discard();
        let sink = MemorySink::default();
        ev.attach(Arc::new(sink.clone()), false);
        for i in 0..100 {
            ev.progress(
                Progress::Keys {
                    typed: i,
                    total: 100,
                },
                false,
            );
        }
        ev.progress(
            Progress::Keys {
                typed: 100,
                total: 100,
            },
            true,
        );
        let recs = sink.records();
        assert_eq!(recs.len(), 2, "first and last only: {recs:?}");
    }
}
