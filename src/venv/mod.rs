//! Ansible venvs (`osimager venv`, compatibility entry point `mkvenv`): OSImager keeps one venv
//! per Ansible line in `<venv_dir>/<version>` (setting `venv_dir`, default
//! `~/.local/share/osimager/venvs`), because old guests need old Ansible and old Ansible needs old
//! Python. `ansible.json` says which Python range and package each line needs; specs name the line
//! with `ansible_version`, and the Packer engine activates that venv for the build.
//!
//! * no arguments: list the versions the specs require and whether each venv exists;
//! * `VERSION`: create that venv; `--all`: create every missing required venv.
//!
//! Creating runs `PYTHON -m venv DIR` (Python 2: `-m virtualenv`), then `DIR/bin/pip install` each
//! `requirements` entry and finally `PKG==VERSION.*`; a failed install removes the venv.

pub mod defs;
pub mod python;

pub use defs::AnsibleVersion;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where venvs live and where `ansible.json` and specs are looked up.
#[derive(Debug, Clone, Default)]
pub struct VenvContext {
    /// Setting `venv_dir`.
    pub venv_dir: PathBuf,
    /// Data layers, user dir first, then the bundled data tree.
    pub layers: Vec<PathBuf>,
    /// PATH to search for Python (None: the process PATH).
    pub path_var: Option<OsString>,
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct VenvRequest {
    /// Create the venv for this Ansible version (e.g. `2.16`).
    pub version: Option<String>,
    /// Create every missing venv the specs require.
    pub all: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error("ansible.json not found\n  Expected {}", .searched.iter().map(|p| p.join("ansible.json").display().to_string()).collect::<Vec<_>>().join(" or "))]
    NoAnsibleJson { searched: Vec<PathBuf> },
    #[error("{0}")]
    BadAnsibleJson(String),
    #[error("ansible {version} not defined in ansible.json\n  Known versions: {known}")]
    UnknownVersion { version: String, known: String },
    #[error("no Python {requirement} found for ansible {version}\n  Install a compatible Python version and ensure it is in your PATH")]
    NoPython {
        version: String,
        requirement: String,
    },
    #[error("failed to create venv at {path}{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(), path = .path.display())]
    CreateFailed {
        path: PathBuf,
        detail: Option<String>,
    },
    #[error("failed to install {what} into {path}", path = .path.display())]
    InstallFailed { what: String, path: PathBuf },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// One required venv and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct VenvStatus {
    pub version: String,
    pub path: PathBuf,
    pub installed: bool,
    pub definition: Option<AnsibleVersion>,
    /// The interpreter that would be used (when not installed and defined).
    pub python: Option<PathBuf>,
}

impl VenvStatus {
    /// OSImager's status column.
    pub fn describe(&self) -> String {
        if self.installed {
            return "installed".into();
        }
        match (&self.definition, &self.python) {
            (None, _) => format!(
                "missing (ansible {} not defined in ansible.json)",
                self.version
            ),
            (Some(d), Some(py)) => format!("missing ({}, python: {})", d.pkg, py.display()),
            (Some(d), None) => format!(
                "missing ({}, requires python {} - NOT FOUND)",
                d.pkg,
                d.python_requirement()
            ),
        }
    }
}

/// The commands that create a venv, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    pub path: PathBuf,
    pub python: PathBuf,
    pub python2: bool,
    /// `[python, -m, venv, DIR]`, then `[DIR/bin/pip, install, REQ]`…, then the package.
    pub commands: Vec<Vec<String>>,
}

impl VenvContext {
    fn path_var(&self) -> Option<OsString> {
        self.path_var.clone().or_else(|| std::env::var_os("PATH"))
    }

    fn definitions(&self) -> Result<BTreeMap<String, AnsibleVersion>, VenvError> {
        match defs::load_ansible_versions(&self.layers).map_err(VenvError::BadAnsibleJson)? {
            Some((_, map)) => Ok(map),
            None => Err(VenvError::NoAnsibleJson {
                searched: self.layers.clone(),
            }),
        }
    }

    /// The venv directory of a version.
    pub fn venv_path(&self, version: &str) -> PathBuf {
        self.venv_dir.join(version)
    }

    /// Is the venv there (`bin/activate` exists, as OSImager checks)?
    pub fn is_installed(&self, version: &str) -> bool {
        self.venv_path(version).join("bin/activate").is_file()
    }

    /// State of every venv the specs require, sorted by version string.
    pub fn status(&self) -> Result<Vec<VenvStatus>, VenvError> {
        let defs = self.definitions()?;
        let required = defs::required_versions(&defs::spec_files(&self.layers));
        let path_var = self.path_var();
        Ok(required
            .into_iter()
            .map(|v| {
                let installed = self.is_installed(&v);
                let definition = defs.get(&v).cloned();
                let python = match (&definition, installed) {
                    (Some(d), false) => python::find_python(
                        &d.python_min,
                        d.python_max.as_deref(),
                        path_var.as_deref(),
                    ),
                    _ => None,
                };
                VenvStatus {
                    path: self.venv_path(&v),
                    version: v,
                    installed,
                    definition,
                    python,
                }
            })
            .collect())
    }

