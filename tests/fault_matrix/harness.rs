//! The fault matrix's harness: every build runs in a child process (this test binary
//! re-executed on the `child_build` helper, which builds through the CLI's own path,
//! `osimager::cli::run::build_in`: signal handling, terminal renderer, exit status), so that
//! exit statuses and leftovers (processes, temp dirs, outputs, state files) are real and
//! checked from outside. What the child builds is a [`Spec`] written to a file.

use crate::support;
use crate::support::process::{assert_nothing_left, entries, helper_command, Spawned};
use osimager::engine::{BuildContext, BuildOptions};
use osimager::install_cache::{CacheMode, CacheOptions};
use osimager::plan::{BuildPlan, RenderedFile};
use osimager_drivers::fake::{registry_entry, FakeControl};
use osimager_drivers::{DriverRegistry, SshAddress};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a child builds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spec {
    /// `fake`: the FAKE driver (`osimager_drivers::fake`) registered for builder type
    /// `fake-iso`; `builtin`: the real drivers (QEMU).
    pub driver: String,
    #[serde(default)]
    pub fake: FakeKnobs,
    /// The builder block (ignored for `testos`, whose plan is resolved).
    #[serde(default)]
    pub builder: Map<String, Value>,
    /// Rendered answer files (`dest`, `content`).
    #[serde(default)]
    pub files: Vec<(String, String)>,
    /// `Some`: the plan's provisioners are replaced.
    #[serde(default)]
    pub provisioners: Option<Vec<Value>>,
    /// Resolve the hermetic test OS target (tests/testos) with this name, then apply
    /// `builder_overrides` (null removes a key).
    #[serde(default)]
    pub testos: Option<String>,
    #[serde(default)]
    pub builder_overrides: Map<String, Value>,
    /// Every ansible provisioner runs this playbook instead (with `timeout` if given).
    #[serde(default)]
    pub playbook: Option<PathBuf>,
    #[serde(default)]
    pub provisioner_timeout: Option<String>,
    #[serde(default)]
    pub output_dir: Option<PathBuf>,
    /// `--cache use` with this cache directory.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FakeKnobs {
    #[serde(default)]
    pub image_size: u64,
    #[serde(default)]
    pub spawn_process: bool,
    #[serde(default)]
    pub disk_state: bool,
    /// The guest's SSH address the FAKE driver reports (127.0.0.1:PORT).
    #[serde(default)]
    pub ssh_port: Option<u16>,
}

