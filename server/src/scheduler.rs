//! The local runner: takes queued jobs from the store (priority, then FIFO) while a slot is
//! free, runs them through the backend, records their streams, and ends them.

use crate::backend::{Backend, BuildSpec};
use crate::live::Hub;
use crate::recorder::{ChannelSink, Recorder};
use crate::store::{local_worker_name, Job, JobEnd, JobId, JobState, JobStore, StoreError};
use crate::view::job_json;
use osimager_events::{BuildResult, ErrorInfo, ErrorKind};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Running {
    cancel: CancellationToken,
}

/// Runs queued jobs.
pub struct Scheduler {
    name: String,
    store: Arc<dyn JobStore>,
    backend: Arc<dyn Backend>,
    hub: Arc<Hub>,
    state_dir: PathBuf,
    slots: Arc<Semaphore>,
    concurrency: usize,
    wake: Notify,
    running: Mutex<HashMap<JobId, Running>>,
    stopping: CancellationToken,
    tasks: TaskTracker,
}

/// A sensible number of builds at once: one per two cores, one per 2 GiB of available
/// memory, whichever is smaller, at least one.
pub fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_gib = crate::host::memory().map_or(2, |m| (m.available / (1 << 30)) as usize);
    (cores / 2).min(mem_gib / 2).max(1)
}

