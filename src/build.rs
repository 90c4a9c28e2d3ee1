//! The library entry point: resolve a target and build it, with no CLI involved.
//!
//! ```no_run
//! # async fn demo() -> Result<(), osimager::build::BuildError> {
//! use osimager::build::{run, BuildContext, BuildRequest, Cancel};
//! use osimager_events::MemorySink;
//! use std::sync::Arc;
//!
//! let events = MemorySink::default();
//! let cancel = Cancel::new();
//! let req = BuildRequest::new("qemu/lab/debian-12.12-x86_64");
//! // `run` is `Send + 'static`: spawn it, cancel it from elsewhere, run several at once.
//! let outcome = tokio::spawn(run(req, BuildContext::from_process(), vec![Arc::new(events.clone())], cancel))
//!     .await
//!     .unwrap()?;
//! # Ok(()) }
//! ```
//!
//! Each build has its own [`BuildContext`] (environment, working directory, temp root, secret
//! registry, drivers), its own event stream and its own [`Cancel`] handle; two builds in one
//! process share no mutable state. Every build reports `build_started` first and
//! `build_finished` last, also when the target cannot be resolved.

pub use crate::engine::{
    BuildContext, BuildError, BuildOptions, BuildOutcome, Cancel, Events, Prompter,
};

use crate::config::{Config, ConfigOptions, ResolveRequest};
use crate::engine::Build;
use crate::plan::BuildPlan;
use osimager_events::{BuildEvent, EngineName, EventSink};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `platform/location/spec` (a `-latest-` spec is resolved).
    pub target: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    /// `-D key=value` overrides.
    pub defines: Vec<String>,
    pub fqdn: Option<String>,
    /// `--local`: only ISOs present locally.
    pub local: bool,
    /// The bundled data tree (`--data-dir`); default: see `config::default_data_tree`.
    pub data_dir: Option<PathBuf>,
    pub options: BuildOptions,
}

impl BuildRequest {
    /// A request for `target` with default options.
    pub fn new(target: impl Into<String>) -> BuildRequest {
        BuildRequest {
            target: target.into(),
            ..Default::default()
        }
    }
}

/// A resolved, prepared plan and what resolving it said.
#[derive(Debug)]
pub struct Prepared {
    pub plan: BuildPlan,
    /// Warnings about the configuration (redacted).
    pub warnings: Vec<String>,
    /// The Packer template as OSImager writes it (`dump`).
    pub template: serde_json::Value,
    /// Informational notes of the resolution (e.g. which `-latest-` version was picked).
    pub notices: Vec<String>,
    /// The temp dir made for this build (removed by the engine unless kept).
    pub temp_dir: PathBuf,
}

/// Load the configuration, resolve `req.target` and prepare the plan (render the spec's files),
/// registering every secret read with `ctx.secrets`. Synchronous (it may talk to Vault and DNS).
/// Creates the build's temp dir (the configuration needs its path); on error it is removed.
/// The configuration sees the context's environment and working directory, not the process's.
pub fn prepare(req: &BuildRequest, ctx: &BuildContext) -> Result<Prepared, BuildError> {
    let view = crate::config::env::View {
        vars: Arc::new(ctx.vars.clone()),
        cwd: ctx.cwd.clone(),
    };
    crate::config::env::scope(view, || {
        let cfg = ctx.secrets.scope(|| {
            Config::load(&ConfigOptions {
                data_dir: req.data_dir.clone(),
                set: Vec::new(),
                local_only: req.local,
            })
        })?;
        prepare_with_config(&cfg, req, ctx)
    })
}

/// [`prepare`] with a configuration the caller loaded (the CLI, which applies `--set`).
pub fn prepare_with_config(
    cfg: &Config,
    req: &BuildRequest,
    ctx: &BuildContext,
) -> Result<Prepared, BuildError> {
    let user_temp = req.options.temp_dir.as_ref().map(|t| ctx.absolute(t));
    let temp = match &user_temp {
        Some(t) => {
            std::fs::create_dir_all(t)
                .map_err(|e| BuildError::Config(crate::config::ConfigError::io(t, e)))?;
            t.clone()
        }
        None => tempfile::Builder::new()
            .prefix("tmp")
            .tempdir_in(&ctx.temp_root)
            .map_err(|e| BuildError::Config(crate::config::ConfigError::io(&ctx.temp_root, e)))?
            .keep(),
    };
    let result = ctx.secrets.scope(|| -> Result<Prepared, BuildError> {
        let r = crate::config::resolve::resolve(
            cfg,
            &ResolveRequest {
                target: req.target.clone(),
                name: req.name.clone(),
                ip: req.ip.clone(),
                defines: req.defines.clone(),
                fqdn: req.fqdn.clone(),
                temp_dir: temp.clone(),
                temp_dir_named_only: false,
                skip: req.options.skip,
                build_id: None,
                // A build does not go on with "" for a secret that does not exist.
                require_secrets: true,
            },
        )?;
        if let Some(serde_json::Value::String(t)) = r.plan.defs.get("vault_token") {
            ctx.secrets.register(t);
        }
        let mut plan = r.plan;
        cfg.prepare(&mut plan)?;
        Ok(Prepared {
            plan,
            warnings: r.warnings.iter().map(|w| ctx.secrets.redact(w)).collect(),
            notices: r.notices,
            template: r.build,
            temp_dir: temp.clone(),
        })
    });
    if result.is_err() && user_temp.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    result
}

/// Resolve `req.target` and build it (see the module docs). The future is `Send + 'static`.
pub async fn run(
    req: BuildRequest,
    ctx: BuildContext,
    sinks: Vec<Arc<dyn EventSink>>,
    cancel: Cancel,
) -> Result<BuildOutcome, BuildError> {
    let events = Events::new(crate::engine::new_build_id(), ctx.secrets.clone());
    for s in sinks {
        events.attach(s, false);
    }
    run_with(req, ctx, events, cancel, None).await
}

/// [`run`] with an event stream the caller made (and its own build id) and a prompter.
pub async fn run_with(
    req: BuildRequest,
    ctx: BuildContext,
    events: Events,
    cancel: Cancel,
    prompter: Option<Arc<dyn Prompter>>,
) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    let (req2, ctx2) = (req.clone(), ctx.clone());
    let prepared = tokio::task::spawn_blocking(move || prepare(&req2, &ctx2))
        .await
        .unwrap_or_else(|e| {
            Err(BuildError::Config(crate::config::ConfigError::Other(
                format!("resolving the target failed: {e}"),
            )))
        });
    let mut options = req.options;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            events.emit(BuildEvent::BuildStarted {
                target: req.target.clone(),
                engine: match options.engine {
                    crate::engine::EngineKind::Packer => EngineName::Packer,
                    _ => EngineName::Native,
                },
                builder_type: String::new(),
                name: req.name.clone().unwrap_or_default(),
                dry_run: options.dry_run,
            });
            let build = Build {
                plan: BuildPlan::default(),
                options,
                context: ctx,
                events,
                cancel,
                prompter,
            };
            let result = Err(e);
            crate::engine::finish(&build, &result, started);
            return result;
        }
    };
    let mut plan = prepared.plan;
    plan.inputs.warnings.splice(0..0, prepared.warnings);
    plan.inputs.notices = prepared.notices;
    if options.temp_dir.is_none() {
        options.temp_dir = Some(prepared.temp_dir);
    } else {
        // A directory the caller named is never removed.
        options.keep = true;
    }
    crate::engine::run(Build {
        plan,
        options,
        context: ctx,
        events,
        cancel,
        prompter,
    })
    .await
}
