//! Running `VBoxManage`: the program found on the build's `PATH`, the build's environment,
//! failures detected from the exit status *and* from stderr (VBoxManage prints
//! `VBoxManage: error: …` with exit status 0 in several places), and transient session-lock
//! failures (`VBOX_E_INVALID_OBJECT_STATE`) retried with a bound.

use super::version::VBoxVersion;
use crate::{DriverEnv, DriverError, DriverResult};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// How long lock failures are retried: `attempts` tries, the pause doubling from `first_delay`
/// up to `max_delay`. The default (10 tries, 0.5 s … 10 s, about a minute in all) covers the
/// few seconds VirtualBox takes to release a session after a power-off; Packer retries 5 times
/// a minute apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRetry {
    /// Tries in all (the first call included).
    pub attempts: u32,
    /// Pause after the first failure.
    pub first_delay: Duration,
    /// Longest pause between tries (the pause doubles up to it).
    pub max_delay: Duration,
}

impl Default for LockRetry {
    fn default() -> Self {
        LockRetry {
            attempts: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// What VBoxManage printed.
#[derive(Debug, Clone, Default)]
pub struct VBoxOutput {
    pub stdout: String,
    pub stderr: String,
}

/// A failed VBoxManage call.
#[derive(Debug, Clone)]
pub struct VBoxFailure {
    /// The command as shown to the user (typed keys are never shown).
    pub command: String,
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl VBoxFailure {
    /// A session-lock (or other transient object-state) failure worth retrying.
    pub fn is_lock(&self) -> bool {
        self.stderr.contains("VBOX_E_INVALID_OBJECT_STATE")
    }

    /// Whether stderr mentions `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.stderr.contains(needle) || self.stdout.contains(needle)
    }

    fn status(&self) -> String {
        match self.code {
            Some(0) => "exit status 0, but it printed an error".into(),
            Some(2) => {
                "exit status 2: syntax error (an option this VirtualBox version does not know?)"
                    .into()
            }
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        }
    }
}

impl From<VBoxFailure> for DriverError {
    fn from(f: VBoxFailure) -> DriverError {
        let status = f.status();
        let mut stderr = f.stderr.trim().to_string();
        if stderr.is_empty() {
            stderr = f.stdout.trim().to_string();
        }
        DriverError::Command {
            command: f.command,
            status,
            stderr,
        }
    }
}

/// Whether VBoxManage reported an error on stderr: a line starting with the program name
/// (`VBoxManage`, `vboxmanage`, `VBoxManage.exe`, …) followed by `: error:`. (Packer's
/// pattern `VBoxManage([.a-z]+?): error:` needs at least one character after the name, so it
/// only ever matches `VBoxManage.exe`.)
pub fn stderr_reports_error(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.trim_start();
        let lower = l.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("vboxmanage") else {
            return false;
        };
        let name_tail = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '.'))
            .unwrap_or(rest.len());
        rest[name_tail..].starts_with(": error:")
    })
}

/// The VBoxManage program of a build.
#[derive(Debug, Clone)]
pub struct VBoxManage {
    pub program: PathBuf,
    pub env: DriverEnv,
    pub retry: LockRetry,
}

