//! Stage 7 of `make_build`: every marker substituted (`do_sub`) — the defs first, then with
//! those defs the environment, the variables, the provisioners, the spec's files and the
//! builder.

use super::load::Loaded;
use super::target::Target;
use super::value::{into_map, s};
use crate::config::diags::{sub, undefined_def_warnings, Diags};
use crate::config::loader::State;
use crate::config::pyjson::{py_str, truthy};
use crate::config::secrets::SecretStore;
use crate::config::{index, ConfigError};
use serde_json::{Map, Value};

/// The merged state with its markers substituted.
pub(super) struct Substituted {
    pub defs: Map<String, Value>,
    pub evars: Map<String, Value>,
    pub variables: Map<String, Value>,
    /// The pre-, main and post-provisioners in that order (none when skipped).
    pub provisioners: Vec<Value>,
    /// The builder (OSImager's `config`).
    pub builder: Map<String, Value>,
    /// The spec's `files` entries as merged: they are substituted when they are written.
    pub files: Vec<Value>,
}

/// Substitute `st`. `platform_type` is taken from the merged builder first, and markers that
/// name undefined defs are warned about before they become "".
pub(super) fn substitute(
    mut st: State,
    t: &Target,
    l: &Loaded,
    store: Option<&SecretStore>,
    warnings: &mut Diags,
) -> Result<Substituted, ConfigError> {
    let ptype = st.config.get("type").cloned().unwrap_or(s(&t.platform));
    st.defs.insert("platform_type".into(), ptype);
    undefined_def_warnings(&st, warnings);

    let defs = sub(
        &Value::Object(st.defs.clone()),
        &st.defs,
        store,
        "defs",
        warnings,
    )?;
    let mut defs = into_map(defs);
    // A local ISO: the resolved iso_url's file is already in iso_path.
    let iso_url = defs.get("iso_url").map(py_str).unwrap_or_default();
    if !defs.get("local_only").is_some_and(truthy) {
        let iso_path = defs.get("iso_path").map(py_str).unwrap_or_default();
        if index::check_iso_local(&iso_url, &iso_path) {
            defs.insert("local_only".into(), Value::Bool(true));
        }
    }
    st.evars
        .insert("RES_OPTIONS".into(), s("nameserver >>dns1<<"));
    let d = &defs;
    let evars = into_map(sub(&Value::Object(st.evars), d, store, "evars", warnings)?);
    let variables = into_map(sub(
        &Value::Object(st.variables),
        d,
        store,
        "variables",
        warnings,
    )?);
    let mut provisioners = Vec::new();
    if !l.skip {
        for (what, list) in [
            ("pre_provisioners", st.pre_provisioners),
            ("provisioners", st.provisioners),
            ("post_provisioners", st.post_provisioners),
        ] {
            if let Value::Array(a) = sub(&Value::Array(list), d, store, what, warnings)? {
                provisioners.extend(a);
            }
        }
    }
    // The original substitutes the spec's `files` here too (results unused; errors still fatal).
    let spec_files = l
        .spec
        .get("files")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    sub(&spec_files, d, store, "files", &mut Diags::default())?;
    let builder = into_map(sub(
        &Value::Object(st.config),
        d,
        store,
        "config",
        warnings,
    )?);
    Ok(Substituted {
        defs,
        evars,
        variables,
        provisioners,
        builder,
        files: st.files,
    })
}
