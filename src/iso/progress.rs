//! Progress of long byte counts (download, hashing), reported to a callback — the native
//! engine turns it into `progress` events; nothing here prints.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One progress report.
#[derive(Debug, Clone)]
pub struct ByteCount {
    /// What is being counted ("downloading debian.iso", "verifying /cache/…").
    pub label: String,
    pub done: u64,
    pub total: Option<u64>,
    /// The final report of this count.
    pub last: bool,
}

/// Where progress goes. Cheap to clone.
#[derive(Clone)]
pub struct Meter {
    report: Option<Arc<dyn Fn(ByteCount) + Send + Sync>>,
    every: Duration,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meter")
    }
}

impl Default for Meter {
    fn default() -> Self {
        Meter::quiet()
    }
}

impl Meter {
    /// Report to `f`, at most every 250 ms per count (and always the last value).
    pub fn new(f: impl Fn(ByteCount) + Send + Sync + 'static) -> Meter {
        Meter {
            report: Some(Arc::new(f)),
            every: Duration::from_millis(250),
        }
    }

    /// Report nothing.
    pub fn quiet() -> Meter {
        Meter {
            report: None,
            every: Duration::from_secs(3600),
        }
    }

    /// A byte counter. `start` bytes are already done (a resumed download).
    pub fn bytes(&self, label: &str, total: Option<u64>, start: u64) -> ByteProgress {
        let p = ByteProgress {
            meter: self.clone(),
            label: label.to_string(),
            total,
            done: start,
            last: Instant::now(),
        };
        p.send(false);
        p
    }
}

/// Progress of one byte stream.
pub struct ByteProgress {
    meter: Meter,
    label: String,
    total: Option<u64>,
    done: u64,
    last: Instant,
}

impl ByteProgress {
    fn send(&self, last: bool) {
        if let Some(f) = &self.meter.report {
            f(ByteCount {
                label: self.label.clone(),
                done: self.done,
                total: self.total,
                last,
            });
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if self.last.elapsed() >= self.meter.every {
            self.last = Instant::now();
            self.send(false);
        }
    }

    pub fn finish(self) {
        self.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_start_and_end_and_throttles_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let m = Meter::new(move |c| s.lock().unwrap().push((c.done, c.last)));
        let mut p = m.bytes("x", Some(10), 2);
        for _ in 0..8 {
            p.inc(1);
        }
        p.finish();
        assert_eq!(*seen.lock().unwrap(), vec![(2, false), (10, true)]);
    }
}
