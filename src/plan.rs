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
