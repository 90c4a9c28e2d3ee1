//! What this host can build: hypervisors and their accelerator, the tools builds run
//! (qemu-img, ansible-playbook, Packer), the secret store, the ISO cache and the user's
//! locations. [`inspect`] returns a typed [`HostReport`] (serde): `osimager doctor` prints it,
//! `osimager init` writes a location from it, and a host endpoint of the build service can
//! return it as it is. Nothing here prints.

mod checks;
pub mod init;
mod secrets;
pub mod tools;

use crate::config::Config;
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Usable with a limit worth knowing (TCG instead of KVM, an old Packer, little disk space).
    Warn,
    /// Not installed or not set up; only what needs it is affected.
    Missing,
    /// Set up but broken (a refused Vault token, an unreadable secrets file): builds that need
    /// it fail.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "missing",
            Status::Error => "error",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier: `qemu`, `kvm`, `qemu-img`, `socat`, `ansible-playbook`, `packer`,
    /// `virtualbox`, `vmware`, `secrets`, `iso-cache`, `locations`, `data`.
    pub id: &'static str,
    pub status: Status,
    /// What was found, in one sentence.
    pub detail: String,
    /// What to do about it (absent when there is nothing to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The program or directory the check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The version the program reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Check {
    fn new(id: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            id,
            status,
            detail: detail.into(),
            fix: None,
            path: None,
            version: None,
        }
    }
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
    fn path(mut self, p: impl Into<PathBuf>) -> Check {
        self.path = Some(p.into());
        self
    }
    fn version(mut self, v: Option<String>) -> Check {
        self.version = v;
        self
    }
}

/// The QEMU accelerator a build on this host gets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Accelerator {
    /// `/dev/kvm` exists.
    pub kvm_present: bool,
    /// A probe guest ran under KVM (drivers' `kvm_usable`); false when not probed.
    pub kvm_usable: bool,
    /// `kvm` or `tcg`.
    pub name: String,
    /// Why (the probe's reason, or "not probed").
    pub reason: String,
}

/// A platform this host can build, and how.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Buildable {
    /// OSImager platform name (`qemu`, `virtualbox`, `vmware`).
    pub platform: String,
    /// `native` or `packer`.
    pub engine: String,
    /// `kvm`/`tcg` for qemu; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub accelerator: String,
}

/// Everything [`inspect`] found.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// Host CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    pub accelerator: Accelerator,
    pub checks: Vec<Check>,
    /// The local platforms builds can use now (cloud and remote platforms are not listed: they
    /// need accounts, not host software).
    pub can_build: Vec<Buildable>,
}

impl HostReport {
    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The local hypervisor platforms found (what `osimager init` puts in a location).
    pub fn hypervisors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, platform) in [
            ("qemu", "qemu"),
            ("virtualbox", "virtualbox"),
            ("vmware", "vmware"),
        ] {
            if self
                .check(id)
                .is_some_and(|c| matches!(c.status, Status::Ok | Status::Warn))
            {
                out.push(platform.to_string());
            }
        }
        out
    }

    /// True when a check is `Error` (something set up is broken).
    pub fn has_errors(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Error)
    }
}

/// What to inspect.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Boot the KVM probe guest (a few seconds at most) when `/dev/kvm` exists.
    pub probe_kvm: bool,
    /// Contact the secret store (Vault: connect and check the token; read `images/linux`).
    pub check_secrets: bool,
    /// The PATH tools are looked up in (default: this process's).
    pub path: Option<OsString>,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            probe_kvm: true,
            check_secrets: true,
            path: std::env::var_os("PATH"),
        }
    }
}

/// Inspect this host for `cfg`'s settings (packer_cmd, credential_source, Vault, ISO paths).
pub fn inspect(cfg: &Config, opts: &InspectOptions) -> HostReport {
    let path = opts.path.as_deref();
    let arch = std::env::consts::ARCH.to_string();
    let mut checks = Vec::new();
    let qemu = checks::qemu(&arch, path);
    let accelerator = checks::accelerator(qemu.path.as_deref(), opts.probe_kvm);
    checks.push(qemu);
    checks.push(checks::kvm_check(&accelerator));
    checks.push(checks::qemu_img(path));
    checks.push(checks::socat(path));
    checks.push(checks::ansible(path));
    checks.push(checks::packer(&cfg.settings.get_str("packer_cmd"), path));
    checks.push(checks::virtualbox(path));
    checks.push(checks::vmware(path));
    checks.push(secrets::check(cfg, opts.check_secrets));
    checks.push(checks::iso_cache(cfg));
    checks.push(checks::locations(cfg));
    checks.push(checks::data_tree(cfg));
    let can_build = checks::buildable(&checks, &accelerator);
    HostReport {
        arch,
        accelerator,
        checks,
        can_build,
    }
}
