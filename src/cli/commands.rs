//! `osimager` subcommands.

use super::args::{BuildArgs, Cli, Command, ConfigAction, RetrofitArgs, TargetArgs};
use super::common::{load, print, report, TempDir};
use super::output;
use super::run::Frontends;
use crate::config::pyjson::dumps_indent4;
use crate::config::resolve::{self, Resolved};
use crate::config::{Config, ResolveRequest};
use crate::engine::{BuildOptions, OnError};
use anyhow::Result;
use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn main_osimager(argv: Vec<OsString>) -> ExitCode {
    let cli = Cli::parse_from(argv);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let dd = &cli.data_dir;
    match cli.command {
        Command::List {
            arch,
            latest,
            avail,
            local,
        } => {
            let cfg = load(dd, Vec::new(), local)?;
            let index = cfg.index()?;
            let arch = arch.as_deref();
            let text = if avail || local {
                output::avail(
                    &cfg,
                    index,
                    arch,
                    latest.as_deref().map(|w| Some(w).filter(|w| !w.is_empty())),
                )
            } else if let Some(w) = latest.as_deref() {
                let w = Some(w).filter(|w| !w.is_empty());
                output::latest(index, arch, w, cfg.settings.local_only())
            } else {
                output::list(&cfg, index, arch)
            };
            print(&text)?;
        }
        Command::Platforms => print(&output::platforms(&load(dd, Vec::new(), false)?)?)?,
        Command::DefsList => print(&output::defs_list(&load(dd, Vec::new(), false)?)?)?,
        Command::Config {
            action: ConfigAction::Show,
        } => print(&load(dd, Vec::new(), false)?.settings.show())?,
        Command::Config {
            action: ConfigAction::Set { items },
        } => {
            let cfg = load(dd, items, false)?;
            match &cfg.saved {
                Some(f) => eprintln!("saved {}", f.display()),
                None => eprintln!("no change"),
            }
        }
        Command::Defs(t) => {
            let (r, _tmp) = resolve_target(dd, &t)?;
            emit_warnings(&r);
            print(&(dumps_indent4(&serde_json::Value::Object(r.plan.defs.clone())) + "\n"))?;
        }
        Command::Dump { target, redact } => {
            let (r, _tmp) = resolve_target(dd, &target)?;
            emit_warnings(&r);
            let text = dumps_indent4(&r.build) + "\n";
            print(&if redact { redact_text(&r, &text) } else { text })?;
        }
        Command::Build(b) => return build(dd, b),
        Command::Retrofit(r) => return retrofit(dd, r),
        Command::Venv { version, all } => {
            let cfg = load(dd, Vec::new(), false)?;
            let ctx = crate::venv::VenvContext::from_config(&cfg);
            let code = super::venv::main(&ctx, &crate::venv::VenvRequest { version, all });
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Command::CheckUrls { timeout } => {
            let cfg = load(dd, Vec::new(), false)?;
            let (_, failed) = super::check_urls::check_urls(
                &cfg,
                std::time::Duration::from_secs(timeout),
                &mut std::io::stdout(),
            )?;
            return Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Cache {
            action,
            cache_dir,
            cache_max_size,
        } => {
            let cfg = load(dd, Vec::new(), false)?;
            return super::cache::run(&cfg, &action, cache_dir, cache_max_size);
        }
        Command::Init(a) => return super::init::run(dd, &a),
        Command::Doctor(a) => return super::doctor::run(&load(dd, Vec::new(), false)?, &a),
        #[cfg(feature = "serve")]
        Command::Serve(a) => return Ok(crate::serve::main(a, cli.data_dir.clone())),
        #[cfg(feature = "serve")]
        Command::Worker(a) => return Ok(crate::serve::worker::main(a, cli.data_dir.clone())),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "osimager", &mut buf);
            print(&String::from_utf8_lossy(&buf))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Replace every secret value (secrets read while resolving, the Vault token) with `***`.
pub(crate) fn redact_text(r: &Resolved, text: &str) -> String {
    if let Some(serde_json::Value::String(t)) = r.plan.defs.get("vault_token") {
        crate::secret::register(t);
    }
    crate::secret::redact(text)
}

pub(crate) fn emit_warnings(r: &Resolved) {
    for n in &r.notices {
        eprintln!("{n}");
    }
    for w in &r.warnings {
        eprintln!("warning: {}", crate::secret::redact(w));
    }
}

pub(crate) fn request(t: &TargetArgs, temp: PathBuf) -> ResolveRequest {
    ResolveRequest {
        target: t.target.clone(),
        name: t.name.clone(),
        ip: t.ip.clone(),
        defines: t.defines.clone(),
        fqdn: t.fqdn.clone(),
        temp_dir: temp,
        temp_dir_named_only: false,
        skip: t.skip,
        build_id: None,
        require_secrets: false,
    }
}

/// `defs`/`dump`: resolve only; the temp dir is named, not created (unless `-m DIR`).
fn resolve_target(dd: &Option<PathBuf>, t: &TargetArgs) -> Result<(Resolved, TempDir)> {
    let cfg = load(dd, Vec::new(), t.local)?;
    let tmp = TempDir::named(t.temp_dir.clone());
    let req = ResolveRequest {
        temp_dir_named_only: tmp.named_only(),
        ..request(t, tmp.path())
    };
    let r = resolve::resolve(&cfg, &req)?;
    Ok((r, tmp))
}

fn build(dd: &Option<PathBuf>, b: BuildArgs) -> Result<ExitCode> {
    let cfg = load(dd, Vec::new(), b.target.local)?;
    let mut opts = BuildOptions {
        engine: b.engine,
        force: b.force,
        on_error: if b.keep && b.on_error == OnError::Cleanup {
            OnError::Abort
        } else {
            b.on_error
        },
        debug: b.debug,
        timestamp_ui: b.timestamp,
        log: b.log,
        logfile: b.logfile,
        keep: b.keep,
        temp_dir: b.target.temp_dir.clone(),
        dry_run: b.dry_run,
        output_dir: b.output_dir,
        skip: b.target.skip,
        verbose: b.verbose,
        cache: b.cache.options(),
    };
    let plan = prepare(&cfg, &b.target, &mut opts)?;
    let fe = Frontends {
        dispatcher: b.dispatcher,
        events: b.events,
        verbose: b.verbose,
        console: b.console,
        timestamps: b.timestamp,
    };
    super::run::build(plan, opts, &fe, false)?;
    Ok(ExitCode::SUCCESS)
}

/// Resolve and prepare the target (printing the configuration's notes once), fixing up the
/// temp dir options: a `-m DIR` is kept, a fresh one is the engine's to remove unless `-k`.
pub(crate) fn prepare(
    cfg: &Config,
    t: &TargetArgs,
    opts: &mut BuildOptions,
) -> Result<crate::plan::BuildPlan> {
    let ctx = crate::engine::BuildContext::from_process();
    let req = crate::build::BuildRequest {
        target: t.target.clone(),
        name: t.name.clone(),
        ip: t.ip.clone(),
        defines: t.defines.clone(),
        fqdn: t.fqdn.clone(),
        local: t.local,
        data_dir: None,
        options: opts.clone(),
    };
    let p = crate::build::prepare_with_config(cfg, &req, &ctx)?;
    for n in &p.notices {
        eprintln!("{n}");
    }
    for w in &p.warnings {
        // OSImager announces every builder key it drops for being empty; that is how specs
        // switch keys off, not something to act on.
        if w.starts_with("removing empty value for:") {
            tracing::debug!("{w}");
        } else {
            eprintln!("warning: {w}");
        }
    }
    if opts.temp_dir.is_some() {
        opts.keep = true;
    }
    opts.temp_dir = Some(p.temp_dir);
    Ok(p.plan)
}

fn retrofit(dd: &Option<PathBuf>, a: RetrofitArgs) -> Result<ExitCode> {
    let cfg = load(dd, Vec::new(), a.target.local)?;
    let mut opts = BuildOptions {
        engine: a.engine,
        keep: a.keep,
        temp_dir: a.target.temp_dir.clone(),
        dry_run: a.dry_run,
        skip: a.target.skip,
        ..BuildOptions::default()
    };
    let plan = prepare(&cfg, &a.target, &mut opts)?;
    let fe = Frontends {
        events: a.events,
        ..Frontends::default()
    };
    super::run::build(plan, opts, &fe, true)?;
    Ok(ExitCode::SUCCESS)
}
