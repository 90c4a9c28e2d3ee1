//! First run (`osimager init`): a location for the hypervisors this host has, and the image
//! account in a 0600 secrets file. The CLI asks the questions and prints; this module decides
//! what to write and writes it.

use super::HostReport;
use crate::secret::Secret;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use super::secrets::IMAGE_ACCOUNT;

/// Why `init` could not write something. Each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "location name '{0}' is not usable: it is the middle part of PLATFORM/LOCATION/SPEC, so \
         use letters, digits, '-' and '_' only (e.g. --location home)"
    )]
    BadLocationName(String),
    #[error(
        "no hypervisor found on this host (QEMU, VirtualBox, VMware): install QEMU (e.g. `sudo \
         apt-get install qemu-system-x86 qemu-utils`), then run `osimager init` again; \
         `osimager doctor` shows what was looked for"
    )]
    NoHypervisor,
    #[error(
        "unknown platform '{0}' for --platform: a location written by init is for the local \
         hypervisors qemu, virtualbox and vmware"
    )]
    BadPlatform(String),
    #[error(
        "{} already exists: pass --force to replace it, or --location NAME to write another \
         location", .0.display()
    )]
    LocationExists(PathBuf),
    #[error(
        "image account user name {0:?} is not usable: it must be non-empty without spaces or \
         '=' (the secrets file is `path key=value …`)"
    )]
    BadUsername(String),
    #[error(
        "the image account password is not usable: {0} (the secrets file is `path key=value …`, \
         split at whitespace)"
    )]
    BadPassword(&'static str),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the location should hold.
#[derive(Debug, Clone, Default)]
pub struct LocationOptions {
    /// Location name (`local`).
    pub name: String,
    /// Platforms to allow; empty = the hypervisors found ([`HostReport::hypervisors`]).
    pub platforms: Vec<String>,
    /// QEMU guests may reach only this host: user networking with `restrict=on`, the build's
    /// HTTP server forwarded into the guest at 10.0.2.2 through socat, SSH through hostfwd.
    pub isolated_network: bool,
}

/// Check a location name (`[A-Za-z0-9_-]+`).
pub fn check_location_name(name: &str) -> Result<(), InitError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(InitError::BadLocationName(name.to_string()))
    }
}

/// The location document for this host: the platforms found, and for QEMU the accelerator the
/// host can use (`tcg` where KVM is absent or unusable, so neither engine tries KVM and hangs),
/// with `qemu64` as the TCG CPU model (docs/DATA.md: `max` is 25–70 % slower under TCG).
pub fn location_for(report: &HostReport, opts: &LocationOptions) -> Result<Value, InitError> {
    check_location_name(&opts.name)?;
    let platforms = if opts.platforms.is_empty() {
        report.hypervisors()
    } else {
        for p in &opts.platforms {
            if !["qemu", "virtualbox", "vmware"].contains(&p.as_str()) {
                return Err(InitError::BadPlatform(p.clone()));
            }
        }
        opts.platforms.clone()
    };
    if platforms.is_empty() {
        return Err(InitError::NoHypervisor);
    }
    let a = &report.accelerator;
    let mut comment = format!(
        "Written by `osimager init` for this host ({}): platforms {}.",
        report.arch,
        platforms.join(", ")
    );
    let mut defs = Map::new();
    let mut config = Map::new();
    if platforms.iter().any(|p| p == "qemu") {
        defs.insert("qemu_accelerator".into(), json!(a.name));
        if a.name == "tcg" {
            defs.insert("qemu_cpu".into(), json!("qemu64"));
            comment.push_str(&format!(
                " QEMU uses TCG ({}) with the qemu64 CPU model; set qemu_accelerator to kvm \
                 once KVM works (`osimager doctor` checks).",
                a.reason
            ));
        } else {
            comment.push_str(" QEMU uses KVM.");
        }
        if opts.isolated_network {
            comment.push_str(
                " QEMU guests reach only this host: user networking with restrict=on, the \
                 build's HTTP server forwarded to 10.0.2.2 through socat, SSH through hostfwd.",
            );
            config.insert(
                "qemuargs".into(),
                json!([
                    ["-cpu", ">>qemu_cpu<<"],
                    [
                        "-netdev",
                        "user,id=user.0,restrict=on,host=10.0.2.254,\
                     hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22,\
                     guestfwd=tcp:10.0.2.2:{{ .HTTPPort }}-cmd:socat STDIO \
                     TCP:127.0.0.1:{{ .HTTPPort }}"
                    ]
                ]),
            );
        }
    }
    comment.push_str(" Edit freely: docs/DATA.md lists what a location can set.");
    let mut doc = Map::new();
    doc.insert("_comment".into(), json!(comment));
    doc.insert("platforms".into(), json!(platforms));
    if !defs.is_empty() {
        doc.insert("defs".into(), Value::Object(defs));
    }
    if !config.is_empty() {
        doc.insert("config".into(), Value::Object(config));
    }
    Ok(Value::Object(doc))
}

