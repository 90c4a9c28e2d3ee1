//! Stage 9 of `make_build`: the [`BuildPlan`] both engines consume, read off the Packer build
//! so that `osimager dump` and a native build cannot disagree.

use super::load::Loaded;
use super::network::Machine;
use super::substitute::Substituted;
use super::target::Target;
use super::value::into_map;
use crate::config::pyjson::{py_str, truthy};
use crate::config::Config;
use crate::plan::{BuildPlan, GeneratedFile};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The plan of `build` (the variables, provisioners and builder as the build has them, with
/// their `{{vault …}}` references resolved); defs, environment and files from `s`.
pub(super) fn plan(
    cfg: &Config,
    t: &Target,
    machine: Machine,
    s: Substituted,
    build: &Value,
    l: &Loaded,
) -> BuildPlan {
    let (variables, provisioners, builder) = split_build(build);
    BuildPlan {
        target: t.name(),
        platform: t.platform.clone(),
        location: t.location.clone(),
        spec: t.spec.clone(),
        name: machine.name,
        fqdn: machine.fqdn,
        ip: machine.ip,
        defs: s.defs,
        variables,
        builder,
        provisioners,
        evars: s.evars,
        files: generated_files(&s.files),
        required_files: required_files(&l.spec),
        // The engines put the spec's Ansible venv in front of PATH: OSImager wrote
        // `<venv>/bin:$PATH` into evars here, which baked this process's PATH into the plan.
        venv: l
            .spec
            .get("ansible_version")
            .filter(|v| truthy(v) && !l.skip)
            .map(py_str),
        pre_build: hooks(&l.spec, &l.platform, "pre_build"),
        post_build: hooks(&l.spec, &l.platform, "post_build"),
        data_dir: cfg.layers.system.clone(),
        inputs: Default::default(),
    }
}

/// `pre_build` / `post_build`: OSImager runs the spec's hook, then the platform's. One hook is
/// kept as written; two become a list (the engines accept either).
fn hooks(spec: &Map<String, Value>, platform: &Map<String, Value>, key: &str) -> Option<Value> {
    let found: Vec<Value> = [spec.get(key), platform.get(key)]
        .into_iter()
        .flatten()
        .filter(|v| truthy(v))
        .cloned()
        .collect();
    match found.len() {
        0 => None,
        1 => found.into_iter().next(),
        _ => Some(Value::Array(found)),
    }
}

/// The spec's `files` as the plan carries them (gen_files substitutes markers at generation).
fn generated_files(files: &[Value]) -> Vec<GeneratedFile> {
    files
        .iter()
        .filter_map(Value::as_object)
        .map(|f| GeneratedFile {
            dest: f.get("dest").map(py_str).unwrap_or_default(),
            sources: f
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|x| PathBuf::from(py_str(x)))
                .collect(),
        })
        .collect()
}

/// The spec's `required_files`: a plain name, or the whole entry (file, description, url,
/// location) as JSON text, so the engine's "required file missing" message can say where to
/// get it.
fn required_files(spec: &Map<String, Value>) -> Vec<String> {
    spec.get("required_files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| match r {
            Value::Object(_) => r.to_string(),
            other => py_str(other),
        })
        .collect()
}

fn split_build(build: &Value) -> (Map<String, Value>, Vec<Value>, Map<String, Value>) {
    let v = build
        .get("variables")
        .cloned()
        .map(into_map)
        .unwrap_or_default();
    let p = build
        .get("provisioners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let b = build
        .get("builders")
        .and_then(|b| b.get(0))
        .cloned()
        .map(into_map)
        .unwrap_or_default();
    (v, p, b)
}
