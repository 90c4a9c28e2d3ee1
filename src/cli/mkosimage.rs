//! `mkosimage` / `rfosimage`: the OSImager 1.11.1 flags, mapped onto the same library calls as
//! `osimager`. Output matches the original's (defs/dump JSON, list formats, `X -> Y` notices and
//! "warning: removing empty value" lines on stdout); other diagnostics go to stderr.

use super::commands::request;
use super::common::{report, TempDir};
use super::output;
use crate::config::pyjson::dumps_indent4;
use crate::config::resolve::{self, Resolved};
use crate::config::{Config, ConfigOptions};
use crate::engine::{BuildOptions, EngineKind, OnError};
use anyhow::{bail, Result};
use clap::{ArgAction, Parser};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// OSImager configuration and control tool (compatibility entry point).
#[derive(Debug, Parser)]
#[command(
    name = "mkosimage",
    disable_version_flag = true,
    args_override_self = true,
    after_help = "Same flags as OSImager 1.11.1. The native equivalent is `osimager`."
)]
pub struct MkArgs {
    /// List available specs
    #[arg(short = 'l', long)]
    list: bool,
    /// Show ISO availability for all specs
    #[arg(short = 'a', long)]
    avail: bool,
    /// List available platforms
    #[arg(long)]
    list_platforms: bool,
    /// List available defs and their defaults
    #[arg(long)]
    list_defs: bool,
    /// Install required Packer plugins for all platforms
    #[arg(long)]
    init_plugins: bool,
    /// Check all ISO download URLs for accessibility (not supported: needs the internet)
    #[arg(long)]
    check_urls: bool,
    /// Show current configuration settings
    #[arg(long)]
    show_config: bool,
    /// Enable debug mode (Packer -debug)
    #[arg(short = 'd', long)]
    debug: bool,
    /// Enable verbose output
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Show version and exit
    #[arg(short = 'V', long)]
    version: bool,
    /// Show the <dist>-latest-<arch> targets; DIST or DIST-VERSION narrows them
    #[arg(long, value_name = "DIST[-VERSION]", num_args = 0..=1, default_missing_value = "")]
    latest: Option<String>,
    /// Filter output by architecture
    #[arg(long)]
    arch: Option<String>,
    /// Set a setting value (key=value)
    #[arg(long = "set", action = ArgAction::Append)]
    set: Vec<String>,
    /// Bundled data tree (default: $OSIMAGER_DATA_DIR, <exe>/../share/osimager, source tree)
    // $OSIMAGER_DATA_DIR is read by config::default_data_tree (an empty value counts as unset).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Specify on-error behaviour (cleanup, abort, ask)
    #[arg(short = 'e', long = "on_error", alias = "on-error")]
    on_error: Option<String>,
    /// Enable logging (PACKER_LOG=1)
    #[arg(short = 'L')]
    log: bool,
    /// Log file name
    #[arg(short = 'N', long)]
    logfile: Option<PathBuf>,
    /// Force mode
    #[arg(short = 'f')]
    force: bool,
    /// Keep files/vms
    #[arg(short = 'k')]
    keep: bool,
    /// Enable timestamping
    #[arg(short = 't')]
    timestamp: bool,
    /// FQDN of the machine
    #[arg(short = 'F', long)]
    fqdn: Option<String>,
    /// Define variables: k=v,k2=v2
    #[arg(short = 'D', long = "define")]
    defines: Option<String>,
    /// Dump defs and exit
    #[arg(short = 'x', long = "defs")]
    dump_defs: bool,
    /// Dump build and exit
    #[arg(short = 'u', long = "dump")]
    dump_build: bool,
    /// Specify temp directory
    #[arg(short = 'm', long = "temp")]
    temp_dir: Option<PathBuf>,
    /// Use local ISO files instead of downloading
    #[arg(long = "local", alias = "local-only")]
    local_only: bool,
    /// Enable dispatcher progress output (PROGRESS=, ERROR=, RESULT=)
    #[arg(long)]
    dispatcher: bool,
    /// Skip post-install configuration
    #[arg(long)]
    skip: bool,
    /// Dry run
    #[arg(short = 'n', long = "dry")]
    dry_run: bool,
    /// Engine (osimager extension). mkosimage defaults to packer, as the original;
    /// rfosimage defaults to native (SSH + provisioners, no Packer)
    #[arg(long, value_enum)]
    engine: Option<EngineKind>,
    /// Target in format platform/location/spec
    target: Option<String>,
    /// Optional instance name
    name: Option<String>,
    /// Optional IP address
    ip: Option<String>,
}

