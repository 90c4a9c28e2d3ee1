//! Packer engine: BuildPlan → Packer template → `packer build`, the way OSImager's `run_packer`
//! does it (same template bytes, command line, environment and hooks).
//!
//! Steps, in OSImager's order, each reported as a build event: `preflight` (find Packer and
//! refuse keys it is too old for; the CD tool for `cd_files`; `required_files`; the ISO URL and
//! the ISO download directory), `files` (write the spec's rendered files into the temp dir),
//! `pre_build` hooks, `command` (adapt the plan to the Packer found — [`quirks`],
//! docs/COMPAT.md "Packer engine" —, write `<temp>/<name>.json`, build the environment — Ansible
//! defaults, evars, the spec's Ansible venv, Vault — and report the command line),
//! `packer_build` (run it in the data dir; with `-n`, report the environment instead),
//! `post_build` hooks. The temp dir is removed at the end unless kept (`-k`, `-m`), also on
//! failure (unlike OSImager, which left it behind when it exited early). `--dispatcher` lines
//! are a front end of these events (the CLI's).

pub mod command;
pub mod detect;
mod error;
pub mod preflight;
mod process;
pub mod quirks;
pub mod retrofit;
pub mod tempdir;
pub mod template;
pub mod urls;

pub use error::PackerError;
pub use tempdir::BuildTempDir;

use crate::engine::{Build, BuildContext, BuildOptions, Cancel, Events};
use crate::hooks::{run_hooks, HookPhase};
use crate::plan::BuildPlan;
use crate::secret::Secret;
use command::{build_args, command_line, packer_env, EnvInputs};
use detect::{PackerInfo, PackerVersion};
use osimager_events::{BuildEvent, LogSource, Outcome};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the Packer engine needs from the configuration besides the plan (the settings and the
/// data layers), taken from the prepared plan's inputs.
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
    /// From a prepared plan (its settings and data layers) and the options.
    pub fn from_plan(plan: &BuildPlan, opts: &BuildOptions, ctx: &BuildContext) -> PackerContext {
        let inputs = &plan.inputs;
        let token = inputs.setting("vault_token");
        PackerContext {
            packer_cmd: match inputs.setting("packer_cmd") {
                c if c.is_empty() => "packer".into(),
                c => c,
            },
            venv_dir: inputs.venv_dir.clone(),
            user_dir: inputs.user_dir.clone(),
            data_dirs: inputs.data_dirs.clone(),
            vault_addr: inputs.setting("vault_addr"),
            vault_token: (!token.is_empty()).then(|| ctx.secrets.secret(token)),
            settings: inputs.settings.clone(),
            skip: opts.skip,
            verbose: opts.verbose,
        }
    }

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
    /// The reported command line (what OSImager printed).
    pub command: String,
    /// `KEY=value` lines of the environment set for Packer (secrets shown as `***`).
    pub environment: Vec<String>,
    /// Packer found (absent only in a dry run without Packer).
    pub packer: Option<PackerInfo>,
    pub dry_run: bool,
}

/// One Packer build, owned (it runs on a blocking thread).
pub struct PackerJob {
    pub ctx: PackerContext,
    pub plan: BuildPlan,
    pub options: BuildOptions,
    pub context: BuildContext,
    pub events: Events,
    pub cancel: Cancel,
    /// Packer may use the terminal (its own `-debug` / `-on-error=ask` prompts).
    pub interactive: bool,
}

impl PackerJob {
    /// The job for `build`.
    pub fn new(build: &Build) -> PackerJob {
        PackerJob {
            ctx: PackerContext::from_plan(&build.plan, &build.options, &build.context),
            plan: build.plan.clone(),
            options: build.options.clone(),
            context: build.context.clone(),
            events: build.events.clone(),
            cancel: build.cancel.clone(),
            interactive: build.prompter.as_ref().is_some_and(|p| p.terminal()),
        }
    }
}

impl PackerJob {
    /// A job outside a [`Build`] (scripts, tests): this process's context, no cancel request,
    /// not interactive, events to `events`.
    pub fn standalone(
        ctx: PackerContext,
        plan: BuildPlan,
        options: BuildOptions,
        events: Events,
    ) -> PackerJob {
        PackerJob {
            ctx,
            plan,
            options,
            context: BuildContext::from_process(),
            events,
            cancel: Cancel::new(),
            interactive: false,
        }
    }

    /// The same job, for Packer's `null` builder (retrofit): communicator keys only, no files.
    pub fn into_retrofit(mut self) -> Result<PackerJob, PackerError> {
        self.plan = retrofit::retrofit_plan(&self.plan)?;
        self.plan.inputs.files.clear();
        Ok(self)
    }
}

