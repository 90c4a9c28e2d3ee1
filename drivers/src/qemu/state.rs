//! Saved states for the engine's install cache.
//!
//! Saving (the guest runs, just installed): pause the vCPUs (`stop`); freeze every disk at that
//! instant with a QMP `transaction` of `blockdev-snapshot-sync` (the frozen files become
//! read-only backing files, the VM goes on writing to new overlays); write the VM's memory and
//! device state to a file (`migrate` to `exec:cat > FILE`, which takes the paused VM as it is);
//! resume (`cont`). Disks and memory are of the same instant, so the saved system is exactly the
//! running one — its page cache included.
//!
//! Using: the VM's disks are qcow2 overlays whose backing files are the saved disks; QEMU starts
//! with `-incoming` from the memory file and resumes the saved system where it was: sshd is
//! already listening, nothing boots. The memory file is used only when this QEMU (version) and
//! accelerator are the ones that wrote it (the migration format and the CPU state depend on
//! them); otherwise the VM boots from the saved disks (the guest's caches were flushed with
//! `sync` before saving, so that cold boot finds consistent file systems).
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
/// The memory and device state (migration stream).
pub(crate) const VMSTATE_ROLE: &str = "vmstate";
/// What the memory file needs to be resumed (JSON).
pub(crate) const META_ROLE: &str = "qemu";

/// `qemu.json`: what a saved memory file depends on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedVm {
    /// `query-version` of the QEMU that wrote it.
    pub qemu: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// CD drives the VM had (each must exist, empty, when it resumes).
    pub cdroms: usize,
}

/// A saved VM this driver may resume (checked against the running QEMU at `start`).
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    pub stream: PathBuf,
    pub saved: SavedVm,
}

async fn qemu_version(qmp: &crate::qmp::Qmp) -> Option<String> {
    let v = qmp.execute("query-version", None).await.ok()?;
    let q = v.get("qemu")?;
    Some(format!(
        "{}.{}.{} {}",
        q.get("major")?,
        q.get("minor")?,
        q.get("micro")?,
        v.get("package")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
    ))
}

/// `max-bandwidth` (bytes/s) for writing the memory file: 64 GiB/s, i.e. no throttling.
const UNTHROTTLED: u64 = 64 << 30;