fn exit(r: Result<ExitCode>) -> ExitCode {
    match r {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

pub fn main_mkosimage(argv: Vec<OsString>) -> ExitCode {
    let args = MkArgs::parse_from(argv);
    exit(run(args, false))
}

pub fn main_rfosimage(argv: Vec<OsString>) -> ExitCode {
    let args = MkArgs::parse_from(argv);
    exit(run(args, true))
}

/// `mkvenv [--all] [ANSIBLE_VERSION]`: the original's Ansible venv manager.
#[derive(Debug, Parser)]
#[command(
    name = "mkvenv",
    about = "Create the Ansible venvs OSImager specs ask for (ansible.json)"
)]
struct VenvArgs {
    /// Create all missing venvs
    #[arg(long)]
    all: bool,
    /// Bundled data tree (osimager extension)
    // $OSIMAGER_DATA_DIR is read by config::default_data_tree (an empty value counts as unset).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Ansible version to create venv for (e.g. 2.16)
    ansible_version: Option<String>,
}

pub fn main_mkvenv(argv: Vec<OsString>) -> ExitCode {
    let a = VenvArgs::parse_from(argv);
    exit((|| {
        let cfg = Config::load(&ConfigOptions {
            data_dir: a.data_dir.clone(),
            set: Vec::new(),
            local_only: false,
        })?;
        let ctx = crate::venv::VenvContext::from_config(&cfg);
        let req = crate::venv::VenvRequest {
            version: a.ansible_version.clone(),
            all: a.all,
        };
        Ok(ExitCode::from(
            super::venv::main(&ctx, &req).clamp(0, 255) as u8
        ))
    })())
}

fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

/// Notices and the original's stdout warnings on stdout, the rest on stderr.
fn emit(r: &Resolved) {
    for n in &r.notices {
        out(&format!("{n}\n"));
    }
    for w in &r.warnings {
        if w.starts_with("removing empty value for:") {
            out(&format!("warning: {w}\n"));
        } else {
            eprintln!("warning: {}", crate::secret::redact(w));
        }
    }
}

fn on_error(s: Option<&str>, keep: bool) -> Result<OnError> {
    Ok(match s {
        None if keep => OnError::Abort,
        None | Some("cleanup") => OnError::Cleanup,
        Some("abort") => OnError::Abort,
        Some("ask") => OnError::Ask,
        Some(other) => bail!("invalid --on_error value '{other}': use cleanup, abort or ask"),
    })
}