/// The body of the `child_build` helper: build what `FAULT_SPEC` names, print `BUILD-OK` or
/// `BUILD-ERROR <message>`, exit with the CLI's status.
pub fn child_main() {
    let spec_file = std::env::var_os("FAULT_SPEC").expect("run by the fault matrix (FAULT_SPEC)");
    let spec: Spec = serde_json::from_slice(&std::fs::read(&spec_file).unwrap()).unwrap();
    let mut context = BuildContext::from_process();
    let mut temp_dir = None;
    let mut plan = match &spec.testos {
        Some(name) => {
            let (plan, temp) = testos_plan(name, &spec);
            temp_dir = Some(temp);
            plan
        }
        None => {
            let mut p = BuildPlan {
                target: "fault/matrix/cell".into(),
                name: "cell".into(),
                builder: spec.builder.clone(),
                // Where relative paths resolve and local provisioners run (the data tree).
                data_dir: PathBuf::from(std::env::var_os("FAULT_SCRATCH").unwrap()),
                ..BuildPlan::default()
            };
            p.inputs.files = spec
                .files
                .iter()
                .map(|(dest, content)| RenderedFile {
                    dest: dest.clone(),
                    content: content.clone(),
                })
                .collect();
            p.inputs.iso_cache_dir = PathBuf::from(std::env::var("FAULT_ISO_CACHE").unwrap());
            p
        }
    };
    if let Some(p) = &spec.provisioners {
        plan.provisioners = p.clone();
    }
    if let Some(pb) = &spec.playbook {
        for e in plan
            .provisioners
            .iter_mut()
            .filter(|e| e["type"] == "ansible")
        {
            e["playbook_file"] = json!(pb);
            if let Some(t) = &spec.provisioner_timeout {
                e["timeout"] = json!(t);
            }
        }
    }
    if spec.driver == "fake" {
        let control = FakeControl {
            image_size: spec.fake.image_size,
            spawn_process: spec.fake.spawn_process,
            disk_state: spec.fake.disk_state,
            ssh: spec.fake.ssh_port.map(|port| SshAddress {
                host: "127.0.0.1".into(),
                port,
            }),
            ..FakeControl::default()
        };
        context.drivers = DriverRegistry::default().register(registry_entry("fake-iso", control));
    }
    let opts = BuildOptions {
        output_dir: spec.output_dir.clone(),
        temp_dir,
        force: true,
        cache: match &spec.cache_dir {
            Some(d) => CacheOptions {
                mode: CacheMode::Use,
                dir: Some(d.clone()),
                max_size: None,
            },
            None => CacheOptions::default(),
        },
        ..BuildOptions::default()
    };
    let fe = osimager::cli::run::Frontends::default();
    let code = match osimager::cli::run::build_in(context, plan, opts, &fe, false) {
        Ok(()) => {
            println!("BUILD-OK");
            0
        }
        Err(e) => {
            eprintln!("BUILD-ERROR {}", e.message());
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// The test OS target's plan (tests/testos), as the CLI resolves it, with the spec's
/// builder overrides, and the temp dir it was resolved in (the build's temp dir, `-m`, as the
/// CLI does).
fn testos_plan(name: &str, spec: &Spec) -> (BuildPlan, PathBuf) {
    use osimager::config::{Config, ConfigOptions, ResolveRequest};
    let scratch = PathBuf::from(std::env::var_os("FAULT_SCRATCH").unwrap());
    let config = Config::load(&ConfigOptions {
        data_dir: Some(support::repo()),
        ..Default::default()
    })
    .expect("the test config loads");
    let temp = tempfile::Builder::new()
        .prefix("resolve-")
        .tempdir_in(scratch.join("tmp"))
        .unwrap()
        .keep();
    let mut plan = config
        .resolve(&ResolveRequest {
            target: "qemu/hermetic/testos-1-x86_64".into(),
            name: Some(name.into()),
            ip: Some(String::new()),
            defines: vec![format!("vms_path={}", scratch.join("vms").display())],
            temp_dir: temp.clone(),
            ..Default::default()
        })
        .expect("testos resolves");
    for (k, v) in &spec.builder_overrides {
        match v {
            Value::Null => {
                plan.builder.remove(k);
            }
            v => {
                plan.builder.insert(k.clone(), v.clone());
            }
        }
    }
    config.prepare(&mut plan).expect("the plan prepares");
    (plan, temp)
}

/// A scratch directory per cell: `tmp/` (TMPDIR of the child), `state/` (XDG_STATE_HOME:
/// build state files), `iso/` (ISO cache), `out/` (outputs).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    n: std::cell::Cell<u32>,
}

/// The test binary's own processes name the scratch dir only in their environment or
/// argv of the helper: exclude them from the leftover checks.
pub const OURS: &[&str] = &["child_build", "fault_matrix"];

/// How a child build ended.
pub struct Ended {
    pub code: i32,
    pub text: String,
    pub secs: f64,
}

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("fault-{what}-"))
            .tempdir()
            .unwrap();
        for d in ["tmp", "state", "iso", "out"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Scratch {
            dir,
            n: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("out/cell")
    }

    /// Start a child build of `spec`.
    pub fn spawn(&self, spec: &Spec) -> Spawned {
        self.n.set(self.n.get() + 1);
        let f = self.path().join(format!("spec-{}.json", self.n.get()));
        std::fs::write(&f, serde_json::to_vec_pretty(spec).unwrap()).unwrap();
        let s = self.path();
        let mut c = helper_command("child_build");
        c.env("FAULT_SPEC", &f)
            .env("FAULT_SCRATCH", s)
            .env("FAULT_ISO_CACHE", s.join("iso"))
            .env("TMPDIR", s.join("tmp"))
            .env("XDG_STATE_HOME", s.join("state"))
            .env(
                "XDG_CONFIG_HOME",
                support::repo().join("tests/testos/config"),
            )
            .env("XDG_DATA_HOME", s.join("data"))
            .env("XDG_CACHE_HOME", s.join("xdgcache"))
            .env("OSIMAGER_TESTOS_CACHE", support::media_cache());
        if std::env::var_os("OSIMAGER_TOOLS_VENV").is_some() {
            c.env("PATH", support::path_with_tools());
        }
        Spawned::start(c)
    }

    /// Build `spec` in a child and wait (at most `limit`) for it to exit.
    pub fn run(&self, spec: &Spec, limit: Duration) -> Ended {
        Ended::wait(self.spawn(spec), limit)
    }
}

impl Ended {
    /// Wait (at most `limit`) for `child` to exit; `secs` counts from now.
    pub fn wait(mut child: Spawned, limit: Duration) -> Ended {
        let t = Instant::now();
        let (code, _) = child.exit_and_output(limit);
        Ended {
            code,
            text: child.seen.join("\n"),
            secs: t.elapsed().as_secs_f64(),
        }
    }

    /// The build failed in `step` with exit status 1, saying each of `needles`.
    pub fn assert_failed(&self, step: &str, needles: &[&str]) {
        assert_eq!(self.code, 1, "exit status\n{}", self.text);
        let err = self
            .text
            .lines()
            .find(|l| l.starts_with("BUILD-ERROR"))
            .unwrap_or_else(|| panic!("no error line:\n{}", self.text));
        assert!(
            err.contains(&format!("build failed in step \"{step}\"")),
            "wrong step (want {step}): {err}"
        );
        for n in needles {
            assert!(err.contains(n), "the message should say {n:?}: {err}");
        }
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.code, 0, "the build should succeed:\n{}", self.text);
        assert!(self.text.contains("BUILD-OK"), "{}", self.text);
    }
}