impl Scheduler {
    /// Make the runner: jobs that were running when the server died become `interrupted`,
    /// and whatever they left (processes, work dirs) is removed. Call [`Scheduler::run`] to
    /// start taking jobs.
    pub async fn new(
        store: Arc<dyn JobStore>,
        backend: Arc<dyn Backend>,
        hub: Arc<Hub>,
        state_dir: PathBuf,
        concurrency: usize,
    ) -> Result<Arc<Scheduler>, StoreError> {
        let s = Arc::new(Scheduler {
            name: local_worker_name(&state_dir),
            store,
            backend,
            hub,
            state_dir,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let mut sweeps = Vec::new();
        // Its own jobs, and those of the name every server's runner had before (a store
        // written by an older version).
        let mut interrupted = s.store.interrupt_running_of(&s.name).await?;
        interrupted.extend(s.store.interrupt_running().await?);
        for job in interrupted {
            tracing::warn!(
                build = job.id,
                "interrupted by a server stop; cleaning up after it"
            );
            s.hub.publish_job(job.id, &job_json(&job));
            sweeps.push(s.work_dir(job.id));
        }
        // Work dirs of no known job are orphans too. Those of ended `--on-error abort`
        // builds stay until the build is deleted: they hold what was left for inspection.
        if let Ok(rd) = std::fs::read_dir(s.state_dir.join("work")) {
            for e in rd.flatten() {
                let known = match e.file_name().to_str().and_then(|n| n.parse::<JobId>().ok()) {
                    Some(id) => s.store.get(id).await?.is_some(),
                    None => false,
                };
                if !known {
                    sweeps.push(e.path());
                }
            }
        }
        for dir in sweeps {
            let stopped = tokio::task::spawn_blocking(move || {
                crate::reaper::sweep(&dir, Duration::from_secs(10))
            })
            .await
            .unwrap_or_default();
            for p in stopped {
                tracing::warn!("stopped {p}, left by an interrupted build");
            }
        }
        let queued = s
            .store
            .list(&crate::store::JobFilter {
                states: vec![JobState::Queued],
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for j in queued.items {
            s.hub.open(j.id);
        }
        Ok(s)
    }

    /// The name this runner claims jobs under ([`crate::store::local_worker_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many builds may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The work dir of a build (its temp files; what a crash leaves is found by this path).
    pub fn work_dir(&self, id: JobId) -> PathBuf {
        self.state_dir.join("work").join(id.to_string())
    }

    /// Builds running now.
    pub fn running(&self) -> usize {
        self.running.lock().map_or(0, |r| r.len())
    }

    /// A job was queued: look at the queue.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Take jobs until [`Scheduler::shutdown`].
    pub async fn run(self: Arc<Self>) {
        loop {
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.stopping.cancelled() => return,
            };
            let job = loop {
                let notified = self.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match self.store.claim(&self.name).await {
                    Ok(Some(job)) => break job,
                    Ok(None) => {}
                    Err(e) => tracing::error!("taking a job from the queue: {e}"),
                }
                tokio::select! {
                    _ = &mut notified => {}
                    // A job queued by another process sharing the store.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = self.stopping.cancelled() => return,
                }
            };
            let me = self.clone();
            self.tasks
                .spawn(async move { me.run_job(job, permit).await });
        }
    }

    /// Cancel a job: a queued one ends now; a running one is stopped by its backend.
    pub async fn cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let before = self.store.get(id).await?;
        let job = self.store.cancel(id).await?;
        match job.state {
            JobState::Running => {
                if let Some(r) = self
                    .running
                    .lock()
                    .ok()
                    .and_then(|r| r.get(&id).map(|r| r.cancel.clone()))
                {
                    r.cancel();
                }
            }
            JobState::Cancelled if before.is_some_and(|b| b.state == JobState::Queued) => {
                self.hub.publish_job(id, &job_json(&job));
                self.hub.remove(id);
            }
            _ => {}
        }
        Ok(job)
    }

    /// Stop taking jobs, stop the running ones (they end as `interrupted`), and wait for
    /// them to clean up, at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.cancel();
        if let Ok(r) = self.running.lock() {
            for run in r.values() {
                run.cancel.cancel();
            }
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("builds still cleaning up after {grace:?}; leaving them");
        }
    }

    async fn run_job(self: Arc<Self>, job: Job, permit: OwnedSemaphorePermit) {
        let id = job.id;
        self.hub.open(id);
        self.hub.publish_job(id, &job_json(&job));
        let work_dir = self.work_dir(id);
        let keep = job.request.on_error == crate::backend::OnErrorChoice::Abort;
        let files_dir = self.state_dir.join("builds").join(id.to_string());
        let mut rec = Recorder::new(id, self.store.clone(), self.hub.clone(), files_dir);
        if let Err(e) = std::fs::create_dir_all(&work_dir) {
            rec.synthesize_end(format!(
                "cannot create the build's work directory {}: {e}; check the state dir's permissions",
                work_dir.display()
            ))
            .await;
            rec.flush().await;
            self.end(id, rec, permit, &work_dir, keep).await;
            return;
        }
        let spec = BuildSpec {
            id: id.to_string(),
            target: job.request.target.clone(),
            engine: job.request.engine,
            on_error: job.request.on_error,
            force: job.request.force,
            dry_run: job.request.dry_run,
            cache: job.request.cache,
            work_dir: work_dir.clone(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = self.backend.start(spec, Arc::new(ChannelSink(tx)));
        if let Ok(mut r) = self.running.lock() {
            r.insert(
                id,
                Running {
                    cancel: handle.cancel.clone(),
                },
            );
        }
        // A cancel that came between the claim and now.
        if self.stopping.is_cancelled()
            || self
                .store
                .get(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|j| j.cancel_requested)
        {
            handle.cancel.cancel();
        }
        let mut done = handle.done;
        let mut outcome = None;
        loop {
            tokio::select! {
                biased;
                r = rx.recv() => match r {
                    Some(first) => {
                        rec.take(first).await;
                        let mut n = 1;
                        while n < 512 {
                            match rx.try_recv() {
                                Ok(r) => rec.take(r).await,
                                Err(_) => break,
                            }
                            n += 1;
                        }
                        rec.flush().await;
                    }
                    None => break,
                },
                r = &mut done, if outcome.is_none() => {
                    outcome = Some(r);
                    // Whatever is buffered is still read; then recv() ends.
                    rx.close();
                }
            }
        }
        if rec.ending.is_none() {
            let why = match outcome {
                Some(Err(e)) => e.message,
                _ => "the build ended without reporting its result (a bug of the engine)".into(),
            };
            rec.synthesize_end(why).await;
        }
        rec.flush().await;
        self.end(id, rec, permit, &work_dir, keep).await;
    }

    async fn end(
        &self,
        id: JobId,
        rec: Recorder,
        permit: OwnedSemaphorePermit,
        work_dir: &std::path::Path,
        keep: bool,
    ) {
        let ending = rec.ending.clone();
        let (mut state, mut error, output_dir) = match ending {
            Some(e) => (
                match e.result {
                    BuildResult::Succeeded => JobState::Succeeded,
                    BuildResult::Failed => JobState::Failed,
                    BuildResult::Cancelled => JobState::Cancelled,
                },
                e.error,
                e.output_dir,
            ),
            None => (JobState::Failed, None, None),
        };
        if self.stopping.is_cancelled() && state != JobState::Succeeded {
            state = JobState::Interrupted;
            error = Some(ErrorInfo {
                kind: ErrorKind::Cancelled,
                message: "the server was stopped during this build; retry it".into(),
                step: error.and_then(|e| e.step),
            });
        }
        self.fill_checksums(id).await;
        // Cleaned up before the end is recorded: a build shown as ended has nothing left
        // running. `--on-error abort` leaves things for inspection: a failed build's work dir
        // stays (deleting the build removes it).
        if !(keep && state != JobState::Succeeded) {
            let dir = work_dir.to_path_buf();
            let _ = tokio::task::spawn_blocking(move || {
                crate::reaper::sweep(&dir, Duration::from_secs(10))
            })
            .await;
        }
        match self
            .store
            .finish(
                id,
                JobEnd {
                    state,
                    error,
                    output_dir,
                },
            )
            .await
        {
            Ok(Some(job)) => self.hub.publish_job(id, &job_json(&job)),
            Ok(None) => {}
            Err(e) => tracing::error!(build = id, "recording the end of the build: {e}"),
        }
        self.hub.remove(id);
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
        drop(permit);
        self.wake();
    }

    /// Artifacts the backend sent without a checksum get one.
    async fn fill_checksums(&self, id: JobId) {
        let Ok(list) = self.store.artifacts(id).await else {
            return;
        };
        for mut a in list.into_iter().filter(|a| a.sha256.is_none()) {
            let path = PathBuf::from(&a.path);
            if let Ok(Ok(sum)) =
                tokio::task::spawn_blocking(move || crate::files::sha256_file(&path)).await
            {
                a.sha256 = Some(sum);
                let _ = self.store.put_artifact(id, &a).await;
            }
        }
    }
}
