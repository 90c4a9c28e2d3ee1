//! Back-pressure for typing: wait until the guest's vCPU has actually run after each key.
//!
//! QEMU's PS/2 keyboard keeps at most 16 bytes of scancodes (2 per key, 4 with Shift) and
//! silently drops the rest. When the host is busy, the vCPU thread can be starved for
//! hundreds of milliseconds while QEMU's main thread keeps accepting our key events — any
//! fixed key interval then drops keys (measured: on a 2-core host at load 12, even 20 ms lost
//! keys in half the runs). So after each key event we also wait until a vCPU thread of this
//! QEMU has been on a CPU since the event was sent (its `/proc/<pid>/task/<tid>/schedstat`
//! run time grew). An idle guest wakes on the keyboard interrupt at once, so this costs
//! nothing on a quiet host and slows typing exactly when the guest cannot keep up.
//! vCPU threads are found by name (`CPU 0/TCG`, `CPU 0/KVM`), which needs
//! `-name …,debug-threads=on` (part of the default command line). Linux only; without
//! `/proc` the pacer is simply absent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest we wait for a starved vCPU after one key before typing on anyway.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Paces typed keys by QEMU's vCPU threads: after a key, wait until a vCPU has run.
#[derive(Debug, Clone)]
pub struct VcpuPacer {
    schedstats: Vec<PathBuf>,
}

fn run_time(path: &PathBuf) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl VcpuPacer {
    /// The vCPU threads of QEMU process `pid`, if they can be found.
    pub fn find(pid: u32) -> Option<VcpuPacer> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let schedstats: Vec<PathBuf> = tasks
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .map(|c| c.starts_with("CPU "))
                    .unwrap_or(false)
            })
            .map(|t| t.path().join("schedstat"))
            .filter(|p| run_time(p).is_some())
            .collect();
        (!schedstats.is_empty()).then_some(VcpuPacer { schedstats })
    }

    /// Run times of the vCPU threads now.
    pub fn sample(&self) -> Vec<Option<u64>> {
        self.schedstats.iter().map(run_time).collect()
    }

    /// Wait until any vCPU thread has run since `before` (or `MAX_WAIT` passes).
    /// Returns how long it waited.
    pub async fn wait_ran(&self, before: &[Option<u64>]) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.sample();
            let ran = now
                .iter()
                .zip(before)
                .any(|(n, b)| matches!((n, b), (Some(n), Some(b)) if n > b));
            let gone = now.iter().all(Option::is_none);
            if ran || gone || start.elapsed() >= MAX_WAIT {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