    /// The commands that would create the venv for `version`.
    pub fn create_plan(&self, version: &str) -> Result<CreatePlan, VenvError> {
        let defs = self.definitions()?;
        let def = defs.get(version).ok_or_else(|| VenvError::UnknownVersion {
            version: version.to_string(),
            known: defs.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let python = python::find_python(
            &def.python_min,
            def.python_max.as_deref(),
            self.path_var().as_deref(),
        )
        .ok_or_else(|| VenvError::NoPython {
            version: version.to_string(),
            requirement: def.python_requirement(),
        })?;
        Ok(plan_for(def, &python, &self.venv_path(version)))
    }
}

/// The creation commands for a definition, interpreter and target directory.
pub fn plan_for(def: &AnsibleVersion, python: &Path, path: &Path) -> CreatePlan {
    let python2 = python::interpreter_version(python).is_some_and(|v| v.0 == 2)
        || python::parse_version(&def.python_min).is_some_and(|v| v.0 == 2);
    let py = python.display().to_string();
    let dir = path.display().to_string();
    let pip = path.join("bin/pip").display().to_string();
    let module = if python2 { "virtualenv" } else { "venv" };
    let mut commands = vec![vec![py, "-m".into(), module.into(), dir]];
    for req in &def.requirements {
        commands.push(vec![pip.clone(), "install".into(), req.clone()]);
    }
    commands.push(vec![pip, "install".into(), def.pkg_spec()]);
    CreatePlan {
        path: path.to_path_buf(),
        python: python.to_path_buf(),
        python2,
        commands,
    }
}

fn run_cmd(argv: &[String]) -> bool {
    Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// Create one venv (no-op message when it exists).
pub fn create(ctx: &VenvContext, version: &str, out: &mut dyn Write) -> Result<(), VenvError> {
    let path = ctx.venv_path(version);
    if ctx.is_installed(version) {
        writeln!(out, "Venv {version} already exists at {}", path.display())?;
        return Ok(());
    }
    let plan = ctx.create_plan(version)?;
    let def = ctx
        .definitions()?
        .remove(version)
        .expect("checked by create_plan");
    writeln!(
        out,
        "Creating venv for {} {version} (using {})...",
        def.pkg,
        plan.python.display()
    )?;
    std::fs::create_dir_all(&ctx.venv_dir).map_err(|e| VenvError::CreateFailed {
        path: ctx.venv_dir.clone(),
        detail: Some(e.to_string()),
    })?;
    if plan.python2 {
        let py = plan.python.display().to_string();
        if !Command::new(&py)
            .args(["-m", "virtualenv", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            writeln!(out, "Installing virtualenv for {py}...")?;
            let install = vec![
                py.clone(),
                "-m".into(),
                "pip".into(),
                "install".into(),
                "virtualenv".into(),
            ];
            if !run_cmd(&install) {
                return Err(VenvError::CreateFailed {
                    path: plan.path,
                    detail: Some(format!(
                        "virtualenv is required for {py} and could not be installed"
                    )),
                });
            }
        }
    }
    let (create_cmd, installs) = plan
        .commands
        .split_first()
        .expect("plan has a create command");
    if !run_cmd(create_cmd) {
        return Err(VenvError::CreateFailed {
            path: plan.path,
            detail: None,
        });
    }
    for (i, cmd) in installs.iter().enumerate() {
        let what = cmd.last().cloned().unwrap_or_default();
        if i + 1 < installs.len() {
            writeln!(out, "Installing prerequisite: {what}...")?;
        } else {
            writeln!(out, "Installing {what}...")?;
        }
        out.flush()?;
        if !run_cmd(cmd) {
            let _ = std::fs::remove_dir_all(&plan.path);
            return Err(VenvError::InstallFailed {
                what,
                path: plan.path,
            });
        }
    }
    writeln!(out, "Venv {version} created at {}", plan.path.display())?;
    Ok(())
}

/// `osimager venv [VERSION] [--all]` / `mkvenv`: list, or create one or all.
pub fn run(ctx: &VenvContext, req: &VenvRequest, out: &mut dyn Write) -> Result<(), VenvError> {
    if req.version.is_none() && !req.all {
        let status = ctx.status()?;
        writeln!(out, "Venv directory: {}", ctx.venv_dir.display())?;
        writeln!(out)?;
        if status.is_empty() {
            writeln!(out, "No venvs required by any specs.")?;
            return Ok(());
        }
        writeln!(out, "Required ansible venvs:")?;
        for s in &status {
            writeln!(out, "  {:<10} {}", s.version, s.describe())?;
        }
        return Ok(());
    }
    let versions: Vec<String> = if req.all {
        ctx.status()?.into_iter().map(|s| s.version).collect()
    } else {
        req.version.iter().cloned().collect()
    };
    for v in versions {
        create(ctx, &v, out)?;
    }
    Ok(())
}

impl VenvContext {
    /// From a loaded configuration: setting `venv_dir` (relative to `base_dir` when relative, as
    /// OSImager's `get_path`), layers user dir then bundled tree.
    pub fn from_config(config: &crate::config::Config) -> VenvContext {
        VenvContext {
            venv_dir: config.settings.venv_dir(),
            layers: vec![config.layers.user.clone(), config.layers.system.clone()],
            path_var: None,
        }
    }
}
