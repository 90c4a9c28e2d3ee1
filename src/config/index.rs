//! The index of targets (`make_index`), `-latest-` aliases (`latest_aliases`,
//! `resolve_latest`).

use super::layers::read_data_json;
use super::natural::{explode_versions, natural_cmp};
use super::pyjson::{py_str, truthy};
use super::{Config, ConfigError};
use crate::urlname::filename_from_url;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// One buildable `<dist>-<version>-<arch>`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub dist: String,
    pub version: String,
    pub arch: String,
    /// The spec file providing it.
    pub path: PathBuf,
    /// Best-effort resolved ISO URL ("" when the spec builds from a disk image).
    pub iso_url: String,
    pub iso_local: bool,
    pub disk_image_url: Option<String>,
    pub disk_image_local: bool,
}

/// The index, naturally sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub entries: Vec<(String, IndexEntry)>,
}

impl Index {
    pub fn get(&self, key: &str) -> Option<&IndexEntry> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }

    /// Entries of one arch (`--arch`).
    pub fn filter_arch<'a>(
        &'a self,
        arch: Option<&'a str>,
    ) -> impl Iterator<Item = &'a (String, IndexEntry)> {
        self.entries
            .iter()
            .filter(move |(_, e)| arch.is_none_or(|a| e.arch == a))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `latest_aliases`: `<dist>[-<prefix>]-latest-<arch>` → index key of the newest version.
    /// `wanted` narrows to one dist or one version line; a `wanted` naming no dist gives an
    /// empty list.
    pub fn latest_aliases(&self, wanted: Option<&str>, local_only: bool) -> Vec<(String, String)> {
        let mut dist_wanted: Option<&str> = None;
        let mut prefix = "";
        if let Some(w) = wanted.filter(|w| !w.is_empty()) {
            let mut dists: Vec<&str> = Vec::new();
            for (_, e) in &self.entries {
                if !dists.contains(&e.dist.as_str()) {
                    dists.push(&e.dist);
                }
            }
            dists.sort_by_key(|d| std::cmp::Reverse(d.len()));
            for d in dists {
                if !d.is_empty() && (w == d || w.starts_with(&format!("{d}-"))) {
                    dist_wanted = Some(d);
                    prefix = w.get(d.len() + 1..).unwrap_or("");
                    break;
                }
            }
            if dist_wanted.is_none() {
                return Vec::new();
            }
        }
        let mut best: Vec<(String, String, String)> = Vec::new(); // alias, version, key
        for (key, e) in &self.entries {
            if local_only && !(e.iso_local || e.disk_image_local) {
                continue;
            }
            if dist_wanted.is_some_and(|d| d != e.dist) {
                continue;
            }
            if !prefix.is_empty()
                && e.version != prefix
                && !e.version.starts_with(&format!("{prefix}."))
            {
                continue;
            }
            let stem = if prefix.is_empty() {
                e.dist.clone()
            } else {
                format!("{}-{prefix}", e.dist)
            };
            let alias = format!("{stem}-latest-{}", e.arch);
            match best.iter_mut().find(|(a, _, _)| *a == alias) {
                Some(b) => {
                    if natural_cmp(&e.version, &b.1) == Ordering::Greater {
                        b.1 = e.version.clone();
                        b.2 = key.clone();
                    }
                }
                None => best.push((alias, e.version.clone(), key.clone())),
            }
        }
        best.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        best.into_iter().map(|(a, _, k)| (a, k)).collect()
    }

    /// `resolve_latest`: the key an alias points at, or `name` unchanged.
    pub fn resolve_latest(&self, name: &str, local_only: bool) -> String {
        let Some((wanted, _)) = name.rsplit_once("-latest-") else {
            return name.to_string();
        };
        self.latest_aliases(Some(wanted), local_only)
            .into_iter()
            .find(|(a, _)| a == name)
            .map(|(_, k)| k)
            .unwrap_or_else(|| name.to_string())
    }
}

/// The dist and (version, arches override) of each provided version.
type Provides = (String, Vec<(String, Option<Value>)>);

