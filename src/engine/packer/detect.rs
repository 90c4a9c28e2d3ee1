//! Finding Packer, asking its version, and knowing which template keys it cannot read.
//!
//! OSImager only checked `shutil.which(packer_cmd)`. We also run `packer version`, because the
//! Packer these machines can install (Debian's 1.6.6) predates several qemu builder keys that
//! current platforms use; a build with such a key fails late with a terse "unknown configuration
//! key". We say it up front and point at the native engine, which reads those keys itself.

use super::PackerError;
use crate::tools::which;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Packer version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PackerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for PackerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl PackerVersion {
    /// Parse the first line of `packer version` / `packer -v`: `Packer v1.6.6`, `1.10.0`,
    /// `Packer v1.9.4 (abcdef)`, `Packer v1.7.0-dev`.
    pub fn parse(text: &str) -> Option<PackerVersion> {
        let word = text.split_whitespace().find(|w| {
            w.trim_start_matches('v')
                .starts_with(|c: char| c.is_ascii_digit())
        })?;
        let core = word.trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().unwrap_or(Ok(0)).ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        Some(PackerVersion {
            major,
            minor,
            patch,
        })
    }
}

/// The Packer binary we will run.
#[derive(Debug, Clone)]
pub struct PackerInfo {
    /// The absolute path found (PATH lookup of the `packer_cmd` setting).
    pub path: PathBuf,
    /// `None` when `packer version` printed something we could not read.
    pub version: Option<PackerVersion>,
}

/// Find Packer (setting `packer_cmd`, default `packer`) and ask its version.
pub fn detect(packer_cmd: &str, path_var: Option<&OsStr>) -> Result<PackerInfo, PackerError> {
    let path =
        which(packer_cmd, path_var, Path::new(".")).ok_or_else(|| PackerError::PackerMissing {
            cmd: packer_cmd.to_string(),
        })?;
    let version = Command::new(&path)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            PackerVersion::parse(text.lines().next().unwrap_or(""))
        });
    Ok(PackerInfo { path, version })
}

/// qemu builder keys Packer 1.6.x does not know (checked against Packer 1.6.6's `packer
/// validate`, which reports each as "unknown configuration key"). They arrived with Packer 1.7+
/// and the external qemu plugin.
pub const QEMU_KEYS_NEWER_THAN_1_6: &[&str] = &[
    "boot_steps",
    "cd_content",
    "cores",
    "cpu_model",
    "firmware",
    "http_content",
    "sockets",
    "threads",
    "vga",
    "vtpm",
];

/// The builder keys of `builder` that Packer `version` cannot read, in template order.
pub fn unsupported_keys(builder: &Map<String, Value>, version: PackerVersion) -> Vec<String> {
    let is_qemu = builder.get("type").and_then(Value::as_str) == Some("qemu");
    let old = version
        < PackerVersion {
            major: 1,
            minor: 7,
            patch: 0,
        };
    if !(is_qemu && old) {
        return Vec::new();
    }
    builder
        .keys()
        .filter(|k| QEMU_KEYS_NEWER_THAN_1_6.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The first Packer that no longer bundles its own `ansible` provisioner (it loads the installed
/// ansible plugin, whose releases since 1.1.0 give the SSH proxy an ECDSA key).
pub const PROXY_WITHOUT_SSH_RSA_ONLY: PackerVersion = PackerVersion {
    major: 1,
    minor: 10,
    patch: 0,
};

/// Does the SSH proxy of this Packer's `ansible` provisioner offer only an `ssh-rsa` host key
/// (and accept only an `ssh-rsa` signed user key)? True for the bundled provisioner of every
/// Packer before 1.10 (1.6.6 included; packer-plugin-ansible moved to ECDSA keys in 1.1.0, June
/// 2023, after the last bundling releases were cut) and, to be safe, when the version is unknown.
/// OpenSSH 8.8 and later refuse `ssh-rsa` (RSA with SHA-1) unless asked to accept it.
pub fn proxy_offers_only_ssh_rsa(version: Option<PackerVersion>) -> bool {
    version.is_none_or(|v| v < PROXY_WITHOUT_SSH_RSA_ONLY)
}

/// Keys Packer itself reported as unknown in its output (`unknown configuration key: '"x"'`).
pub fn unknown_keys_in_output(output: &str) -> Vec<String> {
    let marker = "unknown configuration key:";
    let mut keys = Vec::new();
    for line in output.lines() {
        if let Some(pos) = line.find(marker) {
            let key: String = line[pos + marker.len()..]
                .chars()
                .filter(|c| !matches!(c, '\'' | '"' | ' '))
                .collect();
            if !key.is_empty() && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = PackerVersion::parse("Packer v1.6.6").unwrap();
        assert_eq!(v.to_string(), "1.6.6");
        assert_eq!(
            PackerVersion::parse("Packer v1.10.0-dev (abc)").unwrap(),
            PackerVersion {
                major: 1,
                minor: 10,
                patch: 0
            }
        );
        assert_eq!(PackerVersion::parse("1.9").unwrap().to_string(), "1.9.0");
        assert!(PackerVersion::parse("Packer").is_none());
    }

    #[test]
    fn old_qemu_keys() {
        let b: Map<String, Value> = serde_json::from_str(
            r#"{"type":"qemu","cpus":2,"firmware":"x","vga":"std","memory":512}"#,
        )
        .unwrap();
        let old = PackerVersion::parse("1.6.6").unwrap();
        let new = PackerVersion::parse("1.9.4").unwrap();
        assert_eq!(unsupported_keys(&b, old), vec!["firmware", "vga"]);
        assert!(unsupported_keys(&b, new).is_empty());
    }

    #[test]
    fn packer_not_in_path() {
        let path = std::ffi::OsString::from("/nonexistent-dir:/proc/self");
        assert!(which("packer", Some(&path), Path::new(".")).is_none());
        let err = detect("packer", Some(&path)).unwrap_err();
        assert!(err.to_string().starts_with("'packer' not found in PATH"));
        // The installed one is found and asked its version.
        let real = detect("packer", Some(std::ffi::OsStr::new("/usr/bin"))).unwrap();
        assert_eq!(
            real.version.map(|v| v.to_string()).as_deref(),
            Some("1.6.6")
        );
    }

    #[test]
    fn ssh_rsa_only_proxies() {
        let v = |s: &str| PackerVersion::parse(s);
        assert!(proxy_offers_only_ssh_rsa(v("Packer v1.6.6")));
        assert!(proxy_offers_only_ssh_rsa(v("1.9.4")));
        assert!(proxy_offers_only_ssh_rsa(None));
        assert!(!proxy_offers_only_ssh_rsa(v("1.10.0")));
        assert!(!proxy_offers_only_ssh_rsa(v("Packer v1.11.2")));
    }

    #[test]
    fn unknown_key_lines() {
        let out = "10 errors occurred:\n\t* unknown configuration key: '\"boot_steps\"'\n\
                   \t* unknown configuration key: '\"vga\"'\n";
        assert_eq!(unknown_keys_in_output(out), vec!["boot_steps", "vga"]);
    }
}
