//! Disk states for the engine's install cache: freeze the running VM's disks with a QMP
//! `transaction` of `blockdev-snapshot-sync` (every disk at the same instant; the frozen files
//! become read-only backing files and the VM goes on writing to new overlays), and start a VM
//! from a saved state (qcow2 overlays whose backing files are the saved disks).
//!
//! Supported for qcow2 disks the driver created itself (not `use_backing_file`, whose disk
//! already has a backing file outside the work dir). With `-drive` overridden in `qemuargs`
//! the disks are found by file name in `query-block`; when one is not, saving fails with a
//! message and the build goes on without the cache.

use super::media::run;
use super::{DiskFormat, QemuConfig, QemuDriver};
use crate::driver::DiskState;
use crate::{DriverError, DriverResult};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Whether this configuration can save and use disk states.
pub(crate) fn supported(cfg: &QemuConfig) -> bool {
    cfg.format == DiskFormat::Qcow2 && !cfg.use_backing_file
}

/// Why not, for the error message.
fn unsupported(cfg: &QemuConfig) -> DriverError {
    DriverError::Msg(format!(
        "QEMU VM {}: disk states need qcow2 disks made by the driver (format is {}, \
         use_backing_file is {})",
        cfg.vm_name,
        cfg.format.as_str(),
        cfg.use_backing_file
    ))
}

/// `disk0`, `disk1`, … (the roles of a state's disks).
pub(crate) fn disk_role(i: usize) -> String {
    format!("disk{i}")
}

pub(crate) const EFIVARS_ROLE: &str = "efivars";

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The QMP node (or device) name of the block backend whose top image is `file`.
fn node_for(blocks: &Value, file: &Path) -> Option<(String, &'static str)> {
    blocks.as_array()?.iter().find_map(|b| {
        let ins = b.get("inserted")?;
        let f = ins.get("file").and_then(Value::as_str)?;
        if !same_file(Path::new(f), file) {
            return None;
        }
        match ins.get("node-name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => Some((n.to_string(), "node-name")),
            _ => b
                .get("device")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| (d.to_string(), "device")),
        }
    })
}

impl QemuDriver {
    pub(super) async fn freeze_disks(&mut self) -> DriverResult<DiskState> {
        if !supported(&self.cfg) {
            return Err(unsupported(&self.cfg));
        }
        let qmp = self.live_qmp()?;
        let blocks = qmp.execute("query-block", None).await?;
        let mut actions = Vec::new();
        let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new(); // (frozen, new overlay)
        for (i, disk) in self.disks.iter().enumerate() {
            let (node, kind) = node_for(&blocks, disk).ok_or_else(|| {
                DriverError::Msg(format!(
                    "QEMU VM {}: disk {} is not among QEMU's block devices (query-block); a \
                     -drive in qemuargs names other files",
                    self.cfg.vm_name,
                    disk.display()
                ))
            })?;
            let overlay = self.cfg.env.work_dir.join(format!(
                "{}-{}.overlay.qcow2",
                self.cfg.vm_name,
                disk_role(i)
            ));
            let _ = std::fs::remove_file(&overlay);
            let mut data = json!({
                "snapshot-file": overlay.display().to_string(),
                // Required by QEMU when the source is named by its node.
                "snapshot-node-name": format!("osimager-overlay{i}"),
                "format": "qcow2",
                "mode": "absolute-paths",
            });
            data[kind] = Value::String(node);
            actions.push(json!({"type": "blockdev-snapshot-sync", "data": data}));
            plan.push((disk.clone(), overlay));
        }
        qmp.execute("transaction", Some(json!({ "actions": actions })))
            .await?;
        let mut state = DiskState::default();
        for (i, (frozen, overlay)) in plan.into_iter().enumerate() {
            self.work_files.push(overlay.clone());
            self.disks[i] = overlay;
            self.chained = true;
            state.files.push((disk_role(i), frozen));
        }
        // UEFI variables (boot entries the installer wrote). Nothing writes them while the
        // installed system runs its services; a copy is the state.
        if let Some(vars) = &self.efi_vars {
            let copy = self
                .cfg
                .env
                .work_dir
                .join(format!("{}-efivars.saved.fd", self.cfg.vm_name));
            std::fs::copy(vars, &copy).map_err(|source| DriverError::Io {
                context: format!("copying the UEFI variables {}", vars.display()),
                source,
            })?;
            self.work_files.push(copy.clone());
            state.files.push((EFIVARS_ROLE.into(), copy));
        }
        Ok(state)
    }

    pub(super) fn adopt_state(&mut self, state: &DiskState) -> DriverResult<()> {
        if !supported(&self.cfg) {
            return Err(unsupported(&self.cfg));
        }
        let wanted = 1 + self.cfg.disk_additional_size_mib.len();
        for i in 0..wanted {
            let role = disk_role(i);
            let f = state.file(&role).ok_or_else(|| {
                DriverError::Msg(format!(
                    "the saved state has no {role} (the builder has {wanted} disk(s))"
                ))
            })?;
            if !f.is_file() {
                return Err(DriverError::Msg(format!(
                    "the saved disk {} does not exist",
                    f.display()
                )));
            }
        }
        if state.file(&disk_role(wanted)).is_some() {
            return Err(DriverError::Msg(format!(
                "the saved state has more disks than the builder's {wanted}"
            )));
        }
        self.saved_state = Some(state.clone());
        self.chained = true;
        Ok(())
    }
}

/// `create` from a saved state: one overlay per saved disk, in the work dir, named as the
/// disks `create_disks` makes.
pub(crate) async fn overlay_disks(
    cfg: &QemuConfig,
    state: &DiskState,
) -> Result<Vec<PathBuf>, DriverError> {
    let mut disks = Vec::new();
    for i in 0..=cfg.disk_additional_size_mib.len() {
        let base = state
            .file(&disk_role(i))
            .ok_or_else(|| DriverError::Msg(format!("saved state without {}", disk_role(i))))?;
        let dst = if i == 0 {
            cfg.work_disk()
        } else {
            cfg.env
                .work_dir
                .join(format!("{}-{}.{}", cfg.vm_name, i, cfg.format.as_str()))
        };
        let mut args: Vec<String> = vec!["create".into(), "-f".into(), "qcow2".into()];
        args.extend(cfg.qemu_img_args.create.iter().cloned());
        args.extend([
            "-b".into(),
            base.display().to_string(),
            "-F".into(),
            "qcow2".into(),
            dst.display().to_string(),
        ]);
        run(&cfg.env, "qemu-img", &args).await?;
        disks.push(dst);
    }
    Ok(disks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_node_of_a_disk() {
        let blocks = json!([
            {"device": "ide1-cd0", "inserted": {"file": "/x/testos.iso", "node-name": "#block1"}},
            {"device": "virtio0", "inserted": {"file": "/w/vm.qcow2", "node-name": "#block3"}},
            {"device": "drive1", "inserted": {"file": "/w/vm-1.qcow2"}},
            {"device": "floppy0"}
        ]);
        assert_eq!(
            node_for(&blocks, Path::new("/w/vm.qcow2")),
            Some(("#block3".into(), "node-name"))
        );
        assert_eq!(
            node_for(&blocks, Path::new("/w/vm-1.qcow2")),
            Some(("drive1".into(), "device"))
        );
        assert_eq!(node_for(&blocks, Path::new("/w/other.qcow2")), None);
    }
}