/// Find `VBoxManage` on the build's `PATH` (its own environment, else this process's), then in
/// `VBOX_INSTALL_PATH` / `VBOX_MSI_INSTALL_PATH` as Packer does.
pub fn find_program(env: &DriverEnv) -> Option<PathBuf> {
    let var = |k: &str| {
        env.var(k).map(String::from).or_else(|| {
            (env.vars.is_empty())
                .then(|| std::env::var(k).ok())
                .flatten()
        })
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(p) = var("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    for k in ["VBOX_INSTALL_PATH", "VBOX_MSI_INSTALL_PATH"] {
        if let Some(p) = var(k) {
            dirs.extend(
                p.split([';', ':'])
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from),
            );
        }
    }
    dirs.into_iter()
        .flat_map(|d| ["VBoxManage", "vboxmanage"].map(|n| d.join(n)))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl VBoxManage {
    pub fn new(program: PathBuf, env: DriverEnv) -> VBoxManage {
        VBoxManage {
            program,
            env,
            retry: LockRetry::default(),
        }
    }

    fn shown(&self, args: &[String]) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "VBoxManage".into());
        let mut s = name;
        for a in args {
            s.push(' ');
            if a.is_empty() || a.contains([' ', '"', '\'']) {
                s.push_str(&format!("{a:?}"));
            } else {
                s.push_str(a);
            }
        }
        s
    }

    /// One call, no retry. `shown` replaces the argument list in messages (for typed keys).
    pub async fn once(
        &self,
        args: &[String],
        shown: Option<&str>,
    ) -> Result<VBoxOutput, VBoxFailure> {
        let command = shown.map(String::from).unwrap_or_else(|| self.shown(args));
        let mut cmd = Command::new(&self.program);
        self.env.apply(&mut cmd);
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return Err(VBoxFailure {
                    command,
                    code: None,
                    stdout: String::new(),
                    stderr: format!("could not run {}: {e}", self.program.display()),
                })
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        tracing::debug!("{command}: {}", out.status);
        if !out.status.success() || stderr_reports_error(&stderr) {
            return Err(VBoxFailure {
                command,
                code: out.status.code(),
                stdout,
                stderr,
            });
        }
        Ok(VBoxOutput { stdout, stderr })
    }

    /// A call with session-lock failures retried (see [`LockRetry`]).
    pub async fn call_raw(&self, args: &[String]) -> Result<VBoxOutput, VBoxFailure> {
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            match self.once(args, None).await {
                Err(f) if f.is_lock() && attempt < self.retry.attempts => {
                    tracing::info!(
                        "{}: the machine is locked (attempt {attempt}/{}); retrying in {delay:?}",
                        f.command,
                        self.retry.attempts
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                    attempt += 1;
                }
                Err(mut f) if f.is_lock() => {
                    f.stderr = format!(
                        "{}\n(the machine stayed locked through {} attempts; another VirtualBox \
                         process — a GUI, a second build — may hold it: close it and retry)",
                        f.stderr.trim_end(),
                        self.retry.attempts
                    );
                    return Err(f);
                }
                other => return other,
            }
        }
    }

    /// [`call_raw`](Self::call_raw) with the failure as a [`DriverError`].
    pub async fn call(&self, args: &[String]) -> DriverResult<VBoxOutput> {
        Ok(self.call_raw(args).await?)
    }

    /// `VBoxManage --version`, parsed.
    pub async fn version(&self) -> DriverResult<VBoxVersion> {
        let out = self.call(&["--version".to_string()]).await?;
        if out.stdout.contains("vboxdrv") || out.stderr.contains("vboxdrv") {
            let warning = format!("{}{}", out.stdout, out.stderr);
            return Err(DriverError::Msg(format!(
                "VirtualBox is not set up on this host (its kernel module is missing): {}; fix the \
                 installation (on Linux: `sudo /sbin/vboxconfig`) or use --engine packer",
                warning.trim()
            )));
        }
        VBoxVersion::parse_output(&out.stdout).ok_or_else(|| {
            DriverError::Msg(format!(
                "`{} --version` printed no version ({:?}); is {} VirtualBox's VBoxManage?",
                self.program.display(),
                out.stdout.trim(),
                self.program.display()
            ))
        })
    }
}

/// Build an argument vector from string-likes.
pub fn args<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_errors_are_found_whatever_the_program_is_called() {
        for s in [
            "VBoxManage: error: Could not find a registered machine named 'x'",
            "vboxmanage: error: x",
            "VBoxManage.exe: error: x",
            "Progress state: NS_ERROR_FAILURE\nVBoxManage: error: Failed to start",
            "  VBoxManage: error: indented",
        ] {
            assert!(stderr_reports_error(s), "{s:?}");
        }
        for s in [
            "",
            "0%...10%...100%",
            "Waiting for VM \"x\" to power on...",
            "error: not from VBoxManage",
            "VBoxManage: warning: something",
            "VBoxManageX1: error: digits are not part of a program name",
        ] {
            assert!(!stderr_reports_error(s), "{s:?}");
        }
    }

    #[test]
    fn lock_failures_are_recognised() {
        let f = VBoxFailure {
            command: "VBoxManage modifyvm x".into(),
            code: Some(1),
            stdout: String::new(),
            stderr: "VBoxManage: error: The machine 'x' is already locked for a session (or being unlocked)\n\
                     VBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine"
                .into(),
        };
        assert!(f.is_lock());
        let e = DriverError::from(f);
        assert!(e.to_string().contains("already locked"), "{e}");
    }
}
