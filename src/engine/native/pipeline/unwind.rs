//! Failure handling: diagnostics (screenshot, serial tail), then cleanup in reverse order or,
//! with `--on-error abort`, a list of what was left and where.

use super::{Pipeline, UNDO_TIMEOUT};
use crate::engine::native::cleanup::Undo;
use crate::engine::native::diag;
use crate::engine::native::DriverFactory;
use crate::engine::OnError;
use anyhow::{anyhow, Result};
use osimager_drivers::Driver;
use std::time::Duration;

impl<D: Driver, F: DriverFactory<D>> Pipeline<'_, D, F> {
    pub(super) async fn screenshot(&mut self, name: &str) {
        let Some(s) = &self.settings else { return };
        let path = s.diag_dir.join(name);
        if let Some(d) = self.driver.as_mut() {
            match tokio::time::timeout(Duration::from_secs(20), d.screenshot(&path)).await {
                Ok(Ok(())) => self.log.line(&format!("screenshot: {}", path.display())),
                Ok(Err(e)) => self.log.line(&format!("screenshot {name} failed: {e}")),
                Err(_) => self.log.line(&format!("screenshot {name} timed out")),
            }
        }
    }

    /// A step failed (or a signal arrived): diagnostics, then cleanup or abort.
    pub(super) async fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        let step = self.step;
        self.log
            .line(&format!("Build failed in step {step:?}: {e:#}"));
        if self.pending().contains(&Undo::StopVm) {
            self.screenshot("failure.png").await;
        }
        if let Some(s) = &self.settings {
            for serial in diag::serial_logs(&s.diag_dir) {
                if let Some(t) = diag::tail(&serial, 20) {
                    let t = if t.trim().is_empty() {
                        "(the guest wrote nothing on the serial console)".to_string()
                    } else {
                        t
                    };
                    self.log.line(&format!(
                        "--- last lines of the serial console ({}) ---\n{t}\n---",
                        serial.display()
                    ));
                }
            }
            let shot = s.diag_dir.join("failure.png");
            if shot.exists() {
                self.log
                    .line(&format!("screenshot of the console: {}", shot.display()));
            }
        }
        let abort = match self.opts.on_error {
            OnError::Cleanup => false,
            OnError::Abort => true,
            OnError::Ask => !ask_cleanup().await,
        };
        if abort {
            let left: Vec<String> = self.undo.items().iter().map(|u| self.where_is(u)).collect();
            self.log.line(&format!(
                "--on-error abort: left in place:\n  {}",
                if left.is_empty() {
                    "(nothing)".to_string()
                } else {
                    left.join("\n  ")
                }
            ));
        } else {
            self.unwind().await;
        }
        if let Some(p) = self.log.path() {
            eprintln!("build log: {}", p.display());
        }
        e.context(format!("native build failed in step {step:?}"))
    }

    fn where_is(&self, u: &Undo) -> String {
        match u {
            Undo::StopVm | Undo::DestroyVm => match &self.settings {
                Some(s) => format!(
                    "{} (VM {:?}; logs in {})",
                    u.describe(),
                    s.vm_name,
                    s.diag_dir.display()
                ),
                None => u.describe(),
            },
            Undo::StopHttp => match &self.http {
                Some(h) => format!("HTTP server on http://{}/", h.local_addr()),
                None => u.describe(),
            },
            _ => u.describe(),
        }
    }

    /// Undo everything registered, most recent first. Never fails: problems are logged.
    pub(crate) async fn unwind(&mut self) {
        for u in self.undo.drain_reverse() {
            self.log.line(&format!("cleanup: {}", u.describe()));
            let r: Result<()> = match &u {
                Undo::CloseSsh => {
                    if let Some(s) = self.session.take() {
                        let _ = tokio::time::timeout(UNDO_TIMEOUT, s.close()).await;
                    }
                    Ok(())
                }
                Undo::StopVm => match self.driver.as_mut() {
                    Some(d) => match tokio::time::timeout(UNDO_TIMEOUT, d.force_stop()).await {
                        Ok(r) => r.map_err(Into::into),
                        Err(_) => Err(anyhow!("timed out")),
                    },
                    None => Ok(()),
                },
                Undo::DestroyVm => match self.driver.as_mut() {
                    Some(d) => match tokio::time::timeout(UNDO_TIMEOUT, d.destroy()).await {
                        Ok(r) => r.map_err(Into::into),
                        Err(_) => Err(anyhow!("timed out")),
                    },
                    None => Ok(()),
                },
                Undo::StopHttp => {
                    if let Some(mut h) = self.http.take() {
                        h.shutdown_in_place().await;
                    }
                    Ok(())
                }
                Undo::RemoveDir(p) => match std::fs::remove_dir_all(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(anyhow!("removing {}: {e}", p.display()))
                    }
                    _ => Ok(()),
                },
            };
            if let Err(e) = r {
                self.log
                    .line(&format!("cleanup of {} failed: {e:#}", u.describe()));
            }
        }
    }
}

/// `--on-error ask`: on a terminal ask whether to clean up; otherwise keep things (abort).
async fn ask_cleanup() -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("Build failed. Clean up what was created? [C]leanup / [a]bort: ");
    let answer = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        s
    })
    .await
    .unwrap_or_default();
    !answer.trim().eq_ignore_ascii_case("a")
}
