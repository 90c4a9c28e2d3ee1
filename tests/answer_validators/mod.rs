//! The distributions' own validators, run over generated answer files (used by
//! tests/bundled_data.rs): pykickstart's `ksvalidator` for kickstart (the syntax version of the
//! target: RHEL8/9/10, F41…), `debconf-set-selections --checkonly` for Debian preseed,
//! `xmllint --noout` for XML well-formedness, and tests/data/validate_answers.py for the
//! structure of autoinstall (against cloud-init's JSON schema), autounattend, AutoYaST, Agama,
//! NoCloud meta-data and JSON files. Each file gets the tools of its kind; a missing tool is a
//! failure that says how to install it (scripts/setup-deps.sh), never a skip.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a generated file is, by the data file it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Kickstart,
    Preseed,
    CloudConfig,
    NocloudMeta,
    Autounattend,
    Autoyast,
    Agama,
    Json,
    Testos,
}

impl Kind {
    /// From the first source file (relative to files/) and the destination name.
    pub fn of(source: &str, dest: &str) -> Option<Kind> {
        Some(match source.split('/').next()? {
            "kickstart" => Kind::Kickstart,
            "debian" => Kind::Preseed,
            "ubuntu" if dest == "user-data" => Kind::CloudConfig,
            "ubuntu" if dest == "meta-data" => Kind::NocloudMeta,
            "windows" if dest.ends_with(".xml") => Kind::Autounattend,
            "suse" if dest.ends_with(".xml") => Kind::Autoyast,
            "suse" if source.ends_with("agama.json") => Kind::Agama,
            "testos" => Kind::Testos,
            _ if dest.ends_with(".json") => Kind::Json,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kickstart => "kickstart",
            Kind::Preseed => "preseed",
            Kind::CloudConfig => "autoinstall user-data",
            Kind::NocloudMeta => "NoCloud meta-data",
            Kind::Autounattend => "autounattend.xml",
            Kind::Autoyast => "AutoYaST profile",
            Kind::Agama => "Agama profile",
            Kind::Json => "JSON vars file",
            Kind::Testos => "testos answer file",
        }
    }

    /// The tools that check this kind (shown in the summary).
    pub fn tools(self) -> &'static str {
        match self {
            Kind::Kickstart => "ksvalidator -v <RHELn|Fnn> (pykickstart)",
            Kind::Preseed => "debconf-set-selections --checkonly (debconf)",
            Kind::CloudConfig => "cloud-init JSON schema (jsonschema) + autoinstall keys and types",
            Kind::NocloudMeta => "YAML parse + instance-id",
            Kind::Autounattend => "xmllint --noout + unattend structure",
            Kind::Autoyast => "xmllint --noout + AutoYaST structure and config:type values",
            Kind::Agama => "JSON parse + Agama profile keys and types",
            Kind::Json => "JSON parse + no empty values",
            Kind::Testos => "key=value + required keys (tests/testos/README.md)",
        }
    }

    fn py_kind(self) -> Option<&'static str> {
        Some(match self {
            Kind::CloudConfig => "cloud-config",
            Kind::NocloudMeta => "nocloud-meta",
            Kind::Autounattend => "autounattend",
            Kind::Autoyast => "autoyast",
            Kind::Agama => "agama",
            Kind::Json => "json",
            Kind::Testos => "testos",
            Kind::Kickstart | Kind::Preseed => return None,
        })
    }
}

/// One unique file to validate (written under the scratch dir).
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub path: PathBuf,
    /// ksvalidator's syntax version (kickstart only), e.g. RHEL9, F43.
    pub ks_version: Option<String>,
    pub arch: String,
    /// Where it came from (a target × platform × variant), for messages.
    pub origin: String,
}

fn need(p: PathBuf, what: &str) -> PathBuf {
    assert!(
        p.is_file(),
        "{} is missing: {what} (scripts/setup-deps.sh installs it)",
        p.display()
    );
    p
}

/// The cloud-init schema extracted from Debian's cloud-init package by scripts/setup-deps.sh.
pub fn cloud_init_schema(venv: &Path) -> PathBuf {
    need(
        venv.join("share/cloud-init/schema-cloud-config-v1.json"),
        "cloud-init's JSON schema (from the Debian package cloud-init)",
    )
}

