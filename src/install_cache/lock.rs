//! `flock(2)` locks on files, released when the [`Locked`] value is dropped (or the process
//! dies: the kernel drops them with the file descriptor, so a crashed build never leaves a
//! cache entry locked).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A file held under `flock`.
#[derive(Debug)]
pub struct Locked {
    _file: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Many holders (a build using an entry).
    Shared,
    /// One holder (removing or replacing an entry; committing).
    Exclusive,
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

fn flock(f: &File, mode: Mode, wait: bool) -> std::io::Result<bool> {
    let mut op = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Lock `path` (created if missing), waiting for other holders.
pub fn lock(path: &Path, mode: Mode) -> std::io::Result<Locked> {
    let f = open(path)?;
    flock(&f, mode, true)?;
    Ok(Locked { _file: f })
}

/// Lock the directory `dir` exclusively, waiting for other holders: for updates of a file in
/// it that must not interleave, without leaving a lock file next to it.
pub fn lock_dir(dir: &Path) -> std::io::Result<Locked> {
    let f = File::open(dir)?;
    flock(&f, Mode::Exclusive, true)?;
    Ok(Locked { _file: f })
}

/// Lock `path` if nobody holds it in a conflicting mode now; `None` otherwise.
pub fn try_lock(path: &Path, mode: Mode) -> std::io::Result<Option<Locked>> {
    let f = open(path)?;
    Ok(flock(&f, mode, false)?.then_some(Locked { _file: f }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_excludes_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let a = lock(&p, Mode::Shared).unwrap();
        let b = try_lock(&p, Mode::Shared).unwrap();
        assert!(b.is_some());
        assert!(try_lock(&p, Mode::Exclusive).unwrap().is_none());
        drop(a);
        assert!(try_lock(&p, Mode::Exclusive).unwrap().is_none());
        drop(b);
        assert!(try_lock(&p, Mode::Exclusive).unwrap().is_some());
    }
}
