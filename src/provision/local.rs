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
/// whole group is killed: a shell's children and ansible-playbook's workers included, not
/// only the direct child.
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

/// Kills the process group it names when dropped (unless disarmed with `None`).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on the process group our own child leads (process_group(0)).
            unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
        }
    }
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
