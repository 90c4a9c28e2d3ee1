//! The step runner (Packer's multistep, in Rust): every step runs through [`Runner::step`],
//! which reports it (started / finished, with its duration and outcome) and pauses after it
//! under `-debug`; every step that creates something registers a [`Resource`] the moment it
//! exists. When the build ends — success, failure, timeout or cancellation alike — the
//! resources are undone in reverse order, or, with `--on-error abort`, left in place and
//! described.

use super::ledger::{self, Ledger};
use super::resources::{Resource, ResourceId, Vm};
use super::NativeError;
use crate::engine::{Build, Events, OnError, Prompter};
use osimager_events::{BuildEvent, Outcome};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for one cleanup action, so a wedged hypervisor cannot hang the unwinding.
const UNDO_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the steps of one build. Shared by reference between the steps; interior mutability
/// keeps the table of contents in `mod.rs` free of borrows.
pub(crate) struct Runner {
    pub events: Events,
    on_error: OnError,
    debug: bool,
    prompter: Option<Arc<dyn Prompter>>,
    resources: Mutex<Vec<(ResourceId, Arc<dyn Resource>)>>,
    next: AtomicU64,
    /// The step running now, and when it started.
    current: Mutex<Option<(&'static str, Instant)>>,
    skipped: AtomicBool,
    /// The step that failed.
    failed: Mutex<Option<&'static str>>,
    /// The VM once created, for the failure screenshot.
    vm: Mutex<Option<Vm>>,
    /// The build's state file: what would outlive a killed osimager (`ledger.rs`).
    ledger: Ledger,
}

impl Runner {
    pub fn new(build: &Build) -> Runner {
        Runner {
            events: build.events.clone(),
            on_error: build.options.on_error,
            debug: build.options.debug,
            prompter: build.prompter.clone(),
            resources: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            current: Mutex::new(None),
            skipped: AtomicBool::new(false),
            vm: Mutex::new(None),
            failed: Mutex::new(None),
            ledger: Ledger::new(
                ledger::state_dir(|k| build.context.var(k).map(String::from)),
                build.events.build_id(),
                &build.plan.target,
            ),
        }
    }

    /// Clean up after earlier builds whose osimager was killed (their state files name what
    /// they left), and say so.
    pub fn recover_killed_builds(&self) {
        let Some(dir) = self.ledger.path().and_then(|p| p.parent()) else {
            return;
        };
        for m in ledger::recover(dir) {
            self.events.warn(m);
        }
    }

    /// Write what the build has created so far into its state file (removed when empty).
    pub fn save_ledger(&self) {
        let items: Vec<Arc<dyn Resource>> = lock(&self.resources)
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        let leftovers = items.iter().flat_map(|r| r.leftovers()).collect();
        if let Err(e) = self.ledger.save(leftovers) {
            self.events.detail(e);
        }
    }

    /// Remember the VM for diagnostics after a failure.
    pub fn set_vm(&self, vm: Vm) {
        *lock(&self.vm) = Some(vm);
    }

    /// The VM, if one was created.
    pub fn vm(&self) -> Option<Vm> {
        lock(&self.vm).clone()
    }

    /// Run one step: report it, run it, report how it ended, pause if `-debug`.
    pub async fn step<T>(
        &self,
        name: &'static str,
        fut: impl Future<Output = Result<T, NativeError>>,
    ) -> Result<T, NativeError> {
        self.skipped.store(false, Ordering::Relaxed);
        *lock(&self.current) = Some((name, Instant::now()));
        self.events.emit(BuildEvent::StepStarted {
            step: name.to_string(),
        });
        let r = fut.await;
        if r.is_err() {
            *lock(&self.failed) = Some(name);
        }
        let outcome = match (&r, self.skipped.load(Ordering::Relaxed)) {
            (Err(_), _) => Outcome::Failed,
            (Ok(_), true) => Outcome::Skipped,
            (Ok(_), false) => Outcome::Ok,
        };
        self.finish_step(outcome);
        self.save_ledger();
        if r.is_ok() && self.debug {
            if let Some(p) = &self.prompter {
                p.after_step(name).await;
            }
        }
        r
    }

    /// The running step had nothing to do (reported as `skipped`).
    pub fn skip(&self, why: &str) {
        self.events.log(why);
        self.skipped.store(true, Ordering::Relaxed);
    }

    /// Report the end of the current step, if one is running (also used when a cancellation
    /// drops a step mid-way).
    pub fn finish_step(&self, outcome: Outcome) -> Option<&'static str> {
        let (name, t) = lock(&self.current).take()?;
        self.events.emit(BuildEvent::StepFinished {
            step: name.to_string(),
            outcome,
            duration_ms: t.elapsed().as_millis() as u64,
        });
        Some(name)
    }

    /// The step that failed, if one did.
    pub fn failed_step(&self) -> Option<&'static str> {
        *lock(&self.failed)
    }

    /// Register something just created.
    pub fn register(&self, r: Arc<dyn Resource>) -> ResourceId {
        let id = ResourceId(self.next.fetch_add(1, Ordering::Relaxed));
        self.events
            .detail(format!("registered for cleanup: {}", r.describe()));
        lock(&self.resources).push((id, r));
        self.save_ledger();
        id
    }

    /// It is no longer ours to undo (e.g. the staging directory, once renamed into place).
    pub fn forget(&self, id: ResourceId) {
        lock(&self.resources).retain(|(i, _)| *i != id);
        self.save_ledger();
    }

    /// Undo everything registered, most recent first. Never fails: problems are reported.
    pub async fn undo_all(&self) {
        let items: Vec<_> = lock(&self.resources).clone();
        for (id, r) in items.into_iter().rev() {
            self.undo_one(r.as_ref()).await;
            // Undone: off the state file (a kill now leaves only what is still there).
            self.forget(id);
        }
    }

    async fn undo_one(&self, r: &dyn Resource) {
        self.events.log(format!("cleanup: {}", r.describe()));
        let failure = match tokio::time::timeout(UNDO_TIMEOUT, r.undo()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("timed out after {}s", UNDO_TIMEOUT.as_secs())),
        };
        if let Some(e) = failure {
            self.events
                .warn(format!("cleanup of {} failed: {e}", r.describe()));
        }
    }

    /// The build failed with `error`: clean up, or (abort / ask → abort) leave things in place.
    /// Returns what was left, for the report.
    pub async fn unwind_after_failure(&self, error: &str) -> Vec<String> {
        let abort = match self.on_error {
            OnError::Cleanup => false,
            OnError::Abort => true,
            OnError::Ask => match &self.prompter {
                Some(p) => !p.cleanup_after_failure(error).await,
                None => true,
            },
        };
        if !abort {
            self.undo_all().await;
            return Vec::new();
        }
        let items: Vec<_> = std::mem::take(&mut *lock(&self.resources));
        // Left on purpose and reported: not leftovers for the next run to remove.
        self.save_ledger();
        let mut left = Vec::new();
        for (_, r) in items.into_iter().rev() {
            match r.leave() {
                Some(lines) => left.extend(lines),
                None => self.undo_one(r.as_ref()).await,
            }
        }
        self.events.log(format!(
            "--on-error abort: left in place:\n  {}",
            if left.is_empty() {
                "(nothing)".to_string()
            } else {
                left.join("\n  ")
            }
        ));
        left
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
