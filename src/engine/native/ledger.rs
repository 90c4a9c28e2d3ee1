//! The build's state file: what the build has created that would outlive a killed osimager
//! (its temp and staging directories, the hypervisor's processes and files), written as it
//! changes to `$XDG_STATE_HOME/osimager/builds/<build id>.json` (default
//! `~/.local/state/osimager/builds/`). Cleanup removes the file; so does `--on-error abort`,
//! which reports what it left. A file whose owner process is gone therefore belongs to a build
//! that was killed (SIGKILL, OOM killer, power loss): the next native build [`recover`]s it,
//! killing the processes it recorded (checked by their start time, so a reused pid is left
//! alone) and processes that still run out of its recorded directories, and removing those
//! directories. It is the same list as the cleanup stack (`Resource::leftovers`), so there is
//! one notion of "what this build created".

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Something a build created that must not outlive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Leftover {
    /// A directory (temp dir, staging output dir, the hypervisor's socket dir).
    Dir { what: String, path: PathBuf },
    /// A process (the VM's), identified by pid and start time (clock ticks after boot).
    Process { what: String, pid: u32, start: u64 },
}

/// The state file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    build_id: String,
    target: String,
    /// The osimager process running the build, and its start time.
    pid: u32,
    pid_start: u64,
    leftovers: Vec<Leftover>,
}

/// The state file of one build (disabled when no state directory can be made: the build goes
/// on, only recovery after a crash is lost, and that is said once).
pub(crate) struct Ledger {
    path: Option<PathBuf>,
    build_id: String,
    target: String,
}

/// The directory of state files for a build environment.
pub(crate) fn state_dir(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match var("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(var("HOME").filter(|h| !h.is_empty())?).join(".local/state"),
    };
    Some(base.join("osimager/builds"))
}

impl Ledger {
    pub fn new(dir: Option<PathBuf>, build_id: &str, target: &str) -> Ledger {
        Ledger {
            path: dir.map(|d| d.join(format!("{build_id}.json"))),
            build_id: build_id.to_string(),
            target: target.to_string(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Record `leftovers` (an empty list removes the file). Errors are returned for the log.
    pub fn save(&self, leftovers: Vec<Leftover>) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if leftovers.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("removing the state file {}: {e}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let me = std::process::id();
        let record = Record {
            build_id: self.build_id.clone(),
            target: self.target.clone(),
            pid: me,
            pid_start: start_time(me).unwrap_or(0),
            leftovers,
        };
        let text = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            let tmp = path.with_extension(format!("json.tmp-{me}"));
            std::fs::write(&tmp, &text)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("writing the state file {}: {e}", path.display()))
    }
}

/// Start time of process `pid` (field 22 of /proc/<pid>/stat), if it runs.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn alive(pid: u32, start: u64) -> bool {
    pid != 0 && start_time(pid) == Some(start)
}

/// Clean up after builds whose osimager died without cleaning up. Returns one message per
/// build recovered (for the log: what was found and what was done).
pub(crate) fn recover(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut messages = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<Record>(text.as_bytes()) else {
            messages.push(format!(
                "ignoring unreadable build state file {} (remove it)",
                path.display()
            ));
            continue;
        };
        if record.pid == me || alive(record.pid, record.pid_start) {
            continue; // a build that is still running (here or in another process)
        }
        // Claim it: of two builds starting at once, one does the cleanup.
        let claimed = path.with_extension(format!("claimed-{me}"));
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        let done = clean(&record.leftovers);
        let _ = std::fs::remove_file(&claimed);
        messages.push(format!(
            "build {} of {} (osimager process {}) ended without cleaning up (killed?): {}",
            record.build_id,
            record.target,
            record.pid,
            if done.is_empty() {
                "nothing of it was left".to_string()
            } else {
                done.join("; ")
            }
        ));
    }
    messages
}