/// [`run`] on a blocking thread (Packer is a child process we wait for).
pub async fn run_build(build: &Build) -> Result<PackerReport, PackerError> {
    let job = PackerJob::new(build);
    tokio::task::spawn_blocking(move || run(&job))
        .await
        .map_err(|e| PackerError::Internal(format!("the Packer engine's thread failed: {e}")))?
}

/// `osimager retrofit --engine packer` / `rfosimage`: provision an existing machine through
/// Packer's null builder (see [`retrofit`](self::retrofit)).
pub async fn run_retrofit(build: &Build) -> Result<PackerReport, PackerError> {
    let job = PackerJob::new(build).into_retrofit()?;
    tokio::task::spawn_blocking(move || run(&job))
        .await
        .map_err(|e| PackerError::Internal(format!("the Packer engine's thread failed: {e}")))?
}

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

/// Reports one step of the Packer engine as events.
struct Steps<'a> {
    events: &'a Events,
}

impl Steps<'_> {
    fn run<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, PackerError>,
    ) -> Result<T, PackerError> {
        let t = Instant::now();
        self.events.emit(BuildEvent::StepStarted {
            step: name.to_string(),
        });
        let r = f();
        self.events.emit(BuildEvent::StepFinished {
            step: name.to_string(),
            outcome: match &r {
                Ok(_) => Outcome::Ok,
                Err(PackerError::Cancelled { .. }) => Outcome::Cancelled,
                Err(_) => Outcome::Failed,
            },
            duration_ms: t.elapsed().as_millis() as u64,
        });
        r
    }
}

/// Run a build through Packer. See the module docs for the steps.
pub fn run(job: &PackerJob) -> Result<PackerReport, PackerError> {
    let temp = match plan_temp_dir(&job.plan, &job.options) {
        Some(p) => BuildTempDir::adopt(p, &job.options),
        None => BuildTempDir::create(&job.options, &job.context.temp_root),
    }
    .map_err(|(path, source)| PackerError::Io {
        what: "cannot create the build temp dir",
        path,
        source,
    })?;
    let r = run_in(job, &temp);
    if r.is_err() && !temp.will_remove() {
        job.events
            .log(format!("temp dir kept: {}", temp.path().display()));
    }
    r
}

fn transcript(events: &Events, line: impl Into<String>) {
    events.log_from(LogSource::Packer, line);
}