/// Write `<user_dir>/locations/<name>.json` (refuses to replace one unless `force`).
pub fn write_location(
    user_dir: &Path,
    name: &str,
    doc: &Value,
    force: bool,
) -> Result<PathBuf, InitError> {
    check_location_name(name)?;
    let dir = user_dir.join("locations");
    let path = dir.join(format!("{name}.json"));
    let toml = dir.join(format!("{name}.toml"));
    for p in [&path, &toml] {
        if p.exists() && !force {
            return Err(InitError::LocationExists(p.clone()));
        }
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let text = serde_json::to_string_pretty(doc).expect("a JSON value serialises") + "\n";
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(path)
}

/// Check the image account's user name and password for the secrets file format.
pub fn check_account(username: &str, password: &Secret) -> Result<(), InitError> {
    if username.is_empty() || username.contains(char::is_whitespace) || username.contains('=') {
        return Err(InitError::BadUsername(username.to_string()));
    }
    let pw = password.expose();
    if pw.is_empty() {
        return Err(InitError::BadPassword("it is empty"));
    }
    if pw.contains(char::is_whitespace) {
        return Err(InitError::BadPassword("it contains whitespace"));
    }
    Ok(())
}

/// Whether the secrets file already has the image account.
pub fn has_image_account(secrets: &Path) -> bool {
    crate::config::secrets::FileSecrets::load(secrets)
        .map(|f| f.paths().any(|p| p == IMAGE_ACCOUNT))
        .unwrap_or(false)
}

/// What [`write_image_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountWrite {
    /// The file did not exist and was created.
    Created,
    /// The file existed; the image account line was added or replaced, other lines kept.
    Updated,
}

/// Put `images/linux username=U password=P` into the secrets file (mode 0600, replacing an
/// earlier `images/linux` line and keeping every other line). Written to a temporary file in
/// the same directory first, then renamed, so a failure never leaves half a file.
pub fn write_image_account(
    secrets: &Path,
    username: &str,
    password: &Secret,
) -> Result<AccountWrite, InitError> {
    check_account(username, password)?;
    let dir = secrets.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let existing = match std::fs::read_to_string(secrets) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(secrets)(e)),
    };
    let line = format!(
        "{IMAGE_ACCOUNT} username={username} password={}",
        password.expose()
    );
    let mut out = String::new();
    let mut replaced = false;
    for l in existing.as_deref().unwrap_or("").lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first == IMAGE_ACCOUNT {
            if !replaced {
                out.push_str(&line);
                out.push('\n');
                replaced = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if existing.is_none() {
        out.push_str(
            "# osimager secrets (credential_source=config): `path key=value …` per line.\n\
             # docs/DATA.md (Secrets) lists the paths and keys specs read.\n",
        );
    }
    if !replaced {
        out.push_str(&line);
        out.push('\n');
    }
    let tmp = dir.join(".secrets.osimager-init");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let written = f
        .write_all(out.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)))
        .and_then(|_| std::fs::rename(&tmp, secrets));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(secrets)(e));
    }
    Ok(if existing.is_some() {
        AccountWrite::Updated
    } else {
        AccountWrite::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Accelerator, HostReport};

    fn report(kvm: bool) -> HostReport {
        HostReport {
            arch: "x86_64".into(),
            accelerator: Accelerator {
                kvm_present: true,
                kvm_usable: kvm,
                name: if kvm { "kvm" } else { "tcg" }.into(),
                reason: "probe".into(),
            },
            checks: vec![super::super::Check::new(
                "qemu",
                super::super::Status::Ok,
                "found",
            )],
            can_build: Vec::new(),
        }
    }

    #[test]
    fn location_for_tcg_and_isolated() {
        let opts = LocationOptions {
            name: "local".into(),
            isolated_network: true,
            ..Default::default()
        };
        let doc = location_for(&report(false), &opts).unwrap();
        assert_eq!(doc["platforms"], json!(["qemu"]));
        assert_eq!(doc["defs"]["qemu_accelerator"], "tcg");
        assert_eq!(doc["defs"]["qemu_cpu"], "qemu64");
        let net = doc["config"]["qemuargs"][1][1].as_str().unwrap();
        assert!(
            net.contains("restrict=on") && net.contains("{{ .HTTPPort }}"),
            "{net}"
        );
        let doc = location_for(
            &report(true),
            &LocationOptions {
                name: "l".into(),
                ..opts
            },
        )
        .unwrap();
        assert_eq!(doc["defs"]["qemu_accelerator"], "kvm");
        assert!(doc["defs"].get("qemu_cpu").is_none());
        let bad = LocationOptions {
            name: "a/b".into(),
            ..Default::default()
        };
        assert!(matches!(
            location_for(&report(true), &bad),
            Err(InitError::BadLocationName(_))
        ));
    }

    #[test]
    fn image_account_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("osimager/secrets");
        let pw = Secret::new("init-test-pw-1");
        assert_eq!(
            write_image_account(&f, "admin", &pw).unwrap(),
            AccountWrite::Created
        );
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(has_image_account(&f));
        let mut text = std::fs::read_to_string(&f).unwrap();
        text.push_str("vsphere/lab server=v username=u password=p\n");
        std::fs::write(&f, text).unwrap();
        let pw2 = Secret::new("init-test-pw-2");
        assert_eq!(
            write_image_account(&f, "root", &pw2).unwrap(),
            AccountWrite::Updated
        );
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("images/linux username=root password=init-test-pw-2\n"));
        assert!(!text.contains("init-test-pw-1"));
        assert!(text.contains("vsphere/lab server=v"));
        assert!(matches!(
            write_image_account(&f, "a b", &pw2),
            Err(InitError::BadUsername(_))
        ));
        assert!(matches!(
            write_image_account(&f, "a", &Secret::new("x y z")),
            Err(InitError::BadPassword(_))
        ));
    }
}
