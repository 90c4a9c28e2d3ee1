//! The per-build context: everything a build would otherwise take from the process — the
//! environment its tools run with, the working directory relative paths resolve against, the
//! temp root, the secret registry and the drivers it may use. Builds that share a process
//! (a server, a worker, a test) each have their own, so none sees another's settings.

use crate::secret::Registry;
use osimager_drivers::{DriverEnv, DriverRegistry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// See the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The environment of every process the build starts (hypervisor tools, Packer, Ansible,
    /// hooks), before the plan's own additions.
    pub vars: BTreeMap<String, String>,
    /// Relative paths given by the caller (`--output-dir`, `-m`) resolve against this.
    pub cwd: PathBuf,
    /// Where the build's private temp directory is made.
    pub temp_root: PathBuf,
    /// Values to redact from everything the build reports.
    pub secrets: Registry,
    /// Builder types with a native driver.
    pub drivers: DriverRegistry,
}

impl BuildContext {
    /// The context of a one-shot command: this process's environment, working directory and
    /// temp directory, the process-wide secret registry, the built-in drivers.
    pub fn from_process() -> BuildContext {
        BuildContext {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            temp_root: std::env::temp_dir(),
            secrets: Registry::current(),
            drivers: DriverRegistry::builtin(),
        }
    }

    /// A variable of the build's environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// `p` made absolute against [`BuildContext::cwd`].
    pub fn absolute(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        }
    }

    /// What a driver gets to know.
    pub fn driver_env(&self, build_name: &str, work_dir: PathBuf, log_dir: PathBuf) -> DriverEnv {
        DriverEnv {
            build_name: build_name.to_string(),
            work_dir,
            log_dir,
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Give a command the build's environment (replacing the process's).
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        cmd.env_clear().envs(&self.vars);
    }

    /// Give a command the build's environment (replacing the process's).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env_clear().envs(&self.vars);
    }
}
