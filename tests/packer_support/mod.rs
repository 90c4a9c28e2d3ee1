//! Shared helpers of the Packer engine tests: a hand-made plan, a context, fake Packer scripts.
#![allow(dead_code)]

use osimager::engine::packer::PackerContext;
use osimager::plan::BuildPlan;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A scratch area: data dir with a playbook, user dir, venv dir, temp dir path.
pub struct Scratch {
    root: PathBuf,
    _guard: Option<tempfile::TempDir>,
}

impl Scratch {
    pub fn new() -> Scratch {
        let guard = tempfile::Builder::new()
            .prefix("pk-test-")
            .tempdir()
            .unwrap();
        let s = Scratch {
            root: guard.path().to_path_buf(),
            _guard: Some(guard),
        };
        std::fs::create_dir_all(s.data()).unwrap();
        std::fs::create_dir_all(s.user().join("files")).unwrap();
        std::fs::write(s.data().join("config.yml"), "- hosts: all\n  tasks: []\n").unwrap();
        std::fs::write(s.iso(), "not really an ISO").unwrap();
        s
    }
    /// A scratch made by another process (not removed by this one).
    pub fn open(root: &Path) -> Scratch {
        Scratch {
            root: root.to_path_buf(),
            _guard: None,
        }
    }
    pub fn path(&self) -> &Path {
        &self.root
    }
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }
    pub fn user(&self) -> PathBuf {
        self.path().join("user")
    }
    pub fn venvs(&self) -> PathBuf {
        self.path().join("venvs")
    }
    pub fn iso(&self) -> PathBuf {
        self.path().join("testos.iso")
    }
    pub fn iso_url(&self) -> String {
        format!("file://{}", self.iso().display())
    }
    pub fn temp(&self) -> PathBuf {
        self.path().join("build-tmp")
    }
    pub fn ctx(&self) -> PackerContext {
        PackerContext {
            packer_cmd: "packer".into(),
            venv_dir: self.venvs(),
            user_dir: self.user(),
            data_dirs: vec![self.data()],
            ..Default::default()
        }
    }
    /// A fake venv `<venvs>/<ver>` with a `bin/activate`.
    pub fn fake_venv(&self, ver: &str) -> PathBuf {
        let v = self.venvs().join(ver);
        std::fs::create_dir_all(v.join("bin")).unwrap();
        std::fs::write(v.join("bin/activate"), "# fake\n").unwrap();
        v
    }
    /// An executable shell script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    /// A fake Packer that records argv, cwd and environment into `<root>/packer-called.txt`
    /// and exits with `code`.
    pub fn fake_packer(&self, code: i32) -> PathBuf {
        let out = self.path().join("packer-called.txt");
        self.script(
            "fake-packer",
            &format!(
                "if [ \"$1\" = version ]; then echo 'Packer v1.6.6'; exit 0; fi\n\
                 {{ echo \"ARGS=$*\"; echo \"CWD=$(pwd)\"; env; }} > '{}'\nexit {code}",
                out.display()
            ),
        )
    }
    pub fn packer_called(&self) -> String {
        std::fs::read_to_string(self.path().join("packer-called.txt")).unwrap_or_default()
    }
}

