//! Follow the guest's serial console (a file the hypervisor appends to) into the event stream,
//! one `log` event (source `serial`) per line, control characters removed.

use crate::engine::Events;
use osimager_events::LogSource;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(200);
/// A line longer than this is cut (installers draw progress bars without line ends).
const MAX_LINE: usize = 4096;

/// Runs until `stop`; then reports what is left.
pub async fn follow(path: PathBuf, events: Events, stop: CancellationToken) {
    let mut pos = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        let mut chunk = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&path) {
            if f.seek(SeekFrom::Start(pos)).is_ok() {
                let _ = f.read_to_end(&mut chunk);
            }
        }
        pos += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            emit(&events, &line);
        }
        if pending.len() > MAX_LINE || (stopping && !pending.is_empty()) {
            let line = std::mem::take(&mut pending);
            emit(&events, &line);
        }
        if stopping {
            return;
        }
    }
}

fn emit(events: &Events, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let clean: String = text
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect();
    let clean = clean.trim_end();
    if !clean.is_empty() {
        events.log_from(LogSource::Serial, clean);
    }
}