fn run_in(job: &PackerJob, temp: &BuildTempDir) -> Result<PackerReport, PackerError> {
    let (ctx, opts, ev) = (&job.ctx, &job.options, &job.events);
    let steps = Steps { events: ev };
    let path_var = job.context.var("PATH").map(std::ffi::OsString::from);
    let data_dir = if job.plan.data_dir.as_os_str().is_empty() {
        job.context.cwd.clone()
    } else {
        job.plan.data_dir.clone()
    };
    let packer = steps.run("preflight", || {
        let packer = match detect::detect(&ctx.packer_cmd, path_var.as_deref()) {
            Ok(info) => Some(info),
            Err(e) if opts.dry_run => {
                ev.warn(format!("(dry run) {e}"));
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(PackerInfo {
            version: Some(v),
            path,
        }) = &packer
        {
            check_version(&job.plan, *v, path, opts.dry_run, ev)?;
        }
        let builder_json = Value::Object(job.plan.builder.clone()).to_string();
        preflight::check_cd_tool(&builder_json, path_var.as_deref())?;
        if ctx.verbose {
            transcript(ev, format!("data dir: {}", data_dir.display()));
        }
        let resolve = |rel: &str| ctx.resolve_data_path(rel);
        let required = preflight::required_files(&job.plan);
        preflight::check_required_files(&required, &ctx.user_dir, &resolve)?;
        if preflight::uses_iso(&builder_json) {
            preflight::check_iso_url(&job.plan)?;
            preflight::check_iso_target(&job.plan.builder)?;
        }
        Ok(packer)
    })?;
    steps.run("files", || {
        job.plan
            .inputs
            .write_files(temp.path())
            .map(|_| ())
            .map_err(|e| PackerError::Generate {
                dir: temp.path().to_path_buf(),
                message: e.to_string(),
            })
    })?;

    let mut plan = job.plan.clone();
    if ctx.skip {
        if ctx.verbose {
            transcript(ev, "Skipping post-install configuration (--skip)");
        }
        plan.provisioners.clear();
    }
    let resolve = |rel: &str| ctx.resolve_data_path(rel);
    let hook_out = |line: &str| transcript(ev, line);
    steps.run("pre_build", || {
        let r = run_hooks(
            HookPhase::PreBuild,
            &mut plan,
            &ctx.settings,
            ctx.verbose,
            &data_dir,
            &resolve,
            &hook_out,
        );
        Ok(r?)
    })?;

    let (template_path, env, args, command) = steps.run("command", || {
        // What this Packer needs to run the target out of the box (docs/COMPAT.md).
        let host = quirks::Host::detect(&plan, !opts.dry_run);
        let adapted = quirks::adapt(&mut plan, packer.as_ref().and_then(|p| p.version), &host);
        for note in &adapted.notes {
            ev.log(note.clone());
        }
        prepare_command(job, &plan, temp, &path_var, adapted.proxy_ssh_rsa)
    })?;
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
        transcript(ev, format!("# working directory: {}", data_dir.display()));
        transcript(ev, "# environment added for packer:");
        for line in &report.environment {
            transcript(ev, format!("#   {line}"));
        }
        if !temp.will_remove() {
            transcript(ev, format!("# template: {}", report.template.display()));
        }
        return Ok(report);
    }

    let packer = packer.expect("packer is detected unless dry run");
    steps.run("packer_build", || {
        let outcome = process::run_packer(&process::Invocation {
            program: &packer.path,
            args: &args,
            cwd: &data_dir,
            env: &env,
            context: &job.context,
            events: ev,
            cancel: &job.cancel,
            interactive: job.interactive,
        })?;
        if job.cancel.is_cancelled() {
            return Err(PackerError::Cancelled {
                reason: job.cancel.reason(),
                code: outcome.code,
            });
        }
        if outcome.code != 0 {
            return Err(PackerError::BuildFailed {
                code: outcome.code,
                version: packer.version,
                unknown_keys: outcome.unknown_keys,
            });
        }
        Ok(())
    })?;
    steps.run("post_build", || {
        Ok(run_hooks(
            HookPhase::PostBuild,
            &mut plan,
            &ctx.settings,
            ctx.verbose,
            &data_dir,
            &resolve,
            &hook_out,
        )?)
    })?;
    report.temp_dir_kept = !temp.will_remove();
    Ok(report)
}

/// Write the template, build Packer's environment and report the command line.
fn prepare_command(
    job: &PackerJob,
    plan: &BuildPlan,
    temp: &BuildTempDir,
    path_var: &Option<std::ffi::OsString>,
    proxy_ssh_rsa: bool,
) -> Result<(PathBuf, command::PackerEnv, Vec<String>, String), PackerError> {
    let (ctx, opts, ev) = (&job.ctx, &job.options, &job.events);
    let file_name = if plan.name.is_empty() {
        match def_str(plan, "name") {
            "" => "build".to_string(),
            n => n.to_string(),
        }
    } else {
        plan.name.clone()
    };
    let template_path = temp.path().join(format!("{file_name}.json"));
    if ctx.verbose {
        transcript(
            ev,
            format!("writing output file: {}", template_path.display()),
        );
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
        Some(def_str(plan, "vault_token"))
            .filter(|t| !t.is_empty())
            .map(|t| job.context.secrets.secret(t))
    });
    let vault_addr = if ctx.vault_addr.is_empty() {
        def_str(plan, "vault_addr").to_string()
    } else {
        ctx.vault_addr.clone()
    };
    let env = packer_env(
        plan,
        opts,
        &EnvInputs {
            venv,
            vault_addr,
            vault_token,
            inherited_path: path_var.clone(),
            proxy_ssh_rsa,
            inherited_ssh_common_args: job
                .context
                .var(command::SSH_COMMON_ARGS_VAR)
                .map(str::to_string),
            inherited_checkpoint_setting: job.context.var("CHECKPOINT_DISABLE").is_some(),
        },
    );
    let args = build_args(opts, &template_path);
    let shown_program = if ctx.packer_cmd.is_empty() {
        "packer"
    } else {
        &ctx.packer_cmd
    };
    let command = command_line(shown_program, &args);
    transcript(ev, command.clone());
    Ok((template_path, env, args, command))
}

/// Refuse (or, in a dry run, warn about) builder keys the detected Packer cannot read.
fn check_version(
    plan: &BuildPlan,
    version: PackerVersion,
    path: &Path,
    dry_run: bool,
    events: &Events,
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
        events.warn(format!("(dry run) {err}"));
        Ok(())
    } else {
        Err(err)
    }
}
