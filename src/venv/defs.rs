//! `ansible.json` (which Python each Ansible line needs, which package provides it, what must be
//! installed first) and the scan of specs for the `ansible_version`s they ask for.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One entry of `ansible.json`'s `versions`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AnsibleVersion {
    pub version: String,
    pub python_min: String,
    #[serde(default)]
    pub python_max: Option<String>,
    #[serde(default = "default_pkg")]
    pub pkg: String,
    #[serde(default)]
    pub requirements: Vec<String>,
}

fn default_pkg() -> String {
    "ansible-core".into()
}

impl AnsibleVersion {
    /// The pip requirement for the package: `ansible-core==2.16.*`.
    pub fn pkg_spec(&self) -> String {
        format!("{}=={}.*", self.pkg, self.version)
    }

    /// `>= 3.10 and <= 3.12` (OSImager's wording).
    pub fn python_requirement(&self) -> String {
        let mut r = format!(">= {}", self.python_min);
        if let Some(max) = &self.python_max {
            r.push_str(&format!(" and <= {max}"));
        }
        r
    }
}

#[derive(Debug, Deserialize)]
struct AnsibleFile {
    #[serde(default)]
    versions: Vec<AnsibleVersion>,
}

/// The versions of an `ansible.json`, keyed by version string.
pub type AnsibleVersions = BTreeMap<String, AnsibleVersion>;

/// Load `ansible.json` from the first layer that has it (user dir, then bundled data).
/// Returns the file used and the versions keyed by version string.
pub fn load_ansible_versions(
    layers: &[PathBuf],
) -> Result<Option<(PathBuf, AnsibleVersions)>, String> {
    for base in layers.iter().filter(|b| !b.as_os_str().is_empty()) {
        let path = base.join("ansible.json");
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: AnsibleFile = serde_json::from_str(&text)
            .map_err(|e| format!("{}: invalid ansible.json: {e}", path.display()))?;
        let map = file
            .versions
            .into_iter()
            .map(|v| (v.version.clone(), v))
            .collect();
        return Ok(Some((path, map)));
    }
    Ok(None)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

/// Spec files of all layers, a user file overriding a bundled one with the same relative path
/// (OSImager's `resolve_data_files("specs")`).
pub fn spec_files(layers: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for base in layers.iter().filter(|b| !b.as_os_str().is_empty()) {
        let dir = base.join("specs");
        let mut files = Vec::new();
        json_files(&dir, &mut files);
        for f in files {
            let rel = f.strip_prefix(&dir).unwrap_or(&f).to_path_buf();
            seen.entry(rel).or_insert(f);
        }
    }
    seen.into_values().collect()
}

/// The `ansible_version`s specs ask for: top level, `version_specific[]` (and their
/// `arch_specific[]`), and top-level `arch_specific[]` — where OSImager's `mkvenv` looks.
pub fn required_versions(spec_files: &[PathBuf]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let collect = |v: &Value, out: &mut BTreeSet<String>| {
        if let Some(s) = v.get("ansible_version").and_then(Value::as_str) {
            if !s.is_empty() {
                out.insert(s.to_string());
            }
        }
    };
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for f in spec_files {
        let Some(data) = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            continue;
        };
        collect(&data, &mut out);
        for entry in list(&data, "version_specific") {
            collect(&entry, &mut out);
            for a in list(&entry, "arch_specific") {
                collect(&a, &mut out);
            }
        }
        for entry in list(&data, "arch_specific") {
            collect(&entry, &mut out);
        }
    }
    out
}
