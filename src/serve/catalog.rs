//! The configuration as the build service shows it: the index with `list`'s filters,
//! platforms, and a target's defs and template with every secret redacted.

use crate::config::index::IndexEntry;
use crate::config::layers::read_data_json;
use crate::config::pyjson::py_str;
use crate::config::{Config, ConfigError, ConfigOptions, ResolveRequest};
use crate::secret::Registry;
use osimager_server::backend::{
    BackendError, BackendErrorKind, PlatformInfo, ResolvedTarget, TargetFilter, TargetInfo,
    TargetRef,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Load the configuration as `osimager` does (settings, user layer, bundled tree).
pub fn load(data_dir: &Option<PathBuf>) -> Result<Config, BackendError> {
    Config::load(&ConfigOptions {
        data_dir: data_dir.clone(),
        set: Vec::new(),
        local_only: false,
    })
    .map_err(config_error)
}

/// A configuration error as the API reports it: unknown names are 404 with the closest ones.
pub fn config_error(e: ConfigError) -> BackendError {
    match e {
        ConfigError::NotFound { kind, name, hint } => {
            let suggestions = suggestions(&hint);
            BackendError::new(
                BackendErrorKind::NotFound,
                format!("unknown {kind} '{name}'; {hint}"),
            )
            .field("target")
            .suggest(suggestions)
        }
        ConfigError::Target(m) => BackendError::new(BackendErrorKind::Invalid, m).field("target"),
        other => BackendError::new(
            BackendErrorKind::Invalid,
            crate::secret::redact(&other.to_string()),
        ),
    }
}

/// The names in a hint like "closest targets: a, b, c; list them all with …" or
/// "available platforms: a, b".
fn suggestions(hint: &str) -> Vec<String> {
    let Some((_, rest)) = hint.split_once(": ") else {
        return Vec::new();
    };
    rest.split(';')
        .next()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().trim_end_matches('.').to_string())
        .filter(|s| !s.is_empty() && !s.contains(' '))
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(py_str).collect())
        .unwrap_or_default()
}

fn relative(cfg: &Config, p: &Path) -> String {
    for base in [&cfg.layers.user, &cfg.layers.system] {
        if let Ok(r) = p.strip_prefix(base) {
            return r.display().to_string();
        }
    }
    p.display().to_string()
}

/// The platforms a spec file names itself (`platforms`); empty: it does not restrict them.
fn spec_platforms(path: &Path) -> Vec<String> {
    read_data_json(path)
        .ok()
        .map(|d| strings(d.get("platforms")))
        .unwrap_or_default()
}

fn version_matches(want: &str, version: &str) -> bool {
    version == want || version.starts_with(&format!("{want}."))
}

/// The index, filtered as `osimager list` filters it (and by platform and location).
pub fn targets(cfg: &Config, f: &TargetFilter) -> Result<Vec<TargetInfo>, BackendError> {
    let index = cfg.index().map_err(config_error)?;
    let all_platforms: Vec<String> = cfg
        .platforms()
        .map_err(config_error)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "none" && n != "all")
        .collect();
    let (loc_arches, loc_platforms) = match &f.location {
        Some(l) => match cfg
            .locations()
            .map_err(config_error)?
            .into_iter()
            .find(|(n, _)| n == l)
        {
            Some((_, d)) => (strings(d.get("arches")), strings(d.get("platforms"))),
            None => return Ok(Vec::new()),
        },
        None => (Vec::new(), Vec::new()),
    };
    let latest: Vec<(String, String)> = index.latest_aliases(None, cfg.settings.local_only());
    let alias_of = |key: &str| {
        latest
            .iter()
            .find(|(_, k)| k == key)
            .map(|(a, _)| a.clone())
    };
    let mut out = Vec::new();
    for (key, e) in &index.entries {
        let e: &IndexEntry = e;
        let alias = alias_of(key);
        if f.latest && alias.is_none() {
            continue;
        }
        if f.arch.as_deref().is_some_and(|a| a != e.arch)
            || f.dist.as_deref().is_some_and(|d| d != e.dist)
            || f.version
                .as_deref()
                .is_some_and(|v| !version_matches(v, &e.version))
            || f.q
                .as_deref()
                .is_some_and(|q| !key.to_lowercase().contains(&q.to_lowercase()))
            || (!loc_arches.is_empty() && !loc_arches.contains(&e.arch))
        {
            continue;
        }
        let own = spec_platforms(&e.path);
        let platforms: Vec<String> = if own.is_empty() {
            all_platforms.clone()
        } else {
            own.into_iter()
                .filter(|p| all_platforms.contains(p))
                .collect()
        };
        if f.platform
            .as_deref()
            .is_some_and(|p| !platforms.iter().any(|x| x == p))
            || f.platform
                .as_deref()
                .is_some_and(|p| !loc_platforms.is_empty() && !loc_platforms.iter().any(|x| x == p))
        {
            continue;
        }
        let iso = if !e.iso_url.is_empty() {
            Some(e.iso_url.clone())
        } else {
            e.disk_image_url.clone()
        };
        out.push(TargetInfo {
            name: key.clone(),
            dist: e.dist.clone(),
            version: e.version.clone(),
            arch: e.arch.clone(),
            spec: relative(cfg, &e.path),
            platforms,
            iso,
            local: e.iso_local || e.disk_image_local,
            latest_alias: alias,
        });
    }
    Ok(out)
}

