//! What the host has: CPUs, memory, disk (Linux `/proc` and `statvfs`).

use serde::Serialize;
use std::path::Path;

/// Memory, bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`.
    pub available: u64,
}

/// A file system, bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// The directory it was asked for (the state dir).
    pub path: String,
    /// Size.
    pub total: u64,
    /// Free for an unprivileged user.
    pub available: u64,
}

/// CPUs.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// Logical CPUs this process may use.
    pub count: usize,
    /// The model name (`/proc/cpuinfo`).
    pub model: Option<String>,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
}

/// A program on PATH.
pub fn which(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// `/proc/meminfo`.
pub fn memory() -> Option<Memory> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        total: field("MemTotal:")?,
        available: field("MemAvailable:")?,
    })
}

/// The CPUs and the load.
pub fn cpu() -> Cpu {
    let count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let mut load = [0.0; 3];
    if let Ok(t) = std::fs::read_to_string("/proc/loadavg") {
        for (i, v) in t.split_whitespace().take(3).enumerate() {
            load[i] = v.parse().unwrap_or(0.0);
        }
    }
    Cpu { count, model, load }
}

/// The file system holding `path`.
pub fn disk(path: &Path) -> Option<Disk> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some(Disk {
        path: path.to_string_lossy().into_owned(),
        total: st.f_blocks as u64 * frag,
        available: st.f_bavail as u64 * frag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = memory().expect("/proc/meminfo");
        assert!(m.total > 0 && m.available <= m.total);
        assert!(cpu().count >= 1);
        let d = disk(Path::new("/")).expect("statvfs /");
        assert!(d.total > 0 && d.available <= d.total);
        assert!(disk(Path::new("/no/such/dir")).is_none());
    }
}
