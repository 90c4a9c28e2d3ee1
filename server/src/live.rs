//! Live streams: the records of every running (or queued) build kept in memory, and the
//! global feed. Each is an append-only log plus a `watch` counter: a follower keeps its own
//! position and reads everything after it when the counter moves, so a slow follower never
//! loses or reorders anything (no broadcast-channel lag) and every follower shares the same
//! serialized JSON.

use crate::store::JobId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// One message of a stream, serialized once for every follower.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The event's sequence number; `None` for a job update.
    pub seq: Option<u64>,
    /// The record's `type` (`log`, …) or `stream.job`.
    pub kind: Arc<str>,
    /// The message.
    pub json: Arc<str>,
}

struct BuildLog {
    entries: Vec<Entry>,
    closed: bool,
}

/// The in-memory stream of one build, from queueing to its last record.
pub struct LiveBuild {
    log: Mutex<BuildLog>,
    len: watch::Sender<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveBuild {
    fn new() -> LiveBuild {
        LiveBuild {
            log: Mutex::new(BuildLog {
                entries: Vec::new(),
                closed: false,
            }),
            len: watch::Sender::new(0),
        }
    }

    /// Append a message and wake the followers.
    pub fn push(&self, e: Entry) {
        let n = {
            let mut log = lock(&self.log);
            log.entries.push(e);
            log.entries.len()
        };
        self.len.send_replace(n);
    }

    /// No more messages: followers end after reading what is there.
    pub fn close(&self) {
        let n = {
            let mut log = lock(&self.log);
            log.closed = true;
            log.entries.len()
        };
        self.len.send_modify(|v| *v = n);
    }

    /// The position of the first event with `seq >= from` (the end when there is none yet);
    /// 0 for `from` 0. Job updates before it are skipped: a follower that resumes gets the
    /// job as it is now in `stream.hello`.
    pub fn position(&self, from: u64) -> usize {
        if from == 0 {
            return 0;
        }
        let log = lock(&self.log);
        log.entries
            .iter()
            .position(|e| e.seq.is_some_and(|s| s >= from))
            .unwrap_or_else(|| {
                // Nothing that new yet: start after the last event older than `from`.
                log.entries
                    .iter()
                    .rposition(|e| e.seq.is_some())
                    .map_or(0, |p| p + 1)
            })
    }

    /// The messages from position `pos` on, and whether the stream is closed.
    pub fn read(&self, pos: usize) -> (Vec<Entry>, bool) {
        let log = lock(&self.log);
        let out = log
            .entries
            .get(pos..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default();
        (out, log.closed)
    }

    /// Woken whenever the stream grows or closes.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.len.subscribe()
    }

    /// How many events (not job updates) it holds.
    pub fn events(&self) -> usize {
        lock(&self.log)
            .entries
            .iter()
            .filter(|e| e.seq.is_some())
            .count()
    }
}

/// The global feed: every record of every build and every job update, numbered from the
/// server's start (`gseq`). It keeps the last `cap` messages; a follower that asks for older
/// ones is told to resync from the REST API.
pub struct Feed {
    id: String,
    inner: Mutex<FeedInner>,
    next: watch::Sender<u64>,
}

struct FeedInner {
    first: u64,
    entries: VecDeque<Entry>,
    cap: usize,
}

impl Feed {
    fn new(cap: usize) -> Feed {
        Feed {
            id: format!("{:016x}", rand::random::<u64>()),
            inner: Mutex::new(FeedInner {
                first: 0,
                entries: VecDeque::new(),
                cap: cap.max(1),
            }),
            next: watch::Sender::new(0),
        }
    }

    /// Identifies this server run: a `from` of another run means nothing here.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Append a message built from its gseq (`make(gseq)`) and wake the followers.
    pub fn push_with(&self, kind: Arc<str>, make: impl FnOnce(u64) -> String) {
        let next = {
            let mut f = lock(&self.inner);
            let gseq = f.first + f.entries.len() as u64;
            f.entries.push_back(Entry {
                seq: Some(gseq),
                kind,
                json: make(gseq).into(),
            });
            if f.entries.len() > f.cap {
                f.entries.pop_front();
                f.first += 1;
            }
            f.first + f.entries.len() as u64
        };
        self.next.send_replace(next);
    }

    /// Messages with `gseq >= from`, and whether `from` was older than what is kept.
    pub fn read(&self, from: u64) -> (Vec<Entry>, bool) {
        let f = lock(&self.inner);
        let skip = from.saturating_sub(f.first) as usize;
        let out = f.entries.iter().skip(skip).cloned().collect();
        (out, from < f.first)
    }