/// Nothing left after a failed build: no temp dir, no process naming the scratch dir, no
/// build state file, the output directory absent and no staging directory beside it.
/// SIGKILL the VM process of the build in `s`: the process of this build whose command line
/// contains `marker` (`qemu-system` for real QEMU, `fake-vm` for the FAKE driver's stand-in).
pub fn kill_vm_process(s: &Scratch, marker: &str) {
    let dir = s.path().display().to_string();
    let mut found = Vec::new();
    assert!(
        support::process::eventually(Duration::from_secs(30), || {
            found = support::process::processes_mentioning(&dir, OURS)
                .into_iter()
                .filter(|p| p.contains(marker))
                .collect();
            !found.is_empty()
        }),
        "the VM process ({marker}) should be running"
    );
    for p in &found {
        let pid: i32 = p.split(':').next().unwrap().parse().unwrap();
        // SAFETY: kill(2) on a process of this test's own build.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

pub fn assert_clean(s: &Scratch, out: &Path, what: &str) {
    assert_nothing_left(s.path(), &[out], OURS, what);
    let state = entries(&s.path().join("state/osimager/builds"));
    assert!(
        state.is_empty(),
        "{what}: build state files left: {state:?}"
    );
    if let Some(parent) = out.parent() {
        let name = out.file_name().unwrap().to_string_lossy().into_owned();
        let staging: Vec<_> = entries(parent)
            .into_iter()
            .filter(|p| {
                let f = p.file_name().unwrap().to_string_lossy().into_owned();
                f.starts_with(&format!(".{name}.partial"))
            })
            .collect();
        assert!(
            staging.is_empty(),
            "{what}: half-written output: {staging:?}"
        );
    }
}

/// The output directory is complete: every file `SHA256SUMS` lists is there with that
/// digest, and the manifest beside it lists the same files.
pub fn assert_complete(out: &Path) {
    let sums = std::fs::read_to_string(out.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("{}: no SHA256SUMS: {e}", out.display()));
    let mut listed = Vec::new();
    for line in sums.lines() {
        let (hex, name) = line.split_once("  ").expect("sha256sum format");
        let data = std::fs::read(out.join(name)).unwrap();
        assert_eq!(hex, hex::encode(sha2::Sha256::digest(&data)), "{name}");
        listed.push(out.join(name).display().to_string());
    }
    assert!(!listed.is_empty());
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(out.parent().unwrap().join("packer-manifest.json")).unwrap(),
    )
    .unwrap();
    let last = manifest["builds"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let files: Vec<String> = last["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, listed, "manifest vs SHA256SUMS");
}

/// A FAKE-driver builder (`fake-iso`): no communicator unless `ssh`.
pub fn fake_builder(out: &Path, extra: Value) -> Map<String, Value> {
    let mut b = json!({
        "type": "fake-iso",
        "vm_name": "cell",
        "output_directory": out.display().to_string(),
        "boot_wait": "0s",
        "boot_command": ["<esc>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "http_content": {"/ks.cfg": "rootpw fault-secret-pw\n"},
        "communicator": "none",
        "shutdown_timeout": "5s",
    })
    .as_object()
    .unwrap()
    .clone();
    b.extend(extra.as_object().unwrap().clone());
    b
}

/// A real-QEMU builder that boots a blank "ISO" (the VM sits in the BIOS): for faults that
/// strike before or just after the VM starts.
pub fn qemu_builder(s: &Scratch, extra: Value) -> Map<String, Value> {
    let iso = s.path().join("blank.iso");
    let data = vec![0u8; 1 << 20];
    std::fs::write(&iso, &data).unwrap();
    let mut b = json!({
        "type": "qemu",
        "vm_name": "cell",
        "output_directory": s.out().display().to_string(),
        "iso_url": iso.display().to_string(),
        "iso_checksum": format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data))),
        "accelerator": "tcg",
        "memory": 128,
        "disk_size": "64M",
        "format": "qcow2",
        "headless": true,
        "http_content": {"/ks.cfg": "rootpw fault-secret-pw\n"},
        "boot_wait": "60s",
        "boot_command": ["<esc>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "communicator": "ssh",
        "ssh_username": "root",
        "ssh_password": "fault-secret-pw",
        "ssh_timeout": "5m",
        "shutdown_timeout": "10s",
    })
    .as_object()
    .unwrap()
    .clone();
    b.extend(extra.as_object().unwrap().clone());
    b
}

/// A tmpfs of `size` mounted by the test on `dir` (we run as root), unmounted on drop.
/// `None` (the caller skips) when mounting is refused.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .ok()?;
        st.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// Deterministic non-trivial bytes (an "ISO").
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}