fn output(cmd: &mut Command) -> (bool, String) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/setup-deps.sh installs it)"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Run every validator over `items`; returns the problems per file (empty = valid).
pub fn validate(items: &[Item], venv: &Path, scratch: &Path) -> BTreeMap<PathBuf, Vec<String>> {
    let mut found: BTreeMap<PathBuf, Vec<String>> =
        items.iter().map(|i| (i.path.clone(), Vec::new())).collect();
    // Kickstart: one ksvalidator run per syntax version, every file of that version.
    let ksvalidator = need(venv.join("bin/ksvalidator"), "pykickstart's ksvalidator");
    let mut by_version: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for i in items.iter().filter(|i| i.kind == Kind::Kickstart) {
        let v = i.ks_version.as_deref().expect("kickstart version");
        by_version.entry(v).or_default().push(i);
    }
    let ks = |v: &str, files: &[&Item]| {
        output(
            Command::new(venv.join("bin/python"))
                .arg(&ksvalidator)
                .args(["-v", v])
                .args(files.iter().map(|i| &i.path)),
        )
    };
    // ksvalidator prints "Checking kickstart file F" per file, its findings only at the end
    // (without the file name) and exits with the number of findings. One run per version;
    // when that finds anything, one run per file says which.
    let findings = |out: &str| -> Vec<String> {
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Checking kickstart file "))
            .map(str::to_string)
            .collect()
    };
    for (v, files) in by_version {
        let (ok, out) = ks(v, &files);
        let checked = out.matches("Checking kickstart file ").count();
        assert_eq!(
            checked,
            files.len(),
            "ksvalidator -v {v} did not check every file: {out}"
        );
        if ok && findings(&out).is_empty() {
            continue;
        }
        for i in files {
            let (ok, out) = ks(v, &[i]);
            let f = findings(&out);
            if !ok || !f.is_empty() {
                found
                    .get_mut(&i.path)
                    .unwrap()
                    .push(format!("ksvalidator -v {v}: {}", f.join(" / ")));
            }
        }
    }
    // Debian preseed: every line must be a valid debconf selection.
    for i in items.iter().filter(|i| i.kind == Kind::Preseed) {
        let (ok, out) = output(
            Command::new("debconf-set-selections")
                .arg("--checkonly")
                .arg(&i.path),
        );
        if !ok || !out.trim().is_empty() {
            found.get_mut(&i.path).unwrap().push(format!(
                "debconf-set-selections --checkonly: {}",
                out.trim()
            ));
        }
    }
    // XML: well-formed (xmllint), structure in the Python checks.
    let xml: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i.kind, Kind::Autounattend | Kind::Autoyast))
        .collect();
    for chunk in xml.chunks(200) {
        let (ok, out) = output(
            Command::new("xmllint")
                .arg("--noout")
                .args(chunk.iter().map(|i| &i.path)),
        );
        if !ok {
            for i in chunk {
                let mine: Vec<&str> = out
                    .lines()
                    .filter(|l| l.starts_with(&i.path.display().to_string()))
                    .collect();
                if !mine.is_empty() {
                    found
                        .get_mut(&i.path)
                        .unwrap()
                        .push(format!("xmllint: {}", mine.join(" / ")));
                }
            }
        }
    }
    // Structure checks, one Python process for all.
    let job: Vec<serde_json::Value> = items
        .iter()
        .filter_map(|i| {
            i.kind
                .py_kind()
                .map(|k| serde_json::json!({"kind": k, "path": i.path, "arch": i.arch}))
        })
        .collect();
    if !job.is_empty() {
        let job_file = scratch.join("validate-job.json");
        let res_file = scratch.join("validate-result.json");
        std::fs::write(&job_file, serde_json::to_string(&job).unwrap()).unwrap();
        let script = super::support::repo().join("tests/data/validate_answers.py");
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(&script).arg(&job_file).arg(&res_file);
        if job.iter().any(|j| j["kind"] == "cloud-config") {
            cmd.env("CLOUD_INIT_SCHEMA", cloud_init_schema(venv));
        }
        let (ok, out) = output(&mut cmd);
        assert!(ok, "{} failed: {out}", script.display());
        let res: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&res_file).unwrap()).unwrap();
        for r in res {
            let p = PathBuf::from(r["path"].as_str().unwrap());
            for e in r["errors"].as_array().unwrap() {
                found
                    .get_mut(&p)
                    .unwrap()
                    .push(e.as_str().unwrap().to_string());
            }
        }
    }
    found
}
