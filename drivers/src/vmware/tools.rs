//! Finding and running VMware's command-line tools (and qemu-img) with the build's
//! environment.

use crate::driver::DriverEnv;
use crate::DriverError;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// `name` on the build's `PATH` (its own environment, else this process's).
pub fn find(env: &DriverEnv, name: &str) -> Option<PathBuf> {
    let path = env
        .var("PATH")
        .map(String::from)
        .or_else(|| std::env::var("PATH").ok())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// The command line as shown in errors and logs (`shown` hides nothing secret: callers never
/// pass secrets as arguments).
pub fn shown(program: &Path, args: &[String]) -> String {
    let mut s = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
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

/// Run `program args…` to completion with the build's environment; never fails on a non-zero
/// exit (callers decide: vmrun's exit codes are unreliable).
pub async fn run(env: &DriverEnv, program: &Path, args: &[String]) -> Result<Output, DriverError> {
    let mut cmd = tokio::process::Command::new(program);
    env.apply(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(|source| DriverError::Io {
        context: format!("running `{}`", shown(program, args)),
        source,
    })?;
    Ok(Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).replace("\r\n", "\n"),
    })
}

/// Run and require exit status 0; the error carries the command line and what it printed.
pub async fn run_ok(
    env: &DriverEnv,
    program: &Path,
    args: &[String],
) -> Result<Output, DriverError> {
    let out = run(env, program, args).await?;
    if out.status.success() {
        Ok(out)
    } else {
        let msg = if out.stderr.trim().is_empty() {
            out.stdout.trim().to_string()
        } else {
            out.stderr.trim().to_string()
        };
        Err(DriverError::Command {
            command: shown(program, args),
            status: out.status.to_string(),
            stderr: msg,
        })
    }
}

/// Like [`find`], or an error naming the tool and where VMware installs it.
pub fn require(env: &DriverEnv, name: &str, why: &str) -> Result<PathBuf, DriverError> {
    find(env, name).ok_or_else(|| {
        DriverError::Msg(format!(
            "`{name}` is not on PATH ({why}); VMware Workstation installs it in /usr/bin on Linux \
             — install Workstation or add its directory to PATH"
        ))
    })
}