/// `spec_get_provides`: (version, arches) for each provided version.
fn spec_provides(
    cfg: &Config,
    file: &Path,
    data: &Map<String, Value>,
) -> Result<Provides, ConfigError> {
    let schema = |key: &str, message: String| ConfigError::Schema {
        file: file.to_path_buf(),
        key: key.into(),
        message,
    };
    let Some(provides) = data.get("provides").filter(|p| truthy(p)) else {
        return Ok((String::new(), Vec::new()));
    };
    let Some(provides) = provides.as_object() else {
        return Err(schema("provides", "must be an object".into()));
    };
    let dist = match provides.get("dist") {
        Some(v) if truthy(v) => py_str(v),
        _ => {
            return Err(schema(
                "provides.dist",
                "the provides section has no dist".into(),
            ))
        }
    };
    let versions = match provides.get("versions") {
        Some(v) if truthy(v) => v,
        _ => {
            return Err(schema(
                "provides.versions",
                "the provides section has no versions".into(),
            ))
        }
    };
    let raw: Vec<String> = match versions {
        Value::Array(a) => a.iter().map(py_str).collect(),
        other => vec![py_str(other)],
    };
    let mut list = Vec::new();
    for v in &raw {
        list.extend(explode_versions(v).map_err(|e| schema("provides.versions", e.0))?);
    }
    let default_arches = provides.get("arches").cloned();
    let vspec = data.get("version_specific").and_then(Value::as_array);
    let mut out = Vec::new();
    for version in list {
        let mut arches = default_arches.clone();
        for vs in vspec.into_iter().flatten() {
            let pat = vs.get("version").map(py_str).unwrap_or_default();
            if cfg
                .regexes()
                .fullmatch(&pat, &version)
                .map_err(|e| schema("version_specific.version", e))?
            {
                if let Some(a) = vs.get("arches") {
                    arches = Some(a.clone());
                }
            }
        }
        let arches = arches.filter(truthy);
        out.push((version, arches));
    }
    Ok((dist, out))
}

fn arch_entries(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// `resolve_url_field`: best-effort URL of `field` for version/arch (spec's own file only).
pub fn resolve_url_field(
    cfg: &Config,
    data: &Map<String, Value>,
    base_defs: &Map<String, Value>,
    version: &str,
    arch: &str,
    field: &str,
) -> Option<String> {
    let matching = matching_version_specific(cfg, data, version);
    url_field(data, base_defs, &matching, version, arch, field)
}

/// The `version_specific` entries whose pattern fully matches `version`.
pub fn matching_version_specific<'a>(
    cfg: &Config,
    data: &'a Map<String, Value>,
    version: &str,
) -> Vec<&'a Map<String, Value>> {
    arch_entries(data.get("version_specific"))
        .filter(|vs| {
            let pat = vs.get("version").map(py_str).unwrap_or_default();
            cfg.regexes().fullmatch(&pat, version).unwrap_or(false)
        })
        .collect()
}

fn url_field(
    data: &Map<String, Value>,
    base_defs: &Map<String, Value>,
    matching: &[&Map<String, Value>],
    version: &str,
    arch: &str,
    field: &str,
) -> Option<String> {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("");
    let subs = [
        (">>version<<", version),
        (">>major<<", major),
        (">>minor<<", minor),
        (">>arch<<", arch),
    ];
    let empty = Map::new();
    let spec_defs = data
        .get("defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut url = spec_defs
        .get(field)
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let field_of = |e: &Map<String, Value>| {
        e.get("defs")
            .and_then(Value::as_object)
            .and_then(|d| d.get(field))
            .cloned()
    };
    for a in arch_entries(data.get("arch_specific")) {
        if a.get("arch").and_then(Value::as_str).unwrap_or("") == arch {
            if let Some(v) = field_of(a) {
                url = v;
            }
        }
    }
    for vs in matching {
        if let Some(v) = field_of(vs) {
            url = v;
        }
        for a in arch_entries(vs.get("arch_specific")) {
            if a.get("arch").and_then(Value::as_str).unwrap_or("") == arch {
                if let Some(v) = field_of(a) {
                    url = v;
                }
            }
        }
    }
    if !truthy(&url) {
        return None;
    }
    let mut url = py_str(&url);
    for (k, v) in subs {
        url = url.replace(k, v);
    }
    for var in find_markers(&url) {
        let val = spec_defs
            .get(&var)
            .or_else(|| base_defs.get(&var))
            .cloned()
            .unwrap_or(Value::String(String::new()));
        if truthy(&val) {
            let mut val = py_str(&val);
            for (k, v) in subs {
                val = val.replace(k, v);
            }
            val = eval_loop(val);
            url = url.replace(&format!(">>{var}<<"), &val);
        }
    }
    Some(eval_loop(url))
}

/// `re.findall(r'>>(.*?)<<', s)`.
fn find_markers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = s[pos..].find(">>") {
        let from = pos + i + 2;
        match s[from..].find("<<") {
            Some(j) if !s[from..from + j].contains('\n') => {
                out.push(s[from..from + j].to_string());
                pos = from + j + 2;
            }
            Some(_) => pos = from - 1,
            None => break,
        }
    }
    out
}

