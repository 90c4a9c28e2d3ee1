//! Running `packer build`: its output becomes `log` events (source `packer`, redacted by the
//! event stream) and is scanned for "unknown configuration key" so the failure can say what to
//! do; a cancel request reaches Packer as one SIGINT, after which Packer cleans up and exits.
//!
//! Packer runs in its own process group, so a Ctrl-C in the terminal reaches osimager only
//! (which cancels the build and forwards one interrupt), and two builds in one process never
//! interrupt each other. The exception is an interactive run (`-debug`, `-on-error=ask` on a
//! terminal): Packer reads the terminal itself, so it stays in the terminal's process group,
//! gets the terminal's Ctrl-C directly, and we only wait for it.

use super::command::PackerEnv;
use super::PackerError;
use crate::engine::{BuildContext, Cancel, Events};
use osimager_events::LogSource;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Exit code and the unknown keys Packer complained about.
pub struct PackerRun {
    pub code: i32,
    pub unknown_keys: Vec<String>,
}

/// Everything one `packer build` needs.
pub struct Invocation<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    /// Packer's additions to the build's environment.
    pub env: &'a PackerEnv,
    pub context: &'a BuildContext,
    pub events: &'a Events,
    pub cancel: &'a Cancel,
    pub interactive: bool,
}

/// Split `src` into lines (a `\r` progress redraw keeps only its last state) and emit them.
fn pump(mut src: impl Read, events: Events, seen: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let emit = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let line = text.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        if let Ok(mut s) = seen.lock() {
            if s.len() < 1 << 20 {
                s.push_str(&events.secrets().redact(line));
                s.push('\n');
            }
        }
        events.log_from(LogSource::Packer, line.trim_end_matches('\n'));
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            emit(&line[..line.len() - 1]);
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
}

/// Run Packer and wait for it (forwarding a cancel request as SIGINT).
pub fn run_packer(inv: &Invocation<'_>) -> Result<PackerRun, PackerError> {
    let mut cmd = Command::new(inv.program);
    inv.context.apply_std(&mut cmd);
    cmd.args(inv.args)
        .current_dir(inv.cwd)
        .stdin(if inv.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    inv.env.apply(&mut cmd);
    if !inv.interactive {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // A cancel reaches Packer as SIGINT: make sure it can, also when this process was
        // started with SIGINT ignored (a background job of a non-interactive shell, nohup),
        // which the child would inherit across exec.
        // SAFETY: only async-signal-safe signal(2) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| PackerError::Spawn {
        program: inv.program.display().to_string(),
        source,
    })?;
    let pid = child.id() as libc::pid_t;
    let seen = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let (ev, s) = (inv.events.clone(), seen.clone());
        std::thread::spawn(move || pump(r, ev, s))
    })
    .collect();
    let mut interrupted = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(source) => {
                return Err(PackerError::Spawn {
                    program: inv.program.display().to_string(),
                    source,
                })
            }
        }
        if inv.cancel.is_cancelled() && !interrupted {
            interrupted = true;
            inv.events.log(format!(
                "interrupted by {}: asking Packer to stop and clean up",
                inv.cancel.reason()
            ));
            if !inv.interactive {
                // SAFETY: kill(2) on the process group we created for this child.
                unsafe {
                    libc::kill(-pid, libc::SIGINT);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for t in readers {
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