    /// The gseq the next message gets.
    pub fn next_gseq(&self) -> u64 {
        *self.next.borrow()
    }

    /// Woken whenever the feed grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.next.subscribe()
    }
}

/// Every live build stream and the global feed.
pub struct Hub {
    builds: Mutex<HashMap<JobId, Arc<LiveBuild>>>,
    feed: Feed,
}

impl Hub {
    /// An empty hub; the global feed keeps the last `feed_cap` messages.
    pub fn new(feed_cap: usize) -> Hub {
        Hub {
            builds: Mutex::new(HashMap::new()),
            feed: Feed::new(feed_cap),
        }
    }

    /// The stream of a queued or running build, made if needed.
    pub fn open(&self, id: JobId) -> Arc<LiveBuild> {
        lock(&self.builds)
            .entry(id)
            .or_insert_with(|| Arc::new(LiveBuild::new()))
            .clone()
    }

    /// The stream of a build, if it is live.
    pub fn get(&self, id: JobId) -> Option<Arc<LiveBuild>> {
        lock(&self.builds).get(&id).cloned()
    }

    /// Close a build's stream and forget it (its records are all in the store by now).
    pub fn remove(&self, id: JobId) {
        if let Some(b) = lock(&self.builds).remove(&id) {
            b.close();
        }
    }

    /// The global feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Publish an event record of build `id` (`json` as stored) on its stream and the feed.
    pub fn publish_event(&self, id: JobId, seq: u64, kind: &str, json: Arc<str>) {
        let kind: Arc<str> = kind.into();
        if let Some(b) = self.get(id) {
            b.push(Entry {
                seq: Some(seq),
                kind: kind.clone(),
                json: json.clone(),
            });
        }
        self.feed.push_with(kind, |g| splice_gseq(&json, g));
    }

    /// Publish a job update (`{"type":"stream.job","job":…}`) on its stream and the feed.
    pub fn publish_job(&self, id: JobId, job_json: &str) {
        let kind: Arc<str> = "stream.job".into();
        if let Some(b) = self.get(id) {
            b.push(Entry {
                seq: None,
                kind: kind.clone(),
                json: format!(r#"{{"type":"stream.job","job":{job_json}}}"#).into(),
            });
        }
        self.feed.push_with(kind, |g| {
            format!(r#"{{"type":"stream.job","gseq":{g},"job":{job_json}}}"#)
        });
    }
}

/// `{"a":1}` → `{"gseq":7,"a":1}`: readers ignore fields they do not know, so the feed
/// forwards the record as it is with its global number in front.
fn splice_gseq(json: &str, gseq: u64) -> String {
    match json.strip_prefix('{') {
        Some(rest) => format!(r#"{{"gseq":{gseq},{rest}"#),
        None => json.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Entry {
        Entry {
            seq: Some(seq),
            kind: "log".into(),
            json: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    #[test]
    fn positions_skip_older_events_and_job_updates() {
        let b = LiveBuild::new();
        b.push(Entry {
            seq: None,
            kind: "stream.job".into(),
            json: "{}".into(),
        });
        for s in 0..5 {
            b.push(ev(s));
        }
        assert_eq!(b.position(0), 0, "from the start: everything");
        assert_eq!(b.position(1), 2);
        assert_eq!(b.position(3), 4);
        assert_eq!(b.position(9), 6, "the end when nothing is that new");
        let (tail, closed) = b.read(4);
        assert_eq!(
            tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![Some(3), Some(4)]
        );
        assert!(!closed);
        b.close();
        assert!(b.read(6).1);
        assert_eq!(b.events(), 5);
    }

    #[test]
    fn feed_keeps_the_last_messages_and_says_when_a_follower_fell_behind() {
        let f = Feed::new(3);
        for i in 0..5 {
            f.push_with("log".into(), |g| format!("{{\"gseq\":{g},\"i\":{i}}}"));
        }
        assert_eq!(f.next_gseq(), 5);
        let (got, behind) = f.read(0);
        assert!(behind);
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![Some(2), Some(3), Some(4)]
        );
        let (got, behind) = f.read(4);
        assert!(!behind);
        assert_eq!(got.len(), 1);
        assert!(f.read(5).0.is_empty());
    }

    #[test]
    fn gseq_is_spliced_in_front() {
        assert_eq!(splice_gseq(r#"{"v":1}"#, 3), r#"{"gseq":3,"v":1}"#);
    }
}
