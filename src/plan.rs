//! The BuildPlan: the single value that flows from configuration to the engines.
//!
//! The configuration engine (`crate::config`) resolves a target into a `BuildPlan`; the Packer
//! engine turns it into a Packer template, the native engine executes it step by step. Both read
//! the same value, so `osimager dump` and a native build cannot disagree about what was asked for.
//! The builder block keeps Packer's vocabulary (`boot_command`, `http_directory`, `ssh_username`,
//! ...), exactly as OSImager platforms and specs write it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A file the spec asks to generate (OSImager `files`: sources concatenated, templated, written to
/// `dest` relative to the build's temp directory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GeneratedFile {
    /// Destination relative to the build temp directory (as written in the spec, markers applied).
    pub dest: String,
    /// Source files (resolved through the data layers), in concatenation order.
    pub sources: Vec<PathBuf>,
}

/// Everything a build needs, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct BuildPlan {
    /// `platform/location/spec` as given (after `-latest-` resolution).
    pub target: String,
    pub platform: String,
    pub location: String,
    pub spec: String,
    /// Machine name (defaults to the spec name), its FQDN and IP ("" = DHCP).
    pub name: String,
    pub fqdn: String,
    pub ip: String,
    /// Resolved defs (what `osimager defs` prints).
    pub defs: Map<String, Value>,
    /// Packer user variables (`variables`).
    pub variables: Map<String, Value>,
    /// The builder block in Packer vocabulary (`config` after merging and markers).
    pub builder: Map<String, Value>,
    /// pre_provisioners + default ansible provisioner + post_provisioners, Packer shaped.
    pub provisioners: Vec<Value>,
    /// Extra environment for provisioners and Packer (spec `evars`).
    pub evars: Map<String, Value>,
    /// Files to generate into the build temp directory before the build.
    pub files: Vec<GeneratedFile>,
    /// Files that must exist before a build (spec `required_files`).
    pub required_files: Vec<String>,
    /// Ansible venv name requested by the spec, if any.
    pub venv: Option<String>,
    /// Platform hooks (`pre_build` / `post_build`) as written in the platform.
    pub pre_build: Option<Value>,
    pub post_build: Option<Value>,
    /// The data directory the build runs in (OSImager runs Packer in its data dir).
    pub data_dir: PathBuf,
    /// What the engines need from the configuration beyond the above, filled when the plan is
    /// prepared for a build (`config::Config::prepare`), so an engine never calls back into the
    /// configuration engine.
    #[serde(skip)]
    pub inputs: BuildInputs,
}

/// A file of the spec's `files`, rendered (sources concatenated, markers applied).
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to the build's temp directory.
    pub dest: String,
    /// The content. Answer files carry passwords: never printed (see the `Debug` impl).
    pub content: String,
}

impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RenderedFile({}, {} bytes)",
            self.dest,
            self.content.len()
        )
    }
}

/// See [`BuildPlan::inputs`].
#[derive(Debug, Clone, Default)]
pub struct BuildInputs {
    /// The spec's `files`, rendered.
    pub files: Vec<RenderedFile>,
    /// Warnings about the configuration (resolving, rendering), reported when the build starts.
    pub warnings: Vec<String>,
    /// Notes of the resolution (which `-latest-` version was picked, …), reported likewise.
    pub notices: Vec<String>,
    /// ISO cache directory (`<packer_cache_dir>/iso`).
    pub iso_cache_dir: PathBuf,
    /// The user layer (`~/.config/osimager`), searched first for files and hook scripts.
    pub user_dir: PathBuf,
    /// Bundled data trees searched after the user layer.
    pub data_dirs: Vec<PathBuf>,
    /// The settings as loaded (Packer command, venv dir, Vault address and token, …): hooks
    /// see them as `imager.settings`.
    pub settings: Map<String, Value>,
    /// The directory of Ansible venvs (`<venv_dir>/<ansible_version>`).
    pub venv_dir: PathBuf,
}

impl BuildInputs {
    /// A setting as text ("" when unset).
    pub fn setting(&self, key: &str) -> String {
        match self.settings.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }

    /// OSImager's `resolve_data_path`: `<user_dir>/<rel>` if it exists, else the first data
    /// dir that has it.
    pub fn resolve_data_path(&self, rel: &str) -> Option<PathBuf> {
        std::iter::once(&self.user_dir)
            .chain(self.data_dirs.iter())
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(rel))
            .find(|p| p.exists())
    }

    /// Write the rendered files into `dir`; returns the paths written.
    pub fn write_files(&self, dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for f in &self.files {
            let path = dir.join(&f.dest);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &f.content)?;
            written.push(path);
        }
        Ok(written)
    }
}

impl BuildPlan {
    /// The Packer template, exactly as OSImager's `make_build` shapes it:
    /// `{"variables": …, "provisioners": …, "builders": [config]}`.
    pub fn packer_template(&self) -> Value {
        let mut t = Map::new();
        t.insert("variables".into(), Value::Object(self.variables.clone()));
        t.insert(
            "provisioners".into(),
            Value::Array(self.provisioners.clone()),
        );
        t.insert(
            "builders".into(),
            Value::Array(vec![Value::Object(self.builder.clone())]),
        );
        Value::Object(t)
    }

    /// The builder type (`qemu`, `virtualbox-iso`, `vmware-iso`, …).
    pub fn builder_type(&self) -> &str {
        self.builder
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}