/// Evaluate `E>…<E` left to right until one fails (the original's loop).
fn eval_loop(mut s: String) -> String {
    while let (Some(start), Some(e)) = (s.find("E>"), s.find("<E")) {
        let end = e + 2;
        let expr = if end >= 2 && start + 2 <= end - 2 {
            &s[start + 2..end - 2]
        } else {
            ""
        };
        match super::expr::eval(expr) {
            Ok(v) => {
                let r = v.py_str();
                let tail = s.get(end..).unwrap_or("").to_string();
                s = format!("{}{r}{tail}", &s[..start]);
            }
            Err(_) => break,
        }
    }
    s
}

/// `check_iso_local`.
pub fn check_iso_local(url: &str, iso_path: &str) -> bool {
    if url.is_empty() {
        return false;
    }
    if let Some(p) = url.strip_prefix("file://") {
        return Path::new(p).is_file();
    }
    let name = filename_from_url(url);
    if name.is_empty() || iso_path.is_empty() {
        return false;
    }
    Path::new(iso_path).join(name).is_file()
}

/// `make_index`.
pub fn make_index(cfg: &Config) -> Result<Index, ConfigError> {
    let mut arches: Vec<String> = Vec::new();
    let add = |a: &Value, arches: &mut Vec<String>| {
        let a = py_str(a);
        if !arches.contains(&a) {
            arches.push(a.clone());
        }
        if a == "x86_64" && !arches.iter().any(|x| x == "amd64") {
            arches.push("amd64".into());
        }
    };
    for (_, p) in cfg.platforms()? {
        for a in p
            .get("arches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(a, &mut arches);
        }
    }
    for (_, l) in cfg.locations()? {
        for a in l
            .get("arches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(a, &mut arches);
        }
    }
    let base = cfg.base_defs();
    let iso_path = base.get("iso_path").map(py_str).unwrap_or_default();
    let mut index: Vec<(String, IndexEntry)> = Vec::new();
    let mut pos: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for file in cfg.layers.files("specs", ".json") {
        let data = read_data_json(&file)?;
        let (dist, provides) = spec_provides(cfg, &file, &data)?;
        for (version, spec_arches) in provides {
            let entry_arches: Vec<String> = match spec_arches {
                Some(Value::Array(list)) => {
                    let mut l: Vec<String> = list.iter().map(py_str).collect();
                    if l.iter().any(|a| a == "x86_64") && !l.iter().any(|a| a == "amd64") {
                        l.push("amd64".into());
                    }
                    l.into_iter().filter(|a| arches.contains(a)).collect()
                }
                Some(other) => {
                    return Err(ConfigError::Schema {
                        file: file.clone(),
                        key: "provides.arches".into(),
                        message: format!("must be a list, found {other}"),
                    })
                }
                None => arches.clone(),
            };
            let matching = matching_version_specific(cfg, &data, &version);
            for arch in entry_arches {
                let iso = url_field(&data, &base, &matching, &version, &arch, "iso_url")
                    .filter(|s| !s.is_empty());
                let disk = url_field(&data, &base, &matching, &version, &arch, "disk_image_url")
                    .filter(|s| !s.is_empty());
                if iso.is_none() && disk.is_none() {
                    continue;
                }
                let key = format!("{dist}-{version}-{arch}");
                let e = IndexEntry {
                    dist: dist.clone(),
                    version: version.clone(),
                    arch: arch.clone(),
                    path: file.clone(),
                    iso_local: iso
                        .as_deref()
                        .is_some_and(|u| check_iso_local(u, &iso_path)),
                    iso_url: iso.unwrap_or_default(),
                    disk_image_local: disk
                        .as_deref()
                        .is_some_and(|u| check_iso_local(u, &iso_path)),
                    disk_image_url: disk,
                };
                match pos.get(&key) {
                    Some(&i) => index[i].1 = e,
                    None => {
                        pos.insert(key.clone(), index.len());
                        index.push((key, e));
                    }
                }
            }
        }
    }
    // Stable sort: equal keys keep insertion order, like Python's sorted().
    index.sort_by_cached_key(|e| super::natural::NaturalKey::new(&e.0));
    Ok(Index { entries: index })
}