/// How long writing the memory file may take.
const MIGRATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Wait for the outgoing migration to end; `Err` with QEMU's reason if it failed.
async fn migration_done(qmp: &crate::qmp::Qmp) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + MIGRATE_TIMEOUT;
    loop {
        let v = qmp
            .execute("query-migrate", None)
            .await
            .map_err(|e| e.to_string())?;
        match v.get("status").and_then(Value::as_str).unwrap_or("") {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                return Err(v
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("migration failed")
                    .to_string())
            }
            _ if tokio::time::Instant::now() > deadline => {
                let _ = qmp.execute("migrate_cancel", None).await;
                return Err(format!("not done after {}s", MIGRATE_TIMEOUT.as_secs()));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

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
        qmp.execute("stop", None).await?;
        let saved = self.freeze_paused(&qmp).await;
        // Whatever happened, the guest goes on.
        let resumed = qmp.execute("cont", None).await;
        let state = saved?;
        resumed?;
        Ok(state)
    }

    async fn freeze_paused(&mut self, qmp: &crate::qmp::Qmp) -> DriverResult<DiskState> {
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
        // Memory and devices, as paused. Without them the state is still usable (cold boot).
        let stream = self
            .cfg
            .env
            .work_dir
            .join(format!("{}-vmstate.bin", self.cfg.vm_name));
        let meta = self
            .cfg
            .env
            .work_dir
            .join(format!("{}-vmstate.json", self.cfg.vm_name));
        self.work_files.push(stream.clone());
        self.work_files.push(meta.clone());
        let uri = format!("exec:cat > {}", super::args::sh_quote(&stream));
        // QEMU throttles an outgoing migration to 128 MiB/s unless told otherwise (meant for
        // a live migration sharing a network): a few hundred MiB of a just-installed guest's
        // memory then take seconds while the VM is paused. The file takes what the host can
        // write. A QEMU that refuses the parameter still saves, at its default rate.
        let _ = qmp
            .execute(
                "migrate-set-parameters",
                Some(json!({ "max-bandwidth": UNTHROTTLED })),
            )
            .await;
        let written = match qmp.execute("migrate", Some(json!({ "uri": uri }))).await {
            Ok(_) => migration_done(qmp).await,
            Err(e) => Err(e.to_string()),
        };
        let version = qemu_version(qmp).await;
        match (written, version) {
            (Ok(()), Some(qemu)) => {
                let saved = SavedVm {
                    qemu,
                    accel: self.accel.unwrap_or("tcg").to_string(),
                    cdroms: usize::from(self.cfg.media.iso_path.is_some() && !self.cfg.disk_image)
                        + usize::from(self.cd_image.is_some()),
                };
                let text = serde_json::to_vec_pretty(&saved).unwrap_or_default();
                std::fs::write(&meta, text).map_err(|source| DriverError::Io {
                    context: format!("writing {}", meta.display()),
                    source,
                })?;
                state.files.push((VMSTATE_ROLE.into(), stream));
                state.files.push((META_ROLE.into(), meta));
            }
            (Err(e), _) => {
                let _ = std::fs::remove_file(&stream);
                self.warnings.push(format!(
                    "the VM's memory could not be saved ({e}): builds from this cache entry boot \
                     its disks instead of resuming"
                ));
            }
            (Ok(()), None) => {
                let _ = std::fs::remove_file(&stream);
            }
        }
        Ok(state)
    }

    /// The saved VM to resume at `start` under `accel`, if it can be.
    pub(super) fn incoming_for(&mut self, accel: &str) -> Option<super::args::Incoming> {
        let r = self.resume.as_ref()?;
        if r.saved.accel != accel {
            self.warnings.push(format!(
                "the cached install's memory was saved under {} and this VM runs under {accel}: \
                 booting its disks instead of resuming",
                r.saved.accel
            ));
            self.resume = None;
            return None;
        }
        Some(super::args::Incoming {
            stream: r.stream.clone(),
            cdroms: r.saved.cdroms,
        })
    }

    /// After an `-incoming` start: once the stream is read, resume the VM (it was paused when
    /// saved, so QEMU keeps it paused), or say why it could not be.
    pub(super) async fn wait_resumed(&mut self) -> DriverResult<()> {
        let qmp = self.live_qmp()?;
        let deadline = tokio::time::Instant::now() + MIGRATE_TIMEOUT;
        loop {
            if self.is_stopped() {
                return Err(DriverError::Msg(format!(
                    "QEMU exited while resuming the cached VM state; see {}",
                    self.qemu_log().display()
                )));
            }
            let st = qmp.execute("query-status", None).await?;
            match st.get("status").and_then(Value::as_str).unwrap_or("") {
                "running" => return Ok(()),
                "paused" | "postmigrate" => {
                    let m = qmp.execute("query-migrate", None).await?;
                    match m.get("status").and_then(Value::as_str).unwrap_or("") {
                        "completed" => {
                            qmp.execute("cont", None).await?;
                        }
                        "failed" | "cancelled" => {
                            return Err(DriverError::Msg(format!(
                                "loading the cached VM state failed: {}; see {}",
                                m.get("error-desc").and_then(Value::as_str).unwrap_or("?"),
                                self.qemu_log().display()
                            )))
                        }
                        _ => {}
                    }
                }
                "inmigrate" | "prelaunch" | "finish-migrate" => {}
                other => {
                    return Err(DriverError::Msg(format!(
                        "resuming the cached VM state left QEMU in state {other:?}; see {}",
                        self.qemu_log().display()
                    )))
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(DriverError::Msg(
                    "resuming the cached VM state took too long".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
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
        self.resume = None;
        if let (Some(stream), Some(meta)) = (state.file(VMSTATE_ROLE), state.file(META_ROLE)) {
            let saved: Option<SavedVm> = std::fs::read(meta)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let version = current_version(&self.cfg);
            match (saved, version) {
                (Some(saved), Some(v)) if v == saved.qemu => {
                    self.resume = Some(Resume {
                        stream: stream.to_path_buf(),
                        saved,
                    })
                }
                (Some(saved), v) => self.warnings.push(format!(
                    "the cached install's memory was saved by QEMU {} and this is {}: booting its \
                     disks instead of resuming",
                    saved.qemu,
                    v.unwrap_or_else(|| "unknown".into())
                )),
                (None, _) => {}
            }
        }
        Ok(())
    }
}

/// The version of this driver's QEMU binary as `query-version` reports it (`7.2.19 Debian
/// 1:7.2+dfsg-7+deb12u18`), from `qemu --version`.
fn current_version(cfg: &QemuConfig) -> Option<String> {
    let mut cmd = std::process::Command::new(&cfg.qemu_binary);
    if !cfg.env.vars.is_empty() {
        cmd.env_clear();
        cmd.envs(cfg.env.vars.iter().map(|(k, v)| (k, v)));
    }
    let out = cmd.arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"
    let rest = text.lines().next()?.split("version ").nth(1)?.trim();
    let (ver, pkg) = match rest.split_once(' ') {
        Some((v, p)) => (v, p.trim().trim_start_matches('(').trim_end_matches(')')),
        None => (rest, ""),
    };
    Some(format!("{ver} {pkg}").trim().to_string())
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
