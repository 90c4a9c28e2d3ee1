//! Finding host tools and asking their version, without hanging on a tool that does not answer.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a `--version` may take (ansible-playbook starts Python: about a second).
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// `which`: the first executable `name` in `path_var` (a name with `/` is taken as a path).
pub fn which(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    crate::tools::which(name, path_var, Path::new("."))
}

/// The first non-empty line `program args…` prints (stdout, else stderr), or `None` when it
/// cannot run, fails, or takes longer than [`VERSION_TIMEOUT`].
pub fn version_line(program: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return None;
    }
    out.lines()
        .chain(err.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Free bytes on the file system holding `dir` (its nearest existing ancestor).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let mut p = dir;
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// `12.3 GiB`.
pub fn human_bytes(n: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let g = n as f64 / GIB;
    if g >= 1.0 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", n as f64 / 1024.0 / 1024.0)
    }
}

/// Files in `dir` (not recursive) whose name ends with `.iso`.
pub fn count_isos(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .to_ascii_lowercase()
                        .ends_with(".iso")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Whether this process could create files in `dir` (or, when it does not exist yet, create it).
pub fn writable(dir: &Path) -> bool {
    let mut p = dir;
    while !p.exists() {
        match p.parent() {
            Some(q) => p = q,
            None => return false,
        }
    }
    let c = match std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
        Ok(c) => c,
        Err(_) => return false,
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_space() {
        let sh = which("sh", Some(OsStr::new("/usr/bin:/bin"))).unwrap();
        assert_eq!(
            version_line(&sh, &["-c", "echo; echo '  v1.2 '"]).as_deref(),
            Some("v1.2")
        );
        assert_eq!(version_line(&sh, &["-c", "exit 3"]), None);
        assert!(which("no-such-tool-xyz", Some(OsStr::new("/usr/bin"))).is_none());
        assert!(free_bytes(Path::new("/tmp/does/not/exist")).unwrap() > 0);
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5 MiB");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.ISO"), "").unwrap();
        std::fs::write(d.path().join("b.img"), "").unwrap();
        assert_eq!(count_isos(d.path()), 1);
        assert!(writable(&d.path().join("new/sub")));
    }
}
