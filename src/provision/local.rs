//! Running local commands (ansible-playbook, ansible-galaxy, shell-local) with streamed,
//! redacted output.

use super::ProvisionContext;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// The PATH local commands see: the venv's bin first, then `ctx.env["PATH"]` or our own PATH.
pub(crate) fn search_path(ctx: &ProvisionContext) -> OsString {
    let base = ctx
        .env
        .get("PATH")
        .or_else(|| ctx.process_env.as_ref().and_then(|e| e.get("PATH")))
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    match &ctx.venv_bin {
        Some(bin) => {
            let mut dirs = vec![bin.clone()];
            dirs.extend(std::env::split_paths(&base));
            std::env::join_paths(dirs).unwrap_or(base)
        }
        None => base,
    }
}

/// Find `program` in `path` (names with `/` relative to `cwd`).
pub(crate) fn which(program: &str, path: &OsString, cwd: &Path) -> Option<PathBuf> {
    crate::tools::which(program, Some(path.as_os_str()), cwd)
}

/// A command with the build environment applied: `ctx.env`, PATH (venv first), cwd `work_dir`.
pub(crate) fn command(program: &Path, ctx: &ProvisionContext) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(&ctx.work_dir);
    if let Some(base) = &ctx.process_env {
        cmd.env_clear().envs(base);
    }
    for (k, v) in &ctx.env {
        cmd.env(k, v);
    }
    cmd.env("PATH", search_path(ctx));
    cmd
}

/// Run `cmd`, forwarding its stdout/stderr lines (redacted) to the context's output.
///
/// The command leads its own process group. When the run is abandoned before the command
/// ended (the build was cancelled, the provisioner's `timeout` passed, the VM died), the
/// command is killed with everything it started ([`kill_tree`]), not only the direct child.
pub(crate) async fn run(
    mut cmd: Command,
    ctx: &ProvisionContext,
    prefix: &str,
) -> std::io::Result<ExitStatus> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut group = GroupGuard(child.id());
    let out = child.stdout.take();
    let err = child.stderr.take();
    tokio::join!(forward(out, ctx, prefix), forward(err, ctx, prefix));
    let status = child.wait().await;
    group.0 = None;
    status
}

/// Kills the command's process tree when dropped (unless disarmed with `None`).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_tree(pid);
        }
    }
}

/// Kill `root` (which leads its own process group), its group and every process descending
/// from it. The group alone is not enough: ansible-playbook's workers call `setsid()` and its
/// ssh runs in a new session. Each process is stopped first (a stopped process cannot fork)
/// while the tree is walked, then all are killed.
fn kill_tree(root: u32) {
    let sig = |pid: i64, s: i32| {
        // SAFETY: kill(2) on our own child, its process group, or a process found to
        // descend from it a moment ago.
        unsafe { libc::kill(pid as libc::pid_t, s) };
    };
    sig(-(root as i64), libc::SIGSTOP);
    let mut all = vec![root];
    for _ in 0..8 {
        let more: Vec<u32> = descendants(root)
            .into_iter()
            .filter(|p| !all.contains(p))
            .collect();
        if more.is_empty() {
            break;
        }
        for p in &more {
            sig(*p as i64, libc::SIGSTOP);
        }
        all.extend(more);
    }
    sig(-(root as i64), libc::SIGKILL);
    for p in all {
        sig(p as i64, libc::SIGKILL);
    }
}

/// Every process descending from `root`, from the parent links in `/proc/<pid>/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let mut links = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            links.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        for &(pid, ppid) in &links {
            if ppid == parent && !out.contains(&pid) {
                out.push(pid);
                next.push(pid);
            }
        }
    }
    out
}

async fn forward<R: AsyncRead + Unpin>(r: Option<R>, ctx: &ProvisionContext, prefix: &str) {
    let Some(r) = r else { return };
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.output(prefix, &ctx.secrets.redact(&line));
    }
}

/// Render a command line for messages (redacted, shell-quoted where needed).
pub(crate) fn display_cmd(program: &Path, args: &[String]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            s.push_str(&crate::comm::shell_quote(a));
        } else {
            s.push_str(a);
        }
    }
    crate::secret::redact(&s)
}

#[cfg(test)]
mod tests {
    /// Processes whose command line holds `marker` (a zombie's is empty).
    fn running(marker: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(marker))
            .count()
    }

    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if cond() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// A child that started a process in a session of its own (as ansible-playbook's workers
    /// do): killing the tree reaches it too.
    #[test]
    fn kill_tree_reaches_descendants_in_other_sessions() {
        use std::os::unix::process::CommandExt;
        let marker = format!("osimager-kill-tree-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "setsid sh -c 'sleep 600; : {marker}' & sleep 600; : {marker}"
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        assert!(eventually(|| running(&marker) == 2), "the tree runs");
        super::kill_tree(child.id());
        let _ = child.wait();
        assert!(eventually(|| running(&marker) == 0), "processes left");
    }
}