/// Undo `leftovers`: processes first (recorded ones, then any still running out of a recorded
/// directory), then the directories. Returns what was done.
fn clean(leftovers: &[Leftover]) -> Vec<String> {
    let mut done = Vec::new();
    for l in leftovers {
        if let Leftover::Process { what, pid, start } = l {
            if alive(*pid, *start) {
                kill_tree(*pid);
                done.push(format!("killed {what} (pid {pid})"));
            }
        }
    }
    let dirs: Vec<(&String, &PathBuf)> = leftovers
        .iter()
        .filter_map(|l| match l {
            Leftover::Dir { what, path } => Some((what, path)),
            _ => None,
        })
        .collect();
    for pid in processes_using(&dirs.iter().map(|(_, p)| p.as_path()).collect::<Vec<_>>()) {
        kill_tree(pid);
        done.push(format!(
            "killed process {pid}, which ran out of the build's directories"
        ));
    }
    for (what, path) in dirs {
        if path.exists() {
            match std::fs::remove_dir_all(path) {
                Ok(()) => done.push(format!("removed {what} {}", path.display())),
                Err(e) => done.push(format!("could not remove {what} {}: {e}", path.display())),
            }
        }
    }
    done
}

/// SIGKILL `pid`, and its process group when it leads one (QEMU runs in its own).
fn kill_tree(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: plain syscalls on a pid whose identity was just checked.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::kill(-pid, libc::SIGKILL);
        }
        libc::kill(pid, libc::SIGKILL);
    }
    // Reap it if it is our child (it is not, normally: its parent died).
    std::thread::sleep(std::time::Duration::from_millis(50));
}

/// Processes (other than this one) whose command line names a path inside one of `dirs`.
fn processes_using(dirs: &[&Path]) -> Vec<u32> {
    if dirs.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needles: Vec<String> = dirs
        .iter()
        .map(|d| format!("{}/", d.display().to_string().trim_end_matches('/')))
        .collect();
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).replace('\0', " ");
                    needles.iter().any(|n| c.contains(n.as_str()))
                })
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process() {
        assert!(start_time(std::process::id()).is_some());
        assert!(start_time(u32::MAX - 1).is_none());
    }

    #[test]
    fn state_dir_follows_xdg() {
        let d = state_dir(|k| (k == "XDG_STATE_HOME").then(|| "/s".to_string()));
        assert_eq!(d.unwrap(), PathBuf::from("/s/osimager/builds"));
        let d = state_dir(|k| (k == "HOME").then(|| "/h".to_string()));
        assert_eq!(d.unwrap(), PathBuf::from("/h/.local/state/osimager/builds"));
        assert!(state_dir(|_| None).is_none());
    }

    /// A record left by a dead process: its directory is removed and a process running out
    /// of it is killed; a live owner's record is left alone.
    #[test]
    fn recovers_a_dead_builds_leftovers_only() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let temp = root.path().join("osimager-dead");
        std::fs::create_dir_all(&temp).unwrap();
        // A stand-in hypervisor: its command line names the dead build's dir ($0), it leads
        // its own process group (as QEMU does), so killing it takes its `sleep` along.
        let mut child = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new("sh")
                .arg("-c")
                .arg("sleep 300; exit 0")
                .arg(temp.join("vm"))
                .process_group(0)
                .spawn()
                .unwrap()
        };
        // Bounded poll: the child's command line names the dir before the scan runs.
        let needle = temp.display().to_string();
        let mut polls = 0;
        while !std::fs::read(format!("/proc/{}/cmdline", child.id()))
            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(false)
        {
            polls += 1;
            assert!(
                polls < 1000,
                "the stand-in process never showed its command line"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let dead = Record {
            build_id: "dead".into(),
            target: "qemu/x/y".into(),
            pid: u32::MAX - 1,
            pid_start: 1,
            leftovers: vec![Leftover::Dir {
                what: "temp dir".into(),
                path: temp.clone(),
            }],
        };
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("dead.json"), serde_json::to_vec(&dead).unwrap()).unwrap();
        // A live build (this process) with its own temp dir.
        let live_dir = root.path().join("osimager-live");
        std::fs::create_dir_all(&live_dir).unwrap();
        let live = Ledger::new(Some(state.clone()), "live", "qemu/x/z");
        live.save(vec![Leftover::Dir {
            what: "temp dir".into(),
            path: live_dir.clone(),
        }])
        .unwrap();

        let msgs = recover(&state);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains("build dead of qemu/x/y"), "{msgs:?}");
        assert!(msgs[0].contains("killed process"), "{msgs:?}");
        assert!(!temp.exists());
        assert!(!state.join("dead.json").exists());
        let status = child.wait().unwrap();
        assert!(!status.success(), "the process was killed");
        assert!(live_dir.exists() && state.join("live.json").exists());
        live.save(Vec::new()).unwrap();
        assert!(!state.join("live.json").exists());
    }
}
