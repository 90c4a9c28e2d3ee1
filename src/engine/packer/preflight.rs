//! Checks OSImager's `run_packer` makes before Packer starts: required files, the ISO tool for
//! `cd_files`, and the ISO URL (a missing `file://` ISO or an HTTP 404 stops the build; any other
//! network trouble is left to Packer, which retries).

use super::PackerError;
use crate::plan::BuildPlan;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `required_files` entry that is not present in any data layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingFile {
    pub file: String,
    pub description: String,
    pub url: String,
    /// Where to put it: `<user_dir>/files/<location>`.
    pub place_in: PathBuf,
}

impl std::fmt::Display for MissingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "error: required file not found: {}", self.file)?;
        write!(f, "  Description: {}", self.description)?;
        if !self.url.is_empty() {
            write!(f, "\n  Download from: {}", self.url)?;
        }
        write!(f, "\n  Place it in: {}", self.place_in.display())
    }
}

/// A required-file entry as OSImager writes it: `{"file", "description", "url", "location"}`;
/// a bare string is the `file`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequiredFile {
    pub file: String,
    pub description: String,
    pub url: String,
    pub location: String,
}

impl RequiredFile {
    pub fn from_value(v: &Value) -> Option<RequiredFile> {
        match v {
            Value::String(s) => Some(RequiredFile {
                file: s.clone(),
                ..Default::default()
            }),
            Value::Object(m) => {
                let get = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                Some(RequiredFile {
                    file: get("file"),
                    description: get("description"),
                    url: get("url"),
                    location: get("location"),
                })
            }
            _ => None,
        }
    }
}

/// The plan's required files. Entries may be plain paths or the JSON text of an OSImager entry.
pub fn required_files(plan: &BuildPlan) -> Vec<RequiredFile> {
    plan.required_files
        .iter()
        .filter_map(|s| {
            if s.trim_start().starts_with('{') {
                serde_json::from_str::<Value>(s)
                    .ok()
                    .and_then(|v| RequiredFile::from_value(&v))
            } else {
                RequiredFile::from_value(&Value::String(s.clone()))
            }
        })
        .collect()
}

