//! Finding host programs (`packer`, `ansible-playbook`, `sshpass`, `python3`, …) the way a shell
//! does, in a given PATH: the build's, which need not be this process's.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Look `cmd` up like `shutil.which`: a name containing `/` is a path (relative to `cwd`),
/// anything else is searched in `path_var`. Only executable regular files count.
pub fn which(cmd: &str, path_var: Option<&OsStr>, cwd: &Path) -> Option<PathBuf> {
    if cmd.is_empty() {
        return None;
    }
    if cmd.contains('/') {
        let p = cwd.join(cmd);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(cmd))
        .find(|p| is_executable(p))
}

/// An executable regular file.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_the_given_path_only() {
        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("tool");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let data = d.path().join("data");
        std::fs::write(&data, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = d.path().as_os_str();
        assert_eq!(
            which("tool", Some(path), Path::new("/")),
            Some(prog.clone())
        );
        assert_eq!(
            which("data", Some(path), Path::new("/")),
            None,
            "not executable"
        );
        assert_eq!(which("tool", None, Path::new("/")), None);
        assert_eq!(
            which("./tool", None, d.path()),
            Some(d.path().join("./tool"))
        );
        assert_eq!(which("", Some(path), Path::new("/")), None);
    }
}
