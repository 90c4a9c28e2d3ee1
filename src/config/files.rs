//! `gen_files`: the spec's `files` (sources concatenated, markers applied), rendered when a plan
//! is prepared for a build and written into the build's temp directory by the engine.

use super::markers::{self, DefsEnv};
use super::pyjson::py_str;
use super::resolve::open_store;
use super::{Config, ConfigError};
use crate::plan::{BuildPlan, RenderedFile};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn marker_err(what: &str, e: markers::MarkerError) -> ConfigError {
    ConfigError::Other(format!("files: {what}: {e}"))
}

/// Render the plan's files (OSImager writes them into the build temp dir; the engines do that
/// with [`crate::plan::BuildInputs::write_files`]). Like the original, an entry whose content is
/// empty stops generation of the remaining entries. Returns the files and the warnings.
pub fn render(
    cfg: &Config,
    plan: &BuildPlan,
) -> Result<(Vec<RenderedFile>, Vec<String>), ConfigError> {
    // A store that cannot be opened matters only if the files read secrets: the markers then
    // fail with "no credential source", and the reason the store could not be opened is said.
    let (store, store_err) = match open_store(cfg) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e)),
    };
    let marker_err = |what: &str, e: markers::MarkerError| match &store_err {
        Some(se) if matches!(&e, markers::MarkerError::Secret { .. }) => ConfigError::Other(
            format!("files: {what}: {e}; the secret store cannot be used: {se}"),
        ),
        _ => marker_err(what, e),
    };
    let mut warnings = Vec::new();
    let mut env = DefsEnv::new(&plan.defs);
    if let Some(s) = store.as_ref() {
        env = env.with_secrets(s);
    }
    let raw = Value::Array(
        plan.files
            .iter()
            .map(|f| {
                json!({
                    "sources": f.sources.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>(),
                    "dest": f.dest,
                })
            })
            .collect(),
    );
    let files = markers::substitute_value(&raw, &env).map_err(|e| marker_err("files", e))?;
    let mut rendered = Vec::new();
    for f in files.as_array().into_iter().flatten() {
        let Some(f) = f.as_object() else { continue };
        let mut data = String::new();
        for src in f
            .get("sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let spec = py_str(src);
            let name =
                py_str(&markers::substitute_str(&spec, &env).map_err(|e| marker_err(&spec, e))?);
            let Some(path) = cfg.layers.resolve(&["files", &name]) else {
                return Err(ConfigError::NotFound {
                    kind: "source file".into(),
                    name: name.clone(),
                    hint: format!(
                        "looked in {}/files and {}/files",
                        cfg.layers.user.display(),
                        cfg.layers.system.display()
                    ),
                });
            };
            data.push_str(&std::fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, e))?);
        }
        let data =
            py_str(&markers::substitute_str(&data, &env).map_err(|e| marker_err("content", e))?);
        if data.is_empty() {
            break;
        }
        if let Some(dest) = f.get("dest").filter(|d| super::pyjson::truthy(d)) {
            let dest = py_str(
                &markers::substitute_str(&py_str(dest), &env).map_err(|e| marker_err("dest", e))?,
            );
            rendered.push(RenderedFile {
                dest,
                content: data,
            });
        }
    }
    // Files are rendered only for builds, and a build does not go on with "" for a secret that
    // does not exist (an answer file with an empty password): see `ResolveRequest::require_secrets`.
    let mut missing = Vec::new();
    for w in env.take_warnings() {
        match &w.missing_secret {
            Some(m) => {
                let line = format!("{} ({})", m.error, m.marker);
                if !missing.contains(&line) {
                    missing.push(line);
                }
            }
            None => warnings.push(format!("files: {w}")),
        }
    }
    if !missing.is_empty() {
        return Err(ConfigError::Other(format!(
            "files: the answer files read secrets that do not exist; the build stops rather \
             than write them with empty values:\n  - {}\nStore them (docs/DATA.md, Secrets, \
             lists the paths and keys), then build again",
            missing.join("\n  - ")
        )));
    }
    Ok((rendered, warnings))
}

/// Render the plan's files and write them into `dir` (what OSImager's `gen_files` does).
pub fn generate(cfg: &Config, plan: &BuildPlan, dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let (files, _) = render(cfg, plan)?;
    let inputs = crate::plan::BuildInputs {
        files,
        ..Default::default()
    };
    inputs.write_files(dir).map_err(|e| ConfigError::io(dir, e))
}
