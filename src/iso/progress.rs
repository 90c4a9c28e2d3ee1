//! Progress for long operations: an indicatif bar on a terminal, plain periodic lines otherwise
//! (CI logs, `--dispatcher`, redirected stderr).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How progress is shown. Cheap to clone.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    tty: bool,
    quiet: bool,
    /// Interval between plain lines.
    every: Duration,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    /// Bars when stderr is a terminal, plain lines every 10 s otherwise.
    pub fn new() -> Meter {
        Meter {
            tty: std::io::stderr().is_terminal(),
            quiet: false,
            every: Duration::from_secs(10),
        }
    }

    /// No output at all (tests, library use).
    pub fn quiet() -> Meter {
        Meter {
            tty: false,
            quiet: true,
            every: Duration::from_secs(10),
        }
    }

    /// A byte counter (download, hashing). `start` bytes are already done (resumed download).
    pub fn bytes(&self, label: &str, total: Option<u64>, start: u64) -> ByteProgress {
        let bar = (self.tty && !self.quiet).then(|| {
            let b = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let tmpl = if total.is_some() {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg} {spinner} {bytes} {bytes_per_sec}"
            };
            if let Ok(st) = ProgressStyle::with_template(tmpl) {
                b.set_style(st.progress_chars("=> "));
            }
            b.set_message(label.to_string());
            b.set_position(start);
            b
        });
        ByteProgress {
            bar,
            label: label.to_string(),
            total,
            done: start,
            start,
            started: Instant::now(),
            last: Instant::now(),
            meter: *self,
        }
    }

    /// A wait with no measurable progress (SSH, shutdown): a spinner or periodic lines.
    pub fn wait(&self, label: &str) -> WaitProgress {
        let bar = (self.tty && !self.quiet).then(|| {
            let b = ProgressBar::new_spinner();
            if let Ok(st) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                b.set_style(st);
            }
            b.set_message(label.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        WaitProgress {
            bar,
            label: label.to_string(),
            started: Instant::now(),
            last: Instant::now(),
            meter: *self,
        }
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

/// Progress of a byte stream.
pub struct ByteProgress {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    done: u64,
    start: u64,
    started: Instant,
    last: Instant,
    meter: Meter,
}

impl ByteProgress {
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            return;
        }
        if self.meter.quiet || self.last.elapsed() < self.meter.every {
            return;
        }
        self.last = Instant::now();
        self.print_line();
    }

    fn print_line(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = mib(self.done - self.start) / secs;
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "{}: {:.0}% ({:.1} of {:.1} MiB, {:.1} MiB/s)",
                self.label,
                self.done as f64 * 100.0 / t as f64,
                mib(self.done),
                mib(t),
                rate
            ),
            _ => format!(
                "{}: {:.1} MiB ({rate:.1} MiB/s)",
                self.label,
                mib(self.done)
            ),
        };
        eprintln!("{line}");
        tracing::info!("{line}");
    }

    pub fn finish(self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if !self.meter.quiet {
            self.print_line();
        }
    }
}

/// Progress of an open-ended wait.
pub struct WaitProgress {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    last: Instant,
    meter: Meter,
}

impl WaitProgress {
    /// Call regularly while waiting; prints a line every 10 s when not on a terminal.
    pub fn tick(&mut self, detail: &str) {
        if let Some(b) = &self.bar {
            if !detail.is_empty() {
                b.set_message(format!("{} — {detail}", self.label));
            }
            return;
        }
        if self.meter.quiet || self.last.elapsed() < self.meter.every {
            return;
        }
        self.last = Instant::now();
        let line = format!(
            "{} ({}s elapsed){}{}",
            self.label,
            self.started.elapsed().as_secs(),
            if detail.is_empty() { "" } else { ": " },
            crate::secret::redact(detail)
        );
        eprintln!("{line}");
        tracing::info!("{line}");
    }

    pub fn finish(self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
