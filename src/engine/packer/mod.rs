//! Packer engine: BuildPlan → Packer template → `packer build`, the way OSImager's `run_packer`
//! does it (same template bytes, command line, environment, hooks and dispatcher lines).
//!
//! Steps, in OSImager's order: find Packer (and refuse keys it is too old for); check the CD tool
//! for `cd_files`; check `required_files` (`PROGRESS=5`); check the ISO URL; generate the spec's
//! files into the temp dir (`PROGRESS=10`); run `pre_build` hooks; adapt the plan to the Packer
//! found ([`quirks`]: docs/COMPAT.md "Packer engine"); write `<temp>/<name>.json`;
//! build the environment (Ansible defaults, evars, the spec's Ansible venv, Vault); print the
//! command (`PROGRESS=15`); run it in the data dir (or, with `-n`, print the environment);
//! `RESULT=`/`ERROR=`; `post_build` hooks on success; remove the temp dir unless `-k`/`-m`
//! (also on failure, unlike OSImager, which left it behind when it exited early).

pub mod command;
pub mod detect;
pub mod dispatcher;
mod error;
pub mod glue;
pub mod preflight;
mod process;
pub mod quirks;
pub mod retrofit;
pub mod tempdir;
pub mod template;
pub mod urls;

pub use error::PackerError;
pub use glue::{build, build_with, retrofit_with, PackerFlags};
pub use tempdir::BuildTempDir;

use crate::engine::BuildOptions;
use crate::hooks::{run_hooks, HookPhase};
use crate::plan::BuildPlan;
use crate::secret::Secret;
use command::{build_args, command_line, packer_env, EnvInputs};
use detect::{PackerInfo, PackerVersion};
use dispatcher::Dispatcher;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What the Packer engine needs from the configuration besides the plan (the settings and the
/// data layers). `from_config` fills it from `crate::config::Config`.
#[derive(Debug, Clone, Default)]
pub struct PackerContext {
    /// Setting `packer_cmd` (a name looked up in PATH, or a path).
    pub packer_cmd: String,
    /// Setting `venv_dir`: Ansible venvs live in `<venv_dir>/<ansible_version>`.
    pub venv_dir: PathBuf,
    /// The user layer (`~/.config/osimager`): searched first for files and hook scripts.
    pub user_dir: PathBuf,
    /// Bundled data trees searched after the user layer (normally `[plan.data_dir]`).
    pub data_dirs: Vec<PathBuf>,
    pub vault_addr: String,
    pub vault_token: Option<Secret>,
    /// All settings (given to hooks as `imager.settings`).
    pub settings: Map<String, Value>,
    /// `--skip`: no provisioners, no venv.
    pub skip: bool,
    pub verbose: bool,
}

impl PackerContext {
    /// OSImager's `resolve_data_path`: `<user_dir>/<rel>` if it exists, else the first data dir
    /// that has it.
    pub fn resolve_data_path(&self, rel: &str) -> Option<PathBuf> {
        std::iter::once(&self.user_dir)
            .chain(self.data_dirs.iter())
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(rel))
            .find(|p| p.exists())
    }
}

/// What a Packer run did.
#[derive(Debug, Clone)]
pub struct PackerReport {
    /// The template written (`<temp>/<name>.json`; gone afterwards unless the temp dir was kept).
    pub template: PathBuf,
    pub temp_dir: PathBuf,
    pub temp_dir_kept: bool,
    /// The printed command line (what OSImager printed).
    pub command: String,
    /// `KEY=value` lines of the environment set for Packer (secrets shown as `***`).
    pub environment: Vec<String>,
    /// Packer found (absent only in a dry run without Packer).
    pub packer: Option<PackerInfo>,
    pub dry_run: bool,
}

/// Generates the spec's `files` into a directory (the configuration's `files::generate`).
pub type FileGenerator<'a> = &'a dyn Fn(&Path) -> anyhow::Result<Vec<PathBuf>>;

