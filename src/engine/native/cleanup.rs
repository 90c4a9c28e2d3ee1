//! The undo stack: every step pushes what it created the moment it creates it; on failure,
//! timeout or signal the entries are undone in reverse order (or, with `--on-error abort`,
//! listed so the user can inspect them).

use std::path::PathBuf;

/// Something the build created that must be undone if the build does not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// A directory the build created (temp dir, staging output dir).
    RemoveDir(PathBuf),
    /// The embedded HTTP server.
    StopHttp,
    /// The VM's registration and disks (driver `destroy`): created but maybe not running.
    DestroyVm,
    /// The running VM (driver `force_stop` then `destroy`).
    StopVm,
    /// The SSH session to the guest.
    CloseSsh,
}

impl Undo {
    /// Human description for logs and the `--on-error abort` report.
    pub fn describe(&self) -> String {
        match self {
            Undo::RemoveDir(p) => format!("directory {}", p.display()),
            Undo::StopHttp => "HTTP server".into(),
            Undo::DestroyVm => "VM disks and registration".into(),
            Undo::StopVm => "running VM".into(),
            Undo::CloseSsh => "SSH session".into(),
        }
    }
}

/// Ordered record of created things.
#[derive(Debug, Default)]
pub struct UndoStack {
    items: Vec<Undo>,
}

impl UndoStack {
    pub fn push(&mut self, u: Undo) {
        self.items.push(u);
    }

    /// Remove an entry that no longer needs undoing (e.g. the VM after a clean shutdown, the
    /// staging dir after it was renamed into place).
    pub fn forget(&mut self, u: &Undo) {
        if let Some(i) = self.items.iter().rposition(|x| x == u) {
            self.items.remove(i);
        }
    }

    /// Take the entries, most recent first.
    pub fn drain_reverse(&mut self) -> Vec<Undo> {
        let mut v = std::mem::take(&mut self.items);
        v.reverse();
        v
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn items(&self) -> &[Undo] {
        &self.items
    }
}
