//! Text output shared by `osimager` and `mkosimage` (same wording and order as OSImager).

use crate::config::pyjson::py_str;
use crate::config::{Config, ConfigError, Index};
use crate::urlname::filename_from_url;
use serde_json::Value;
use std::fmt::Write;

/// `--list`.
pub fn list(cfg: &Config, index: &Index, arch: Option<&str>) -> String {
    let mut out = String::new();
    let mut any = false;
    for (k, e) in index.filter_arch(arch) {
        if !any {
            out.push_str("Available specs:\n");
            any = true;
        }
        let flag = if e.iso_local { " (*)" } else { "" };
        let _ = writeln!(out, "  {k}{flag}");
    }
    if !any {
        no_specs(cfg, index, arch, &mut out);
    }
    out
}

fn no_specs(cfg: &Config, index: &Index, arch: Option<&str>, out: &mut String) {
    // 1.11.1 says "incomplete install?" here even when only the --arch filter matched nothing.
    if let (Some(a), Some(_)) = (arch, index.keys().next()) {
        let mut arches: Vec<&str> = index.entries.iter().map(|(_, e)| e.arch.as_str()).collect();
        arches.sort();
        arches.dedup();
        let _ = writeln!(
            out,
            "No specs for arch {a}; the specs provide: {}",
            arches.join(", ")
        );
        return;
    }
    let _ = writeln!(
        out,
        "No specs found in {}/specs/ (incomplete install?)",
        cfg.layers.system.display()
    );
    let _ = writeln!(
        out,
        "  Or create your own: {}/specs/",
        cfg.layers.user.display()
    );
}

/// `--latest [WANTED]`.
pub fn latest(index: &Index, arch: Option<&str>, wanted: Option<&str>, local_only: bool) -> String {
    let filtered = Index {
        entries: index.filter_arch(arch).cloned().collect(),
    };
    let aliases = filtered.latest_aliases(wanted, local_only);
    let mut out = String::new();
    if !aliases.is_empty() {
        out.push_str("Latest specs:\n");
        for (a, k) in aliases {
            let _ = writeln!(out, "  {a:<34} {k}");
        }
    } else if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        let _ = writeln!(out, "No specs match {w}");
    } else {
        out.push_str("No specs found\n");
    }
    out
}

/// `--avail` (and `--local` without a target).
pub fn avail(
    cfg: &Config,
    index: &Index,
    arch: Option<&str>,
    latest: Option<Option<&str>>,
) -> String {
    let mut out = String::new();
    let mut filtered = Index {
        entries: index.filter_arch(arch).cloned().collect(),
    };
    if filtered.entries.is_empty() {
        no_specs(cfg, index, arch, &mut out);
        return out;
    }
    let local_only = cfg.settings.local_only();
    if let Some(wanted) = latest {
        let keys: Vec<String> = filtered
            .latest_aliases(wanted, local_only)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        filtered.entries = keys
            .iter()
            .filter_map(|k| filtered.get(k).map(|e| (k.clone(), e.clone())))
            .collect();
    }
    let iso_path = cfg.settings.get_str("iso_path");
    for (key, e) in &filtered.entries {
        let url = if !e.iso_url.is_empty() {
            e.iso_url.clone()
        } else {
            e.disk_image_url.clone().unwrap_or_default()
        };
        if url.is_empty() {
            continue;
        }
        let source = if e.iso_local || e.disk_image_local {
            match url.strip_prefix("file://") {
                Some(p) => p.to_string(),
                None => std::path::Path::new(&iso_path)
                    .join(filename_from_url(&url))
                    .to_string_lossy()
                    .into_owned(),
            }
        } else if !local_only && !url.starts_with("file://") {
            url
        } else {
            continue;
        };
        let _ = writeln!(out, "  {key:<30} {source}");
    }
    out
}

/// `--list-platforms`.
pub fn platforms(cfg: &Config) -> Result<String, ConfigError> {
    let mut out = String::from("Available platforms:\n");
    for (name, p) in cfg.platforms()? {
        let btype = p
            .get("config")
            .and_then(|c| c.get("type"))
            .map(py_str)
            .unwrap_or_else(|| "unknown".into());
        let arches: Vec<String> = p
            .get("arches")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(py_str).collect())
            .unwrap_or_default();
        let arches = if arches.is_empty() {
            "any".to_string()
        } else {
            arches.join(", ")
        };
        let _ = writeln!(out, "  {name:<14} {btype:<20} ({arches})");
    }
    Ok(out)
}

/// `--list-defs`.
pub fn defs_list(cfg: &Config) -> Result<String, ConfigError> {
    let mut out = String::from("Configuration defaults (~/.config/osimager/config.json):\n");
    let st = &cfg.settings.values;
    let mut conf: Vec<(&str, String)> = ["boot_disk_size", "cpu_cores", "cpu_sockets", "memory"]
        .iter()
        .map(|k| (*k, st.get(*k).map(py_str).unwrap_or_default()))
        .collect();
    conf.sort();
    for (k, v) in conf {
        let _ = writeln!(out, "  {k:<20} = {v}");
    }
    let mut all: Vec<(String, String, String)> = Vec::new();
    for (name, p) in cfg.platforms()? {
        for (k, v) in p
            .get("defs")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if !all.iter().any(|(x, _, _)| x == k) {
                all.push((k.clone(), py_str(v), name.clone()));
            }
        }
    }
    all.sort();
    out.push_str("\nPlatform defs:\n");
    for (k, v, src) in &all {
        let v = if v.chars().count() > 50 {
            format!("{}...", v.chars().take(47).collect::<String>())
        } else {
            v.clone()
        };
        let _ = writeln!(out, "  {k:<20} = {v:<50}  ({src})");
    }
    let computed = [
        ("arch", "from spec provides"),
        ("dist", "from spec provides"),
        ("dns1", "from location dns.servers"),
        ("dns_search", "from location dns.search"),
        ("domain", "from location"),
        ("fqdn", "name + domain"),
        ("gateway", "from location or CIDR"),
        ("ip", "CLI arg or DNS lookup"),
        ("iso_path", "from settings (default: /iso)"),
        ("iso_url", "from spec"),
        ("location", "from target"),
        ("major", "major version number"),
        ("minor", "minor version number"),
        ("name", "hostname or spec name"),
        ("netmask", "from CIDR prefix"),
        ("ntp1", "from location ntp.servers"),
        ("platform", "from target"),
        ("prefix", "from CIDR"),
        ("subnet", "from CIDR"),
        ("version", "from spec provides"),
        ("vms_path", "from location"),
    ];
    out.push_str("\nComputed defs:\n");
    for (k, d) in computed {
        if !all.iter().any(|(x, _, _)| x == k) {
            let _ = writeln!(out, "  {k:<20}   {d}");
        }
    }
    out.push_str("\nUse -D KEY=VALUE to override any def at build time.\n");
    out.push_str("Use -x PLATFORM/LOCATION/SPEC to see all resolved defs for a specific build.\n");
    Ok(out)
}

/// Python's `str.ljust` counts characters; Rust's `{:<N}` does too. Kept for clarity.
#[cfg(test)]
mod tests {
    #[test]
    fn widths_count_chars() {
        assert_eq!(format!("{:<4}|", "é"), "é   |");
    }
}