fn def_str<'a>(plan: &'a BuildPlan, key: &str) -> &'a str {
    plan.defs.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The temp dir a plan was resolved with (`defs.temp_dir`), else `-m`.
fn plan_temp_dir(plan: &BuildPlan, opts: &BuildOptions) -> Option<PathBuf> {
    ["temp_dir", "tmpdir"]
        .iter()
        .map(|k| def_str(plan, k))
        .find(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| opts.temp_dir.clone())
}

/// Run a build through Packer. See the module docs for the steps.
pub fn run(
    ctx: &PackerContext,
    plan: &BuildPlan,
    opts: &BuildOptions,
    generate: FileGenerator<'_>,
) -> Result<PackerReport, PackerError> {
    let spec = match def_str(plan, "spec_name") {
        "" => plan.spec.clone(),
        s => s.to_string(),
    };
    let name = match def_str(plan, "name") {
        "" => plan.name.clone(),
        s => s.to_string(),
    };
    let disp = Dispatcher {
        enabled: opts.dispatcher,
        spec,
        name,
    };
    let temp = match plan_temp_dir(plan, opts) {
        Some(p) => BuildTempDir::adopt(p, opts),
        None => BuildTempDir::create(opts),
    }
    .map_err(|(path, source)| PackerError::Io {
        what: "cannot create the build temp dir",
        path,
        source,
    });
    let result = temp.and_then(|temp| {
        let r = run_in(ctx, plan, opts, generate, &temp, &disp);
        if r.is_err() && !temp.will_remove() {
            eprintln!("temp dir kept: {}", temp.path().display());
        }
        r
    });
    if let Err(e) = &result {
        if !matches!(e, PackerError::BuildFailed { .. }) {
            disp.failed(&crate::secret::redact(&e.to_string()));
        }
    }
    result
}

