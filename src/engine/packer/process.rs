//! Running `packer build`: output passes through to ours (with registered secrets redacted) and
//! is scanned for "unknown configuration key" so the failure can say what to do.

use super::command::PackerEnv;
use super::PackerError;
use crate::secret::redact;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Exit code and the unknown keys Packer complained about.
pub struct PackerRun {
    pub code: i32,
    pub unknown_keys: Vec<String>,
}

/// Copy `src` to `dst` chunk by chunk, cutting at line ends (`\n` or `\r`, so progress bars keep
/// moving) so that a secret is never split across two redaction passes.
fn pump(mut src: impl Read, mut dst: impl Write, seen: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if let Some(cut) = pending.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
            let rest = pending.split_off(cut + 1);
            emit(&pending, &mut dst, &seen);
            pending = rest;
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut dst, &seen);
    }
}

fn emit(bytes: &[u8], dst: &mut impl Write, seen: &Arc<Mutex<String>>) {
    let text = String::from_utf8_lossy(bytes);
    let shown = redact(&text);
    let _ = dst.write_all(shown.as_bytes());
    let _ = dst.flush();
    if let Ok(mut s) = seen.lock() {
        if s.len() < 1 << 20 {
            s.push_str(&shown);
        }
    }
}

/// Run Packer in `cwd` with `env` on top of our environment.
pub fn run_packer(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &PackerEnv,
) -> Result<PackerRun, PackerError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.apply(&mut cmd);
    // Like system(3), which OSImager used: while Packer runs, Ctrl-C and Ctrl-\ go to Packer
    // (same process group), which cleans up and exits; we only wait, then remove the temp dir.
    // Ignored before the fork (no window where a signal could kill us) and reset in the child.
    let signals = IgnoreInterrupts::new();
    let child_dispositions = signals.child_dispositions();
    // SAFETY: the closure only calls signal(2), which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            for (sig, disp) in &child_dispositions {
                libc::signal(*sig, *disp);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| PackerError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let seen = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().map(|o| {
        let s = seen.clone();
        std::thread::spawn(move || pump(o, std::io::stdout(), s))
    });
    let err = child.stderr.take().map(|e| {
        let s = seen.clone();
        std::thread::spawn(move || pump(e, std::io::stderr(), s))
    });
    let status = child.wait().map_err(|source| PackerError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    let text = seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(PackerRun {
        code,
        unknown_keys: super::detect::unknown_keys_in_output(&text),
    })
}

/// Ignores SIGINT and SIGQUIT until dropped, then restores the previous dispositions (which may
/// be a handler the CLI installed).
struct IgnoreInterrupts {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl IgnoreInterrupts {
    fn new() -> IgnoreInterrupts {
        let mut saved = Vec::new();
        for sig in [libc::SIGINT, libc::SIGQUIT] {
            // SAFETY: sigaction with a zeroed struct whose handler is SIG_IGN, saving the old
            // action into a properly sized, initialised struct.
            unsafe {
                let mut ign: libc::sigaction = std::mem::zeroed();
                ign.sa_sigaction = libc::SIG_IGN;
                libc::sigemptyset(&mut ign.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &ign, &mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        IgnoreInterrupts { saved }
    }

    /// What the child should start with: ignored if it was ignored before us (nohup), else the
    /// default action.
    fn child_dispositions(&self) -> Vec<(libc::c_int, libc::sighandler_t)> {
        self.saved
            .iter()
            .map(|(sig, old)| {
                let d = if old.sa_sigaction == libc::SIG_IGN {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                (*sig, d)
            })
            .collect()
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restores the action saved by `new`.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}
