//! The location editor's side: location files live only in the user layer
//! (`<user>/locations/<name>.json|toml`); they are checked before they are saved and written
//! atomically (temp file in the same directory, fsync, rename). Bundled data is never touched.

use super::catalog::config_error;
use crate::config::layers::{parse_text, rglob};
use crate::config::pyjson::py_str;
use crate::config::Config;
use osimager_server::backend::{
    BackendError, BackendErrorKind, LocationDoc, LocationInfo, Problem, Validation,
};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

fn dir(cfg: &Config) -> PathBuf {
    cfg.layers.user.join("locations")
}

/// The file of location `name` (JSON wins over TOML, as when loading), anywhere under the
/// locations directory.
fn find(cfg: &Config, name: &str) -> Option<PathBuf> {
    let d = dir(cfg);
    for suffix in [".json", ".toml"] {
        let hit = rglob(&d, suffix).into_iter().find(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == format!("{name}{suffix}"))
        });
        if hit.is_some() {
            return hit;
        }
    }
    None
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(py_str).collect())
        .unwrap_or_default()
}

fn info(name: &str, path: &Path, data: &Value) -> LocationInfo {
    LocationInfo {
        name: name.to_string(),
        format: if path.extension().is_some_and(|e| e == "toml") {
            "toml"
        } else {
            "json"
        }
        .into(),
        path: path.display().to_string(),
        platforms: strings(data.get("platforms")),
        arches: strings(data.get("arches")),
    }
}

/// Every location of the user layer.
pub fn list(cfg: &Config) -> Result<Vec<LocationInfo>, BackendError> {
    let mut out = Vec::new();
    for (name, data) in cfg.locations().map_err(config_error)? {
        if let Some(p) = find(cfg, &name) {
            out.push(info(&name, &p, &Value::Object(data)));
        }
    }
    Ok(out)
}

fn unknown(cfg: &Config, name: &str) -> BackendError {
    let names: Vec<String> = cfg
        .locations()
        .map(|l| l.into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|n| (crate::config::suggest::distance(&n, name), n))
        .collect();
    scored.sort();
    let close: Vec<String> = scored.into_iter().take(3).map(|(_, n)| n).collect();
    BackendError::new(
        BackendErrorKind::NotFound,
        format!(
            "no location '{name}' in {}{}",
            dir(cfg).display(),
            if close.is_empty() {
                "; create it with POST /api/v1/locations".to_string()
            } else {
                format!("; closest: {}", close.join(", "))
            }
        ),
    )
    .field("name")
    .suggest(close)
}

/// One location file's text.
pub fn get(cfg: &Config, name: &str) -> Result<LocationDoc, BackendError> {
    let p = find(cfg, name).ok_or_else(|| unknown(cfg, name))?;
    let content = std::fs::read_to_string(&p).map_err(|e| {
        BackendError::new(BackendErrorKind::Internal, format!("{}: {e}", p.display()))
    })?;
    Ok(LocationDoc {
        format: if p.extension().is_some_and(|e| e == "toml") {
            "toml"
        } else {
            "json"
        }
        .into(),
        content,
    })
}

/// Check a location's text: it parses (with line and column), is a table, its `platforms`
/// exist and its `arches` are a list.
pub fn check(cfg: &Config, name: &str, doc: &LocationDoc) -> Validation {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let fake_path = dir(cfg).join(format!("{name}.{}", doc.format));
    match parse_text(&fake_path, &doc.content) {
        Err(e) => problems.push(Problem {
            key: None,
            message: e.to_string(),
        }),
        Ok(Value::Object(m)) => {
            let known: Vec<String> = cfg
                .platforms()
                .map(|p| p.into_iter().map(|(n, _)| n).collect())
                .unwrap_or_default();
            match m.get("platforms") {
                None => warnings
                    .push("no `platforms` list: every platform may use this location".into()),
                Some(Value::Array(a)) => {
                    for p in a.iter().map(py_str) {
                        if !known.contains(&p) {
                            problems.push(Problem {
                                key: Some("platforms".into()),
                                message: format!(
                                    "unknown platform '{p}'; platforms: {}",
                                    known.join(", ")
                                ),
                            });
                        }
                    }
                }
                Some(_) => problems.push(Problem {
                    key: Some("platforms".into()),
                    message: "must be a list of platform names".into(),
                }),
            }
            if m.get("arches").is_some_and(|a| !a.is_array()) {
                problems.push(Problem {
                    key: Some("arches".into()),
                    message: "must be a list (e.g. [\"x86_64\"])".into(),
                });
            }
            for k in ["defs", "config"] {
                if m.get(k).is_some_and(|v| !v.is_object()) {
                    problems.push(Problem {
                        key: Some(k.into()),
                        message: "must be an object (a table)".into(),
                    });
                }
            }
            if m.contains_key("iso_path") {
                warnings.push("iso_path is a global setting; it is ignored in a location".into());
            }
        }
        Ok(_) => problems.push(Problem {
            key: None,
            message: "the top level must be an object (a table)".into(),
        }),
    }
    Validation {
        ok: problems.is_empty(),
        problems,
        warnings,
        target: None,
        engine: None,
    }
}

/// Check, then write atomically. `create`: refuse to replace an existing location.
pub fn save(
    cfg: &Config,
    name: &str,
    doc: &LocationDoc,
    create: bool,
) -> Result<LocationInfo, BackendError> {
    let existing = find(cfg, name);
    if create && existing.is_some() {
        return Err(BackendError::new(
            BackendErrorKind::Conflict,
            format!("location '{name}' exists; edit it (PUT /api/v1/locations/{name}) instead"),
        )
        .field("name"));
    }
    let v = check(cfg, name, doc);
    if !v.ok {
        let msg: Vec<String> = v
            .problems
            .iter()
            .map(|p| match &p.key {
                Some(k) => format!("{k}: {}", p.message),
                None => p.message.clone(),
            })
            .collect();
        return Err(BackendError::new(BackendErrorKind::Invalid, msg.join("; ")).field("content"));
    }
    // Edit in place (a location may sit in a subdirectory); a new one goes to the top.
    let folder = existing
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| dir(cfg));
    let target = folder.join(format!("{name}.{}", doc.format));
    write_atomic(&target, doc.content.as_bytes()).map_err(|e| {
        BackendError::new(
            BackendErrorKind::Internal,
            format!("writing {}: {e}", target.display()),
        )
    })?;
    // Saved in the other format: the old file would win (JSON) or linger (TOML).
    if let Some(old) = existing.filter(|p| *p != target) {
        let _ = std::fs::remove_file(old);
    }
    let data = parse_text(&target, &doc.content).map_err(config_error)?;
    Ok(info(name, &target, &data))
}

/// Remove a location file.
pub fn delete(cfg: &Config, name: &str) -> Result<(), BackendError> {
    let p = find(cfg, name).ok_or_else(|| unknown(cfg, name))?;
    std::fs::remove_file(&p).map_err(|e| {
        BackendError::new(
            BackendErrorKind::Internal,
            format!("removing {}: {e}", p.display()),
        )
    })
}

fn write_atomic(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".location-")
        .tempfile_in(folder)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(folder) {
        let _ = d.sync_all();
    }
    Ok(())
}