fn run_in(
    ctx: &PackerContext,
    plan: &BuildPlan,
    opts: &BuildOptions,
    generate: FileGenerator<'_>,
    temp: &BuildTempDir,
    disp: &Dispatcher,
) -> Result<PackerReport, PackerError> {
    let path_var = std::env::var_os("PATH");
    let packer = match detect::detect(&ctx.packer_cmd, path_var.as_deref()) {
        Ok(info) => Some(info),
        Err(e) if opts.dry_run => {
            eprintln!("warning (dry run): {e}");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(PackerInfo {
        version: Some(v),
        path,
    }) = &packer
    {
        check_version(plan, *v, path, opts.dry_run)?;
    }
    let builder_json = Value::Object(plan.builder.clone()).to_string();
    preflight::check_cd_tool(&builder_json, path_var.as_deref())?;

    let data_dir = if plan.data_dir.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        plan.data_dir.clone()
    };
    if ctx.verbose {
        println!("data dir: {}", data_dir.display());
    }
    let resolve = |rel: &str| ctx.resolve_data_path(rel);
    let required = preflight::required_files(plan);
    preflight::check_required_files(&required, &ctx.user_dir, &resolve)?;
    disp.progress(5);

    if preflight::uses_iso(&builder_json) {
        preflight::check_iso_url(plan)?;
        preflight::check_iso_target(&plan.builder)?;
    }

    generate(temp.path()).map_err(|e| PackerError::Generate {
        dir: temp.path().to_path_buf(),
        message: format!("{e:#}"),
    })?;
    disp.progress(10);

    let mut plan = plan.clone();
    if ctx.skip {
        if ctx.verbose {
            println!("Skipping post-install configuration (--skip)");
        }
        plan.provisioners.clear();
    }
    run_hooks(
        HookPhase::PreBuild,
        &mut plan,
        &ctx.settings,
        ctx.verbose,
        &data_dir,
        &resolve,
    )?;

    // What this Packer needs to run the target out of the box (docs/COMPAT.md).
    let host = quirks::Host::detect(&plan, !opts.dry_run);
    let adapted = quirks::adapt(&mut plan, packer.as_ref().and_then(|p| p.version), &host);
    for note in &adapted.notes {
        eprintln!("{}", crate::secret::redact(note));
    }

    let file_name = if plan.name.is_empty() {
        match def_str(&plan, "name") {
            "" => "build".to_string(),
            n => n.to_string(),
        }
    } else {
        plan.name.clone()
    };
    let template_path = temp.path().join(format!("{file_name}.json"));
    if ctx.verbose {
        println!("writing output file: {}", template_path.display());
    }
    template::write_template(&template_path, &plan.packer_template()).map_err(|source| {
        PackerError::Io {
            what: "cannot write the Packer template",
            path: template_path.clone(),
            source,
        }
    })?;

    let venv = match plan.venv.as_deref().filter(|v| !v.is_empty() && !ctx.skip) {
        Some(ver) => {
            let dir = ctx.venv_dir.join(ver);
            if !dir.join("bin/activate").is_file() {
                return Err(PackerError::VenvMissing {
                    version: ver.to_string(),
                    path: dir,
                });
            }
            Some(dir)
        }
        None => None,
    };
    let vault_token = ctx.vault_token.clone().or_else(|| {
        Some(def_str(&plan, "vault_token"))
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    });
    let vault_addr = if ctx.vault_addr.is_empty() {
        def_str(&plan, "vault_addr").to_string()
    } else {
        ctx.vault_addr.clone()
    };
    let env = packer_env(
        &plan,
        opts,
        &EnvInputs {
            venv,
            vault_addr,
            vault_token,
            inherited_path: path_var.clone(),
            proxy_ssh_rsa: adapted.proxy_ssh_rsa,
            inherited_ssh_common_args: std::env::var(command::SSH_COMMON_ARGS_VAR).ok(),
        },
    );
    let args = build_args(opts, &template_path);
    let shown_program = if ctx.packer_cmd.is_empty() {
        "packer"
    } else {
        &ctx.packer_cmd
    };
    let command = command_line(shown_program, &args);
    println!("{command}");
    disp.progress(15);

    let mut report = PackerReport {
        template: template_path,
        temp_dir: temp.path().to_path_buf(),
        temp_dir_kept: !temp.will_remove(),
        command,
        environment: env.shown_lines(),
        packer: packer.clone(),
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        println!("# working directory: {}", data_dir.display());
        println!("# environment added for packer:");
        for line in &report.environment {
            println!("#   {line}");
        }
        if !temp.will_remove() {
            println!("# template: {}", report.template.display());
        }
        return Ok(report);
    }

    let packer = packer.expect("packer is detected unless dry run");
    let outcome = process::run_packer(&packer.path, &args, &data_dir, &env)?;
    if outcome.code != 0 {
        disp.packer_failed(outcome.code);
        return Err(PackerError::BuildFailed {
            code: outcome.code,
            version: packer.version,
            unknown_keys: outcome.unknown_keys,
        });
    }
    disp.success();
    run_hooks(
        HookPhase::PostBuild,
        &mut plan,
        &ctx.settings,
        ctx.verbose,
        &data_dir,
        &resolve,
    )?;
    report.temp_dir_kept = !temp.will_remove();
    Ok(report)
}

/// Refuse (or, in a dry run, warn about) builder keys the detected Packer cannot read.
fn check_version(
    plan: &BuildPlan,
    version: PackerVersion,
    path: &Path,
    dry_run: bool,
) -> Result<(), PackerError> {
    let keys = detect::unsupported_keys(&plan.builder, version);
    if keys.is_empty() {
        return Ok(());
    }
    let err = PackerError::PackerTooOld {
        version,
        path: path.to_path_buf(),
        builder: plan.builder_type().to_string(),
        keys,
    };
    if dry_run {
        eprintln!("warning (dry run): {err}");
        Ok(())
    } else {
        Err(err)
    }
}
