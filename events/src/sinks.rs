//! Ready-made sinks: NDJSON to any writer, in memory (tests, servers), and a closure.

use crate::{EventRecord, EventSink};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Writes each record as one JSON line and flushes it (so `tail -f` and pipes see it at once).
/// Write errors are remembered, not raised: the build must not fail because a reader went away.
pub struct NdjsonSink<W: Write + Send> {
    out: Mutex<W>,
    failed: Mutex<Option<std::io::Error>>,
}

impl<W: Write + Send> NdjsonSink<W> {
    /// Wrap a writer.
    pub fn new(out: W) -> Self {
        NdjsonSink {
            out: Mutex::new(out),
            failed: Mutex::new(None),
        }
    }

    /// The writer back (e.g. the bytes written to a `Vec`).
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The first write error, if any (the sink stops writing after it).
    pub fn error(&self) -> Option<String> {
        self.failed
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|e| e.to_string()))
    }
}

impl<W: Write + Send> EventSink for NdjsonSink<W> {
    fn send(&self, record: &EventRecord) {
        let Ok(mut failed) = self.failed.lock() else {
            return;
        };
        if failed.is_some() {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        if let Ok(mut out) = self.out.lock() {
            if let Err(e) = out.write_all(&line).and_then(|_| out.flush()) {
                *failed = Some(e);
            }
        }
    }
}

/// Keeps every record in memory. Cheap to clone (clones share the records).
#[derive(Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<EventRecord>>>,
}

impl MemorySink {
    /// A copy of the records so far.
    pub fn records(&self) -> Vec<EventRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl EventSink for MemorySink {
    fn send(&self, record: &EventRecord) {
        if let Ok(mut r) = self.records.lock() {
            r.push(record.clone());
        }
    }
}

/// Calls a closure for each record.
pub struct FnSink<F: Fn(&EventRecord) + Send + Sync>(pub F);

impl<F: Fn(&EventRecord) + Send + Sync> EventSink for FnSink<F> {
    fn send(&self, record: &EventRecord) {
        (self.0)(record)
    }
}