/// Check every required file through `resolve("files/<file>")` (user layer, then bundled).
pub fn check_required_files(
    files: &[RequiredFile],
    user_dir: &Path,
    resolve: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<(), PackerError> {
    let missing: Vec<MissingFile> = files
        .iter()
        .filter(|rf| resolve(&format!("files/{}", rf.file)).is_none())
        .map(|rf| {
            let location = if rf.location.is_empty() {
                Path::new(&rf.file)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            } else {
                rf.location.clone()
            };
            MissingFile {
                file: rf.file.clone(),
                description: if rf.description.is_empty() {
                    rf.file.clone()
                } else {
                    rf.description.clone()
                },
                url: rf.url.clone(),
                place_in: user_dir.join("files").join(location),
            }
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PackerError::RequiredFilesMissing { missing })
    }
}

/// Packer builds `cd_files` with xorriso, mkisofs, hdiutil or oscdimg (whichever it finds first).
/// OSImager insisted on mkisofs; we accept what Packer accepts.
pub fn check_cd_tool(
    builder_json: &str,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<(), PackerError> {
    if !builder_json.contains("\"cd_files\"") {
        return Ok(());
    }
    let tools = ["xorriso", "mkisofs", "hdiutil", "oscdimg"];
    if tools
        .iter()
        .any(|t| crate::tools::which(t, path_var, Path::new(".")).is_some())
    {
        Ok(())
    } else {
        Err(PackerError::IsoToolMissing)
    }
}

/// Does the builder reference an ISO (OSImager's `uses_iso`)?
pub fn uses_iso(builder_json: &str) -> bool {
    ["iso_url", "iso_urls", "iso_file"]
        .iter()
        .any(|k| builder_json.contains(&format!("\"{k}\"")))
}

pub use crate::urlname::filename_from_url;

/// OSImager's `check_iso_local`: a `file://` ISO that exists, or `<iso_path>/<file name>`.
pub fn iso_is_local(iso_url: &str, iso_path: &str) -> bool {
    if iso_url.is_empty() {
        return false;
    }
    if let Some(p) = iso_url.strip_prefix("file://") {
        return Path::new(p).is_file();
    }
    let name = filename_from_url(iso_url);
    !name.is_empty() && !iso_path.is_empty() && Path::new(iso_path).join(name).is_file()
}

/// OSImager's `check_iso_url` for `defs.iso_url`.
pub fn check_iso_url(plan: &BuildPlan) -> Result<(), PackerError> {
    let def = |k: &str| plan.defs.get(k).and_then(Value::as_str).unwrap_or("");
    let iso_url = def("iso_url");
    let spec = if def("spec_name").is_empty() {
        "unknown"
    } else {
        def("spec_name")
    };
    if let Some(p) = iso_url.strip_prefix("file://") {
        if !Path::new(p).exists() {
            return Err(PackerError::IsoMissing {
                path: PathBuf::from(p),
                spec: spec.to_string(),
            });
        }
    } else if iso_url.starts_with("http://") || iso_url.starts_with("https://") {
        if iso_is_local(iso_url, def("iso_path")) {
            return Ok(());
        }
        if let Ok(404) = super::urls::head_status(iso_url, Duration::from_secs(15)) {
            return Err(PackerError::IsoNotFound {
                url: iso_url.to_string(),
                spec: spec.to_string(),
            });
        }
    }
    Ok(())
}

/// Packer downloads the ISO to `iso_target_path` and creates its directory; a directory it
/// cannot create or write (the default setting `iso_path` is `/iso`, which a non-root user
/// cannot create) fails only after Packer has started. Checked here instead, unless the ISO is
/// already there.
pub fn check_iso_target(builder: &serde_json::Map<String, Value>) -> Result<(), PackerError> {
    let Some(target) = builder
        .get("iso_target_path")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty() && !t.contains("{{"))
    else {
        return Ok(());
    };
    let path = PathBuf::from(target);
    if path.is_file() {
        return Ok(());
    }
    let Some(dir) = path.parent().map(Path::to_path_buf) else {
        return Ok(());
    };
    // The first directory that exists is where Packer must be able to create entries.
    let existing = dir
        .ancestors()
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if writable(&existing) {
        Ok(())
    } else {
        Err(PackerError::IsoTargetNotWritable {
            path,
            dir: existing,
        })
    }
}

fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names() {
        assert_eq!(
            filename_from_url("https://h/x/Rocky%20Linux.iso?x=1"),
            "Rocky-Linux.iso"
        );
        assert_eq!(filename_from_url("http://h"), "");
    }

    #[test]
    fn iso_target_dir_must_be_creatable() {
        let dir = tempfile::tempdir().unwrap();
        let b = |t: &str| {
            serde_json::json!({"type": "qemu", "iso_target_path": t})
                .as_object()
                .unwrap()
                .clone()
        };
        let nested = dir.path().join("a/b/x.iso");
        assert!(check_iso_target(&b(&nested.display().to_string())).is_ok());
        assert!(check_iso_target(&serde_json::Map::new()).is_ok());
        // A read-only directory (as /iso's parent is for a non-root user). Root may write
        // anywhere, so only the error text is checked there.
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let target = ro.join("iso/x.iso");
        match check_iso_target(&b(&target.display().to_string())) {
            Ok(()) => assert!(writable(&ro), "root bypasses the mode"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(&ro.display().to_string()), "{text}");
                assert!(text.contains("osimager config set iso_path="), "{text}");
            }
        }
        // An ISO already in place is used as it is.
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(ro.join("iso")).unwrap();
        std::fs::write(&target, "iso").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert!(check_iso_target(&b(&target.display().to_string())).is_ok());
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn required_missing_message() {
        let files = vec![RequiredFile {
            file: "esxi/tools.vib".into(),
            description: "VMware Tools".into(),
            url: "https://example.invalid/dl".into(),
            location: "esxi/".into(),
        }];
        let err = check_required_files(&files, Path::new("/home/u/.config/osimager"), &|_| None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("required file not found: esxi/tools.vib"));
        assert!(text.contains("Download from: https://example.invalid/dl"));
        assert!(text.contains("Place it in: /home/u/.config/osimager/files/esxi/"));
    }
}