fn run(a: MkArgs, retrofit: bool) -> Result<ExitCode> {
    if a.version {
        out(&format!("OSImager version {}\n", env!("CARGO_PKG_VERSION")));
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = Config::load(&ConfigOptions {
        data_dir: a.data_dir.clone(),
        set: a.set.clone(),
        local_only: a.local_only,
    })?;
    let arch = a.arch.as_deref();
    let wanted = a
        .latest
        .as_deref()
        .map(|w| Some(w).filter(|w| !w.is_empty()));
    if a.show_config {
        out(&cfg.settings.show());
        return Ok(ExitCode::SUCCESS);
    }
    if a.check_urls {
        let (_, failed) = super::check_urls::check_urls(
            &cfg,
            std::time::Duration::from_secs(10),
            &mut std::io::stdout(),
        )?;
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if a.avail || (a.local_only && a.target.is_none()) {
        out(&output::avail(&cfg, cfg.index()?, arch, wanted));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(w) = wanted {
        out(&output::latest(
            cfg.index()?,
            arch,
            w,
            cfg.settings.local_only(),
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if a.list_platforms {
        out(&output::platforms(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.init_plugins {
        return super::plugins::init_plugins(&cfg);
    }
    if a.list_defs {
        out(&output::defs_list(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.list {
        out(&output::list(&cfg, cfg.index()?, arch));
        return Ok(ExitCode::SUCCESS);
    }
    let Some(target) = a.target.clone() else {
        out(&usage(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    };
    let t = super::args::TargetArgs {
        target,
        name: a.name.clone(),
        ip: a.ip.clone(),
        defines: a.defines.clone().into_iter().collect(),
        fqdn: a.fqdn.clone(),
        temp_dir: a.temp_dir.clone(),
        skip: a.skip,
        local: a.local_only,
    };
    let tmp = TempDir::new(t.temp_dir.clone())?;
    // A build refuses secrets that do not exist; -x/-u print the result with "" as 1.11.1.
    let req = crate::config::ResolveRequest {
        require_secrets: !(a.dump_defs || a.dump_build),
        ..request(&t, tmp.path())
    };
    let r = resolve::resolve(&cfg, &req)?;
    emit(&r);
    if a.dump_defs || a.dump_build {
        let v = if a.dump_defs {
            serde_json::Value::Object(r.plan.defs.clone())
        } else {
            r.build.clone()
        };
        out(&(dumps_indent4(&v) + "\n"));
        return Ok(ExitCode::SUCCESS);
    }
    let user_temp = matches!(tmp, TempDir::User(_));
    let opts = BuildOptions {
        engine: a.engine.unwrap_or(if retrofit {
            EngineKind::Native
        } else {
            EngineKind::Packer
        }),
        force: a.force,
        on_error: on_error(a.on_error.as_deref(), a.keep)?,
        debug: a.debug,
        timestamp_ui: a.timestamp,
        log: a.log,
        logfile: a.logfile.clone(),
        keep: a.keep || user_temp,
        temp_dir: Some(tmp.keep()),
        dry_run: a.dry_run,
        skip: a.skip,
        verbose: a.verbose,
        ..BuildOptions::default()
    };
    let mut plan = r.plan;
    cfg.prepare(&mut plan)?;
    let fe = super::run::Frontends {
        dispatcher: a.dispatcher,
        timestamps: a.timestamp,
        ..Default::default()
    };
    super::run::build(plan, opts, &fe, retrofit)?;
    Ok(ExitCode::SUCCESS)
}

/// The original's usage text when no target is given.
fn usage(cfg: &Config) -> Result<String> {
    let mut s = String::from("Usage: mkosimage [OPTIONS] PLATFORM/LOCATION/SPEC [NAME] [IP]\n\n");
    let user_dir = cfg.layers.user.clone();
    let locations = cfg.locations()?;
    let examples = cfg
        .layers
        .resolve(&["examples"])
        .unwrap_or_else(|| user_dir.join("examples"));
    let mut need_docs = false;
    if locations.is_empty() {
        s.push_str("No locations configured.\n");
        s.push_str(&format!(
            "  Create a location file in {}/\n",
            user_dir.join("locations").display()
        ));
        s.push_str("  Supports .toml and .json formats (e.g. lab.toml or lab.json)\n\n");
        s.push_str("  Quick start (VirtualBox):\n");
        s.push_str(&format!(
            "    cp {} \\\n",
            examples.join("quickstart-location.toml").display()
        ));
        s.push_str(&format!(
            "       {}\n\n",
            user_dir.join("locations").join("local.toml").display()
        ));
        need_docs = true;
    }
    let source = cfg.settings.get_str("credential_source");
    if source == "vault" {
        if cfg.settings.get_str("vault_addr").is_empty()
            || cfg.settings.get_str("vault_token").is_empty()
        {
            s.push_str("No credentials configured.\n  Option 1 - Local secrets file (simplest):\n    mkosimage --set credential_source=config\n");
            s.push_str(&format!(
                "    cp {} \\\n",
                examples.join("example-secrets").display()
            ));
            s.push_str(&format!("       {}\n", user_dir.join("secrets").display()));
            s.push_str("    Then edit ~/.config/osimager/secrets with your passwords.\n\n  Option 2 - HashiCorp Vault:\n    mkosimage --set vault_addr=http://your-vault:8200\n    mkosimage --set vault_token=your-token\n\n");
            need_docs = true;
        }
    } else if source == "config" && !user_dir.join("secrets").exists() {
        s.push_str("No secrets file found.\n");
        s.push_str(&format!(
            "  cp {} \\\n",
            examples.join("example-secrets").display()
        ));
        s.push_str(&format!("     {}\n", user_dir.join("secrets").display()));
        s.push_str("  Then edit the file with your passwords.\n\n");
        need_docs = true;
    }
    if need_docs {
        s.push_str("  Full documentation: https://sshoecraft.github.io/osimager\n\n");
    }
    if !locations.is_empty() {
        let platforms = cfg.platforms()?;
        if platforms.is_empty() {
            s.push_str(&format!(
                "No platforms found in {}/platforms/ (incomplete install?)\n  Or create your own: {}/platforms/\n",
                cfg.layers.system.display(),
                user_dir.display()
            ));
        } else {
            s.push_str("Available platforms/locations:\n");
            for (pname, _) in &platforms {
                let locs: Vec<&str> = locations
                    .iter()
                    .filter(|(_, l)| {
                        l.get("platforms")
                            .and_then(|p| p.as_array())
                            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(pname)))
                    })
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !locs.is_empty() {
                    s.push_str(&format!("  {pname}: {}\n", locs.join(", ")));
                }
            }
            s.push_str("\nUse --list to see available specs.\n");
        }
    }
    s.push_str("Use --help for all options.\n");
    Ok(s)
}