/// Every platform with its builder type and whether a native driver exists.
pub fn platforms(cfg: &Config) -> Result<Vec<PlatformInfo>, BackendError> {
    let drivers = osimager_drivers::DriverRegistry::builtin();
    Ok(cfg
        .platforms()
        .map_err(config_error)?
        .into_iter()
        .filter(|(n, _)| n != "none" && n != "all")
        .map(|(name, p)| {
            let builder_type = p
                .get("config")
                .and_then(|c| c.get("type"))
                .map(py_str)
                .unwrap_or_else(|| "unknown".into());
            PlatformInfo {
                native: drivers.supports(&builder_type),
                arches: strings(p.get("arches")),
                name,
                builder_type,
            }
        })
        .collect())
}

/// Replace every registered secret in every string of `v`.
fn redact_value(v: &mut Value, reg: &Registry) {
    match v {
        Value::String(s) => *s = reg.redact(s),
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, reg)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(x, reg)),
        _ => {}
    }
}

/// Resolve a target (in a temp dir of its own, removed after) with a secret registry of its
/// own, and redact its defs and template against it.
pub fn resolve(cfg: &Config, t: &TargetRef) -> Result<ResolvedTarget, BackendError> {
    let reg = Registry::new();
    let tmp = tempfile::Builder::new()
        .prefix("osimager-resolve-")
        .tempdir()
        .map_err(|e| {
            BackendError::new(
                BackendErrorKind::Internal,
                format!("creating a temp dir: {e}"),
            )
        })?;
    let r = reg
        .scope(|| {
            crate::config::resolve::resolve(
                cfg,
                &ResolveRequest {
                    target: t.target.clone(),
                    name: t.name.clone(),
                    ip: t.ip.clone(),
                    defines: t.defines.clone(),
                    fqdn: None,
                    temp_dir: tmp.path().to_path_buf(),
                    temp_dir_named_only: false,
                    skip: false,
                    build_id: None,
                    // As `osimager defs`: a missing secret is a warning here, an error in a build.
                    require_secrets: false,
                },
            )
        })
        .map_err(config_error)?;
    if let Some(Value::String(tok)) = r.plan.defs.get("vault_token") {
        reg.register(tok);
    }
    let mut defs = Value::Object(r.plan.defs.clone());
    let mut template = r.build.clone();
    redact_value(&mut defs, &reg);
    redact_value(&mut template, &reg);
    let parts: Vec<&str> = t.target.split('/').collect();
    let spec = r
        .plan
        .defs
        .get("spec_name")
        .map(py_str)
        .unwrap_or_else(|| parts.get(2).map(|s| s.to_string()).unwrap_or_default());
    Ok(ResolvedTarget {
        target: format!(
            "{}/{}/{spec}",
            parts[0],
            parts.get(1).copied().unwrap_or("")
        ),
        defs,
        template,
        warnings: r
            .warnings
            .iter()
            .map(|w| reg.redact(w))
            .filter(|w| !w.starts_with("removing empty value for:"))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_read_from_hints() {
        assert_eq!(
            suggestions("closest targets: a-1-x, b-2-y; list them all with `osimager list`"),
            vec!["a-1-x", "b-2-y"]
        );
        assert_eq!(
            suggestions("available platforms: qemu, vsphere"),
            vec!["qemu", "vsphere"]
        );
        assert!(suggestions("no idea").is_empty());
    }
}
