//! What native steps create, each with how to undo it and how to leave it in place
//! (`--on-error abort`).

use super::ledger::{start_time, Leftover};
use crate::comm::Session;
use async_trait::async_trait;
use osimager_drivers::Driver;
use osimager_http::HttpServer;
use std::path::PathBuf;
use std::sync::Arc;

/// Something a step created that must not outlive a build that did not complete.
#[async_trait]
pub(crate) trait Resource: Send + Sync {
    /// For the log and the `--on-error abort` report ("HTTP server on …", "directory …").
    fn describe(&self) -> String;
    /// Remove it. Problems are reported, never raised.
    async fn undo(&self) -> Result<(), String>;
    /// `--on-error abort`: keep it and say where it is and how to remove it. Resources that
    /// cannot outlive this process (a server inside it, a connection) return `None` and are
    /// undone instead.
    fn leave(&self) -> Option<Vec<String>> {
        Some(vec![self.describe()])
    }
    /// What of it would outlive this process if it were killed now (recorded in the build's
    /// state file, `ledger.rs`). In-process things (a server, a connection, a task) end with
    /// the process: nothing.
    fn leftovers(&self) -> Vec<Leftover> {
        Vec::new()
    }
}

/// Handle of a registered resource (to forget it once it is no longer ours to undo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceId(pub(crate) u64);

/// The VM, shared by the steps that drive it and the cleanup that destroys it.
pub(crate) type Vm = Arc<tokio::sync::Mutex<Box<dyn Driver>>>;

/// A directory the build made (temp dir, staging output dir).
pub(crate) struct Dir {
    pub what: &'static str,
    pub path: PathBuf,
}

#[async_trait]
impl Resource for Dir {
    fn describe(&self) -> String {
        format!("{} {}", self.what, self.path.display())
    }

    async fn undo(&self) -> Result<(), String> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("removing {}: {e}", self.path.display()))
            }
            _ => Ok(()),
        }
    }

    fn leave(&self) -> Option<Vec<String>> {
        Some(vec![format!(
            "{} {} (remove: rm -rf {})",
            self.what,
            self.path.display(),
            self.path.display()
        )])
    }

    fn leftovers(&self) -> Vec<Leftover> {
        vec![Leftover::Dir {
            what: self.what.to_string(),
            path: self.path.clone(),
        }]
    }
}

/// The VM's registration, disks and process (the driver's `destroy`).
pub(crate) struct VmResource {
    pub vm: Vm,
    pub name: String,
    /// The footprint last seen, for when the VM is busy.
    pub last: std::sync::Mutex<Vec<Leftover>>,
}

#[async_trait]
impl Resource for VmResource {
    fn describe(&self) -> String {
        format!("VM {}", self.name)
    }

    async fn undo(&self) -> Result<(), String> {
        self.vm
            .lock()
            .await
            .destroy()
            .await
            .map_err(|e| crate::errors::error_chain(&e))
    }

    fn leave(&self) -> Option<Vec<String>> {
        // Nothing else holds the VM once the steps ended.
        let Ok(mut d) = self.vm.try_lock() else {
            return Some(vec![format!("VM {} (busy: could not list it)", self.name)]);
        };
        let left = d.leave_running();
        let mut lines: Vec<String> = left.items;
        if !left.stop_commands.is_empty() {
            lines.push(format!(
                "to stop and remove the VM: {}",
                left.stop_commands.join(" && ")
            ));
        }
        if lines.is_empty() {
            lines.push(format!("VM {} (not running)", self.name));
        }
        Some(lines)
    }

    fn leftovers(&self) -> Vec<Leftover> {
        // A step holding the VM (typing, waiting) does not change what it has started.
        let Ok(d) = self.vm.try_lock() else {
            return self.last.lock().map(|l| l.clone()).unwrap_or_default();
        };
        let f = d.footprint();
        let mut v: Vec<Leftover> = f
            .processes
            .into_iter()
            .filter_map(|pid| {
                Some(Leftover::Process {
                    what: format!("VM {} process", self.name),
                    pid,
                    start: start_time(pid)?,
                })
            })
            .collect();
        v.extend(f.dirs.into_iter().map(|path| Leftover::Dir {
            what: format!("VM {} directory", self.name),
            path,
        }));
        if let Ok(mut l) = self.last.lock() {
            *l = v.clone();
        }
        v
    }
}

/// The embedded HTTP server (it cannot outlive this process: undone even on abort).
pub(crate) struct Http {
    pub server: tokio::sync::Mutex<Option<HttpServer>>,
    pub url: String,
}

#[async_trait]
impl Resource for Http {
    fn describe(&self) -> String {
        format!("HTTP server on {}", self.url)
    }

    async fn undo(&self) -> Result<(), String> {
        if let Some(mut s) = self.server.lock().await.take() {
            s.shutdown_in_place().await;
        }
        Ok(())
    }

    fn leave(&self) -> Option<Vec<String>> {
        None
    }
}

/// The SSH session to the guest (closed even on abort).
pub(crate) struct Ssh {
    pub session: Arc<tokio::sync::Mutex<Option<Session>>>,
    pub addr: String,
}

#[async_trait]
impl Resource for Ssh {
    fn describe(&self) -> String {
        format!("SSH session to {}", self.addr)
    }

    async fn undo(&self) -> Result<(), String> {
        if let Some(s) = self.session.lock().await.take() {
            s.close().await;
        }
        Ok(())
    }

    fn leave(&self) -> Option<Vec<String>> {
        None
    }
}

/// A background task of the build (the serial console follower).
pub(crate) struct Task {
    pub what: &'static str,
    pub stop: tokio_util::sync::CancellationToken,
    pub handle: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[async_trait]
impl Resource for Task {
    fn describe(&self) -> String {
        self.what.to_string()
    }

    async fn undo(&self) -> Result<(), String> {
        self.stop.cancel();
        if let Some(h) = self.handle.lock().await.take() {
            let _ = h.await;
        }
        Ok(())
    }

    fn leave(&self) -> Option<Vec<String>> {
        None
    }
}
