//! Errors of the Packer engine. Each says what went wrong and what to do about it.

use super::detect::PackerVersion;
use super::preflight::MissingFile;
use crate::hooks::HookError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error(
        "'{cmd}' not found in PATH: the Packer engine needs Packer.\n  \
         Install it (https://developer.hashicorp.com/packer/install) or point the setting at it: \
         osimager --set packer_cmd=/path/to/packer\n  \
         Or build without Packer: osimager build --engine native …"
    )]
    PackerMissing { cmd: String },

    #[error(
        "Packer {version} ({path}) cannot read the {builder} builder key(s) {keys} this build uses \
         (they need Packer 1.7 or newer with its qemu plugin).\n  \
         Use the native engine, which reads them itself: osimager build --engine native …\n  \
         Or install a newer Packer and set packer_cmd to it"
    , keys = .keys.join(", "))]
    PackerTooOld {
        version: PackerVersion,
        path: PathBuf,
        builder: String,
        keys: Vec<String>,
    },

    #[error(
        "the builder uses cd_files, but none of xorriso, mkisofs, hdiutil, oscdimg is in PATH; \
         Packer needs one of them to make the CD (Debian: apt-get install xorriso)"
    )]
    IsoToolMissing,

    #[error("{}\nBuild cannot proceed without the required files listed above.",
        .missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("\n\n"))]
    RequiredFilesMissing { missing: Vec<MissingFile> },

    #[error(
        "ISO file not found: {path} (spec {spec}).\n  \
         The ISO for this version is not available for download.\n  \
         You must obtain the ISO and place it at: {path}", path = .path.display()
    )]
    IsoMissing { path: PathBuf, spec: String },

    #[error(
        "ISO URL returned 404 (not found): {url} (spec {spec}).\n  \
         The ISO may have been moved or removed from this location; check the spec's iso_url \
         or put the ISO in iso_path and use --local"
    )]
    IsoNotFound { url: String, spec: String },

    #[error(
        "Packer would download the ISO to {path} (builder key iso_target_path), but {dir} is \
         not writable for this user, so the download would fail.\n  \
         Point the setting iso_path at a writable directory: osimager config set iso_path=DIR \
         (or -D iso_path=DIR)", path = .path.display(), dir = .dir.display()
    )]
    IsoTargetNotWritable { path: PathBuf, dir: PathBuf },

    #[error(
        "post-install requires Ansible {version}, but there is no venv at {path}.\n  \
         Create the venv with: osimager venv {version}   (or: mkvenv {version})\n  \
         Or skip post-install with: --skip", path = .path.display()
    )]
    VenvMissing { version: String, path: PathBuf },

    #[error("generating the spec's files into {dir}: {message}", dir = .dir.display())]
    Generate { dir: PathBuf, message: String },

    #[error(transparent)]
    Hook(#[from] HookError),

    #[error("{what} {path}: {source}", path = .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },

    #[error(
        "build does not have a communicator defined (builder key `communicator`); \
             retrofit connects to the machine through it"
    )]
    NoCommunicator,

    #[error("interrupted by {reason} (Packer exited with code {code} after cleaning up)")]
    Cancelled { reason: String, code: i32 },

    #[error("{0}")]
    Internal(String),

    #[error("packer build failed with exit code {code}{}", hint(.version, .unknown_keys))]
    BuildFailed {
        code: i32,
        version: Option<PackerVersion>,
        unknown_keys: Vec<String>,
    },
}

fn hint(version: &Option<PackerVersion>, keys: &[String]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let v = version
        .map(|v| format!("Packer {v}"))
        .unwrap_or_else(|| "this Packer".into());
    format!(
        "\n  {v} does not know the builder key(s) {}: use --engine native, or a newer Packer \
         (packer_cmd)",
        keys.join(", ")
    )
}

impl PackerError {
    /// What kind of failure this is, for front ends and servers.
    pub fn kind(&self) -> osimager_events::ErrorKind {
        use osimager_events::ErrorKind as K;
        match self {
            PackerError::PackerMissing { .. }
            | PackerError::PackerTooOld { .. }
            | PackerError::IsoToolMissing
            | PackerError::VenvMissing { .. }
            | PackerError::NoCommunicator
            | PackerError::Hook(_) => K::Configuration,
            PackerError::RequiredFilesMissing { .. }
            | PackerError::IsoMissing { .. }
            | PackerError::IsoNotFound { .. }
            | PackerError::IsoTargetNotWritable { .. } => K::BadInput,
            PackerError::Cancelled { .. } => K::Cancelled,
            PackerError::BuildFailed { .. } => K::Hypervisor,
            PackerError::Generate { .. }
            | PackerError::Io { .. }
            | PackerError::Spawn { .. }
            | PackerError::Internal(_) => K::Internal,
        }
    }

    /// The process exit code the CLI should use (Packer's own code when Packer failed).
    pub fn exit_code(&self) -> i32 {
        match self {
            PackerError::BuildFailed { code, .. } if *code != 0 => *code,
            PackerError::Cancelled { code, .. } if *code != 0 => *code,
            PackerError::Hook(HookError::Stopped { code, .. }) if *code != 0 => *code,
            _ => 1,
        }
    }
}
