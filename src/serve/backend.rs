//! [`osimager_server::Backend`] for the real engine: the configuration is read in this
//! process (a fresh load per request, so edits show at once), builds run in child processes
//! (see [`super::job`]).

use super::{catalog, job, locations};
use crate::build::{BuildContext, BuildOptions, BuildRequest, Cancel};
use crate::config::Config;
use async_trait::async_trait;
use osimager_events::{BuildEvent, EventSink, MemorySink};
use osimager_server::backend::*;
use std::path::PathBuf;
use std::sync::Arc;

/// The engine, as the build service reaches it.
pub struct OsimagerBackend {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// This program (the build runner is `<exe> serve run-job`).
    pub exe: PathBuf,
}

impl OsimagerBackend {
    async fn with_config<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Config) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let dd = self.data_dir.clone();
        tokio::task::spawn_blocking(move || f(&catalog::load(&dd)?))
            .await
            .map_err(|e| BackendError::new(BackendErrorKind::Internal, e.to_string()))?
    }
}

#[async_trait]
impl Backend for OsimagerBackend {
    async fn targets(&self, filter: &TargetFilter) -> Result<Vec<TargetInfo>, BackendError> {
        let f = filter.clone();
        self.with_config(move |c| catalog::targets(c, &f)).await
    }

    async fn platforms(&self) -> Result<Vec<PlatformInfo>, BackendError> {
        self.with_config(catalog::platforms).await
    }

    async fn locations(&self) -> Result<Vec<LocationInfo>, BackendError> {
        self.with_config(locations::list).await
    }

    async fn location(&self, name: &str) -> Result<LocationDoc, BackendError> {
        let n = name.to_string();
        self.with_config(move |c| locations::get(c, &n)).await
    }

    async fn check_location(
        &self,
        name: &str,
        doc: &LocationDoc,
    ) -> Result<Validation, BackendError> {
        let (n, d) = (name.to_string(), doc.clone());
        self.with_config(move |c| Ok(locations::check(c, &n, &d)))
            .await
    }

    async fn save_location(
        &self,
        name: &str,
        doc: &LocationDoc,
        create: bool,
    ) -> Result<LocationInfo, BackendError> {
        let (n, d) = (name.to_string(), doc.clone());
        self.with_config(move |c| locations::save(c, &n, &d, create))
            .await
    }

    async fn delete_location(&self, name: &str) -> Result<(), BackendError> {
        let n = name.to_string();
        self.with_config(move |c| locations::delete(c, &n)).await
    }

    async fn resolve(&self, target: &TargetRef) -> Result<ResolvedTarget, BackendError> {
        let t = target.clone();
        self.with_config(move |c| catalog::resolve(c, &t)).await
    }

    /// A dry run of the build (everything is checked, nothing is created), with
    /// `--force` so an existing output directory is not a problem of the target.
    async fn validate(&self, target: &TargetRef) -> Result<Validation, BackendError> {
        let resolved = self.resolve(target).await?;
        let events = MemorySink::default();
        let req = BuildRequest {
            target: target.target.clone(),
            name: target.name.clone(),
            ip: target.ip.clone(),
            defines: target.defines.clone(),
            data_dir: self.data_dir.clone(),
            options: BuildOptions {
                dry_run: true,
                force: true,
                ..BuildOptions::default()
            },
            ..BuildRequest::default()
        };
        let result = crate::build::run(
            req,
            BuildContext::from_process(),
            vec![Arc::new(events.clone())],
            Cancel::new(),
        )
        .await;
        let mut warnings = resolved.warnings;
        let mut engine = None;
        for r in events.records() {
            match r.event {
                BuildEvent::Warning { message }
                    if !warnings.contains(&message)
                        && !message.starts_with("removing empty value for:") =>
                {
                    warnings.push(message)
                }
                BuildEvent::BuildStarted { engine: e, .. } => {
                    engine = Some(match e {
                        osimager_events::EngineName::Native => "native",
                        osimager_events::EngineName::Packer => "packer",
                    })
                }
                _ => {}
            }
        }
        let problems = match result {
            Ok(_) => Vec::new(),
            Err(crate::build::BuildError::Config(e)) => return Err(catalog::config_error(e)),
            Err(e) => vec![Problem {
                key: e.step().map(str::to_string),
                message: e.message(),
            }],
        };
        Ok(Validation {
            ok: problems.is_empty(),
            problems,
            warnings,
            target: Some(resolved.target),
            engine: engine.map(str::to_string),
        })
    }

    fn start(&self, spec: BuildSpec, sink: Arc<dyn EventSink>) -> BuildHandle {
        job::start(self.exe.clone(), self.data_dir.clone(), spec, sink)
    }

    async fn host(&self) -> HostFacts {
        super::host::facts().await
    }
}
