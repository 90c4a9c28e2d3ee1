//! Builds run in a child process of their own: `osimager serve run-job`, which reads the
//! build spec on stdin, runs it with the library entry point (`osimager::build::run_with`)
//! and writes its events as NDJSON on stdout.
//!
//! Why a child and not a task: a server killed with SIGKILL cannot clean up, but its children
//! notice. The child's stdin is the server's pipe: when the server dies the child reads EOF
//! and cancels its build, which unwinds like Ctrl-C does (QEMU stopped, temp dir removed);
//! `PR_SET_PDEATHSIG` sends it SIGTERM as well. Every temp file of the build (TMPDIR) is in
//! the server's work dir for the job, so whatever survives even that is found and removed at
//! the next start (`osimager_server::reaper`). A line `cancel` on stdin cancels the build.

use crate::build::{BuildContext, BuildOptions, BuildRequest, Cancel, Events};
use crate::engine::{EngineKind, OnError};
use crate::install_cache::{CacheMode, CacheOptions};
use osimager_events::{EventRecord, EventSink, NdjsonSink};
use osimager_server::backend::{
    BackendError, BackendErrorKind, BuildHandle, BuildSpec, CacheChoice, EngineChoice,
    OnErrorChoice,
};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Start `spec` in a child process; its records go to `sink`.
pub fn start(
    exe: PathBuf,
    data_dir: Option<PathBuf>,
    spec: BuildSpec,
    sink: Arc<dyn EventSink>,
) -> BuildHandle {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    BuildHandle {
        cancel,
        done: Box::pin(supervise(exe, data_dir, spec, sink, c)),
    }
}

fn internal(m: String) -> BackendError {
    BackendError::new(BackendErrorKind::Internal, m)
}

async fn supervise(
    exe: PathBuf,
    data_dir: Option<PathBuf>,
    spec: BuildSpec,
    sink: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> Result<(), BackendError> {
    let mut cmd = tokio::process::Command::new(&exe);
    if let Some(d) = &data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    cmd.args(["serve", "run-job", "--work-dir"])
        .arg(&spec.work_dir)
        .env("TMPDIR", &spec.work_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| internal(format!("starting the build runner {}: {e}", exe.display())))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| internal("runner stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| internal("runner stdout".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| internal("runner stderr".into()))?;
    let line = serde_json::to_string(&spec).map_err(|e| internal(e.to_string()))? + "\n";
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| internal(format!("handing the build to its runner: {e}")))?;
    let finished = Arc::new(AtomicBool::new(false));
    let reader = {
        let finished = finished.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match serde_json::from_str::<EventRecord>(&l) {
                    Ok(rec) => {
                        if matches!(rec.event, osimager_events::BuildEvent::BuildFinished { .. }) {
                            finished.store(true, Ordering::SeqCst);
                        }
                        sink.send(&rec);
                    }
                    Err(e) => {
                        tracing::warn!("build runner wrote a line that is not an event ({e})")
                    }
                }
            }
        })
    };
    let errors = tokio::spawn(async move {
        let mut tail = VecDeque::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            tracing::debug!("build runner: {l}");
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(l);
        }
        tail
    });
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel.cancelled() => {
            let _ = stdin.write_all(b"cancel\n").await;
            let _ = stdin.flush().await;
            child.wait().await
        }
    };
    drop(stdin);
    let _ = reader.await;
    let tail = errors.await.unwrap_or_default();
    if finished.load(Ordering::SeqCst) {
        return Ok(());
    }
    let tail: Vec<String> = tail.into_iter().collect();
    Err(internal(format!(
        "the build runner ended ({}) without reporting the build's end{}",
        status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string()),
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", crate::secret::redact(&tail.join(" / ")))
        }
    )))
}

/// `osimager serve run-job --work-dir DIR` (the child side).
pub fn run_job(work_dir: PathBuf, data_dir: Option<PathBuf>) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("run-job: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let spec: BuildSpec = match lines.next_line().await {
            Ok(Some(l)) => match serde_json::from_str(&l) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("run-job: the build spec on stdin is unusable: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            },
            _ => {
                tracing::error!(
                    "run-job: no build spec on stdin (this command is for `osimager serve`)"
                );
                return std::process::ExitCode::FAILURE;
            }
        };
        let cancel = Cancel::new();
        // The server's pipe: `cancel`, or EOF when the server went away.
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    match lines.next_line().await {
                        Ok(Some(l)) if l.trim() == "cancel" => {
                            cancel.cancel("cancelled through the build service");
                        }
                        Ok(Some(_)) => {}
                        _ => {
                            cancel.cancel("the build service stopped");
                            return;
                        }
                    }
                }
            });
        }
        watch_signals(cancel.clone());
        let mut ctx = BuildContext::from_process();
        ctx.temp_root = work_dir.clone();
        let events = Events::new(spec.id.clone(), ctx.secrets.clone());
        events.attach(Arc::new(NdjsonSink::new(std::io::stdout())), false);
        let cache_dir = ctx.var("OSIMAGER_CACHE_DIR").map(PathBuf::from);
        let req = request(&spec, data_dir, cache_dir);
        let r = crate::build::run_with(req, ctx, events, cancel, None).await;
        if r.is_ok() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    });
    // The stdin reader sits in a blocking read on the server's pipe: do not wait for it.
    rt.shutdown_background();
    code
}

/// The build of `spec`. `cache_dir`: `OSIMAGER_CACHE_DIR` of the service's environment, as
/// `--cache-dir` of the CLI (default: the plan's `<packer_cache_dir>/install`).
fn request(
    spec: &BuildSpec,
    data_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> BuildRequest {
    let t = &spec.target;
    BuildRequest {
        target: t.target.clone(),
        name: t.name.clone(),
        ip: t.ip.clone(),
        defines: t.defines.clone(),
        fqdn: None,
        local: false,
        data_dir,
        options: BuildOptions {
            engine: match spec.engine {
                EngineChoice::Auto => EngineKind::Auto,
                EngineChoice::Native => EngineKind::Native,
                EngineChoice::Packer => EngineKind::Packer,
            },
            force: spec.force,
            on_error: match spec.on_error {
                OnErrorChoice::Cleanup => OnError::Cleanup,
                OnErrorChoice::Abort => OnError::Abort,
            },
            dry_run: spec.dry_run,
            cache: CacheOptions {
                mode: match spec.cache {
                    CacheChoice::Off => CacheMode::Off,
                    CacheChoice::Use => CacheMode::Use,
                    CacheChoice::Refresh => CacheMode::Refresh,
                },
                dir: cache_dir,
                max_size: None,
            },
            ..BuildOptions::default()
        },
    }
}

fn watch_signals(cancel: Cancel) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let which = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM (the build service stopped)",
            };
            cancel.cancel(which);
        }
    });
}
