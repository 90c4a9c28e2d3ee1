//! After a crash: end whatever a build left behind. Every build gets a work directory of its
//! own under the state dir (its temp files, and the paths its processes are started with), so
//! what belongs to an interrupted build is found by that path: processes whose command line or
//! working directory mention it are stopped (SIGTERM, then SIGKILL), then the directory goes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Processes (pid, first argument) whose command line or cwd is inside `dir`.
pub fn processes_using(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = PathBuf::from("/proc").join(pid.to_string());
        let cmdline = std::fs::read(base.join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let in_args = args.iter().any(|a| mentions(a, &needle));
        let in_cwd = std::fs::read_link(base.join("cwd"))
            .map(|c| c.starts_with(dir))
            .unwrap_or(false);
        if in_args || in_cwd {
            out.push((pid, args.first().cloned().unwrap_or_default()));
        }
    }
    out
}

/// `arg` names `dir` or something inside it (`file=/state/work/7/disk.qcow2,if=virtio`).
fn mentions(arg: &str, dir: &str) -> bool {
    let mut rest = arg;
    while let Some(i) = rest.find(dir) {
        let after = &rest[i + dir.len()..];
        if after.is_empty() || after.starts_with('/') || after.starts_with(',') {
            return true;
        }
        rest = after;
    }
    false
}

/// Stop every process using `dir` (SIGTERM, then SIGKILL after `grace`), then remove `dir`.
/// Returns what was stopped, for the log.
pub fn sweep(dir: &Path, grace: Duration) -> Vec<String> {
    let mut stopped = Vec::new();
    let procs = processes_using(dir);
    for (pid, name) in &procs {
        // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
        stopped.push(format!("{name} (pid {pid})"));
    }
    let deadline = Instant::now() + grace;
    while !procs.is_empty() && Instant::now() < deadline {
        if processes_using(dir).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (pid, _) in processes_using(dir) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_using(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(dir);
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_needs_a_path_boundary() {
        assert!(mentions("/s/work/7", "/s/work/7"));
        assert!(mentions("file=/s/work/7/d.qcow2,if=virtio", "/s/work/7"));
        assert!(mentions("/s/work/7,server=on", "/s/work/7"));
        assert!(!mentions("/s/work/71/x", "/s/work/7"));
        assert!(mentions("/s/work/71/x:/s/work/7/y", "/s/work/7"));
    }

    #[test]
    fn sweep_stops_a_process_started_in_the_directory_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work-1");
        std::fs::create_dir(&work).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .current_dir(&work)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(processes_using(&work).iter().any(|(p, _)| *p == pid));
        let stopped = sweep(&work, Duration::from_secs(5));
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert!(child.wait().is_ok());
        assert!(!work.exists());
    }
}