/// A qemu plan Packer 1.6.6 accepts (an ISO that does not exist: only validate/prepare run).
pub fn qemu_plan(s: &Scratch) -> BuildPlan {
    let mut plan = BuildPlan {
        target: "qemu/lab/testos-1-x86_64".into(),
        platform: "qemu".into(),
        location: "lab".into(),
        spec: "testos-1-x86_64".into(),
        name: "pkvm".into(),
        fqdn: "pkvm.example.test".into(),
        ip: String::new(),
        data_dir: s.data(),
        ..Default::default()
    };
    let obj = |v: Value| v.as_object().unwrap().clone();
    plan.defs = obj(json!({
        "spec_name": "testos-1-x86_64", "name": "pkvm",
        "temp_dir": s.temp().display().to_string(), "tmpdir": s.temp().display().to_string(),
        "iso_url": s.iso_url()
    }));
    plan.variables = obj(json!({
        "platform-name": "qemu", "location-name": "lab", "spec-name": "testos-1-x86_64",
        "spec-config": "tasks/spec.yml", "name": "pkvm", "fqdn": "pkvm.example.test"
    }));
    plan.builder = obj(json!({
        "type": "qemu", "name": "testos-1-x86_64",
        "iso_url": s.iso_url(), "iso_checksum": "none",
        "output_directory": s.path().join("out").display().to_string(),
        "vm_name": "pkvm", "disk_size": "1024M", "format": "qcow2", "accelerator": "tcg",
        "headless": true, "memory": 256, "cpus": 1,
        "http_directory": s.temp().display().to_string(),
        "boot_wait": "1s", "boot_command": ["<enter><wait>", "linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "communicator": "ssh", "ssh_username": "root", "ssh_password": "secret-pw-123",
        "ssh_timeout": "5m", "shutdown_command": "poweroff"
    }));
    plan.provisioners = vec![json!({
        "type": "ansible",
        "playbook_file": "config.yml",
        "extra_arguments": ["--extra-vars",
            "platform={{user `platform-name`}} location_name={{user `location-name`}} spec_name={{user `spec-name`}} spec_config={{user `spec-config`}} install_dir=\"/x\""]
    })];
    plan.evars = obj(json!({"RES_OPTIONS": "nameserver 10.0.2.3", "MY_VAR": "é-value"}));
    plan
}

/// `packer validate TEMPLATE` in `dir`; (success, combined output).
pub fn packer_validate(template: &Path, dir: &Path) -> (bool, String) {
    let out = std::process::Command::new("packer")
        .arg("validate")
        .arg(template)
        .current_dir(dir)
        .env("PATH", super::support::path_with_tools())
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("packer runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The Packer engine on a hand-made context (events discarded).
pub fn run(
    ctx: &PackerContext,
    plan: &BuildPlan,
    opts: &osimager::engine::BuildOptions,
) -> Result<osimager::engine::packer::PackerReport, osimager::engine::packer::PackerError> {
    run_with_events(ctx, plan, opts, osimager::engine::Events::discard())
}

/// The Packer engine on a hand-made context, reporting to `events`.
pub fn run_with_events(
    ctx: &PackerContext,
    plan: &BuildPlan,
    opts: &osimager::engine::BuildOptions,
    events: osimager::engine::Events,
) -> Result<osimager::engine::packer::PackerReport, osimager::engine::packer::PackerError> {
    osimager::engine::packer::run(&osimager::engine::packer::PackerJob::standalone(
        ctx.clone(),
        plan.clone(),
        opts.clone(),
        events,
    ))
}

/// Retrofit through Packer's null builder on a hand-made context.
pub fn retrofit(
    ctx: &PackerContext,
    plan: &BuildPlan,
    opts: &osimager::engine::BuildOptions,
) -> Result<osimager::engine::packer::PackerReport, osimager::engine::packer::PackerError> {
    let job = osimager::engine::packer::PackerJob::standalone(
        ctx.clone(),
        plan.clone(),
        opts.clone(),
        osimager::engine::Events::discard(),
    )
    .into_retrofit()?;
    osimager::engine::packer::run(&job)
}

/// A build through Packer of a plan resolved with `config` (prepared here), as the CLI does.
pub fn build_with_config(
    config: &osimager::config::Config,
    plan: &BuildPlan,
    opts: &osimager::engine::BuildOptions,
    retrofit_only: bool,
) -> Result<osimager::engine::packer::PackerReport, osimager::engine::packer::PackerError> {
    build_with_sink(config, plan, opts, retrofit_only, None)
}

/// [`build_with_config`], the event stream also delivered to `sink` (e.g. a `MemorySink` the
/// test searches afterwards).
pub fn build_with_sink(
    config: &osimager::config::Config,
    plan: &BuildPlan,
    opts: &osimager::engine::BuildOptions,
    retrofit_only: bool,
    sink: Option<std::sync::Arc<osimager_events::MemorySink>>,
) -> Result<osimager::engine::packer::PackerReport, osimager::engine::packer::PackerError> {
    let mut plan = plan.clone();
    config.prepare(&mut plan).expect("plan prepares");
    let context = osimager::engine::BuildContext::from_process();
    let ctx = PackerContext::from_plan(&plan, opts, &context);
    // The CLI's terminal renderer: Packer's transcript and the steps land in the test's
    // output (shown when it fails).
    let events = osimager::engine::Events::discard();
    events.attach(
        std::sync::Arc::new(osimager::cli::sinks::Terminal::new(false, false, false)),
        false,
    );
    if let Some(sink) = sink {
        events.attach(sink, false);
    }
    let job = osimager::engine::packer::PackerJob::standalone(ctx, plan, opts.clone(), events);
    let job = if retrofit_only {
        job.into_retrofit()?
    } else {
        job
    };
    osimager::engine::packer::run(&job)
}

/// Fill the plan's inputs (what `Config::prepare` would) from a hand-made context, so the plan
/// can go through `osimager::engine::run` like a resolved one.
pub fn set_inputs(plan: &mut BuildPlan, ctx: &PackerContext) {
    plan.inputs.user_dir = ctx.user_dir.clone();
    plan.inputs.data_dirs = ctx.data_dirs.clone();
    plan.inputs.settings = ctx.settings.clone();
    plan.inputs
        .settings
        .insert("packer_cmd".into(), Value::String(ctx.packer_cmd.clone()));
    plan.inputs.venv_dir = ctx.venv_dir.clone();
}
