//! `osimager` subcommands.

use super::args::{BuildArgs, Cli, Command, ConfigAction, RetrofitArgs, TargetArgs};
use super::output;
use crate::config::pyjson::dumps_indent4;
use crate::config::resolve::{self, Resolved};
use crate::config::{Config, ConfigOptions, ResolveRequest};
use crate::engine::{BuildOptions, OnError};
use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn main_osimager(argv: Vec<OsString>) -> ExitCode {
    let cli = Cli::parse_from(argv);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            super::report(&e);
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn load(
    cli_data_dir: &Option<PathBuf>,
    set: Vec<String>,
    local: bool,
) -> Result<Config> {
    let cfg = Config::load(&ConfigOptions {
        data_dir: cli_data_dir.clone(),
        set,
        local_only: local,
    })?;
    for w in &cfg.settings.warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`osimager list | head`) is not an error.
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
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
            let code = crate::venv::main(&ctx, &crate::venv::VenvRequest { version, all });
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Command::CheckUrls { timeout } => {
            let cfg = load(dd, Vec::new(), false)?;
            let (_, failed) = crate::engine::packer::glue::check_urls(
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
        Command::Init(a) => return super::init::run(dd, &a),
        Command::Doctor(a) => return super::doctor::run(&load(dd, Vec::new(), false)?, &a),
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

/// A temp dir for one resolution: the user's (kept) or a fresh one (removed on drop).
pub(crate) enum TempDir {
    User(PathBuf),
    Fresh(tempfile::TempDir),
}

impl TempDir {
    pub(crate) fn new(user: Option<PathBuf>) -> Result<TempDir> {
        Ok(match user {
            Some(p) => TempDir::User(p),
            None => TempDir::Fresh(
                tempfile::Builder::new()
                    .prefix("tmp")
                    .tempdir()
                    .context("creating a temp directory")?,
            ),
        })
    }
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            TempDir::User(p) => p.clone(),
            TempDir::Fresh(t) => t.path().to_path_buf(),
        }
    }
    /// Keep a fresh dir on disk (returns its path).
    pub(crate) fn keep(self) -> PathBuf {
        match self {
            TempDir::User(p) => p,
            TempDir::Fresh(t) => t.keep(),
        }
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
        skip: t.skip,
        build_id: None,
        require_secrets: false,
    }
}

/// A build (or retrofit) refuses secrets that do not exist instead of using "".
pub(crate) fn build_request(t: &TargetArgs, temp: PathBuf) -> ResolveRequest {
    ResolveRequest {
        require_secrets: true,
        ..request(t, temp)
    }
}

fn resolve_target(dd: &Option<PathBuf>, t: &TargetArgs) -> Result<(Resolved, TempDir)> {
    let cfg = load(dd, Vec::new(), t.local)?;
    let tmp = TempDir::new(t.temp_dir.clone())?;
    let r = resolve::resolve(&cfg, &request(t, tmp.path()))?;
    Ok((r, tmp))
}

fn build(dd: &Option<PathBuf>, b: BuildArgs) -> Result<ExitCode> {
    let cfg = load(dd, Vec::new(), b.target.local)?;
    let tmp = TempDir::new(b.target.temp_dir.clone())?;
    let r = resolve::resolve(&cfg, &build_request(&b.target, tmp.path()))?;
    emit_warnings(&r);
    let user_temp = matches!(tmp, TempDir::User(_));
    let opts = BuildOptions {
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
        keep: b.keep || user_temp,
        temp_dir: Some(tmp.keep()),
        dry_run: b.dry_run,
        dispatcher: b.dispatcher,
        output_dir: b.output_dir,
    };
    super::run_engine(&cfg, &r.plan, &opts)?;
    Ok(ExitCode::SUCCESS)
}

fn retrofit(dd: &Option<PathBuf>, a: RetrofitArgs) -> Result<ExitCode> {
    let cfg = load(dd, Vec::new(), a.target.local)?;
    let tmp = TempDir::new(a.target.temp_dir.clone())?;
    let r = resolve::resolve(&cfg, &build_request(&a.target, tmp.path()))?;
    emit_warnings(&r);
    let user_temp = matches!(tmp, TempDir::User(_));
    let opts = BuildOptions {
        engine: a.engine,
        keep: a.keep || user_temp,
        temp_dir: Some(tmp.keep()),
        dry_run: a.dry_run,
        ..BuildOptions::default()
    };
    crate::engine::retrofit(&cfg, &r.plan, &opts)?;
    Ok(ExitCode::SUCCESS)
}
