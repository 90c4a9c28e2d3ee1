//! Disks and DVD drives: `createmedium`, the storage controllers, `storageattach`.

use super::config::GuestAdditions;
use super::setup::{self, Layout, MediumKind};
use super::vboxmanage::args;
use super::{io, VirtualBoxDriver};
use crate::{DriverError, DriverResult};
use std::path::{Path, PathBuf};

/// `Default Guest Additions ISO: /usr/share/virtualbox/VBoxGuestAdditions.iso` in
/// `list systemproperties`.
fn default_additions(stdout: &str) -> Option<PathBuf> {
    stdout.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("Default Guest Additions ISO:")?
            .trim();
        (!rest.is_empty()).then(|| PathBuf::from(rest))
    })
}

impl VirtualBoxDriver {
    pub(super) async fn create_storage(&mut self) -> DriverResult<()> {
        let disk_dir = if self.cfg.keep_registered {
            // Kept registered: the disks live with the VM, not in the build's temp dir.
            self.cfg_file
                .as_ref()
                .and_then(|c| c.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| self.cfg.env.work_dir.clone())
        } else {
            self.cfg.env.work_dir.clone()
        };
        let mut layout = Layout::default();
        for (path, mib) in setup::disk_paths(&self.cfg, &disk_dir) {
            // Recorded first: a half-created disk is cleaned up too.
            self.disks.push(path.clone());
            self.vbox()?.call(&setup::createmedium(&path, mib)).await?;
            layout.add(self.cfg.disk_bus, MediumKind::Hdd, path)?;
        }
        if let Some(iso) = self.media.iso_path.clone() {
            // VirtualBox registers media by path: the real file, not a symlink (as Packer).
            let iso = std::fs::canonicalize(&iso)
                .map_err(io(format!("reading the installer ISO {}", iso.display())))?;
            layout.add(self.cfg.iso_bus, MediumKind::Dvd, iso)?;
        }
        let cd = crate::qemu::media::make_cd_image(
            &self.cfg.env,
            &self.cfg.vm_name,
            &self.cfg.cd_files,
            &self.cfg.cd_content,
            self.cfg.cd_label.as_deref(),
        )
        .await?;
        if let Some((iso, staging)) = cd {
            self.work_files.push(staging);
            self.work_files.push(iso.clone());
            layout.add(self.cfg.iso_bus, MediumKind::Dvd, iso)?;
        }
        if let GuestAdditions::Attach { path } = self.cfg.guest_additions.clone() {
            let path = match path {
                Some(p) => p,
                None => {
                    let out = self
                        .vbox()?
                        .call(&args(["list", "systemproperties"]))
                        .await?;
                    default_additions(&out.stdout).ok_or_else(|| {
                        DriverError::Msg(
                            "guest_additions_mode \"attach\": VirtualBox knows no default guest \
                             additions ISO; set guest_additions_path"
                                .into(),
                        )
                    })?
                }
            };
            layout.add(self.cfg.iso_bus, MediumKind::Dvd, path)?;
        }
        for c in layout.controllers(&self.cfg) {
            self.vbox()?.call(&c).await?;
        }
        for a in layout.attachments {
            self.vbox()?.call(&a.attach_args(&self.cfg)).await?;
            self.attachments.push(a);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemproperties_output() {
        let sp = "API version:                     7_0\nDefault Guest Additions ISO:     /usr/share/virtualbox/VBoxGuestAdditions.iso\n";
        assert_eq!(
            default_additions(sp),
            Some(PathBuf::from(
                "/usr/share/virtualbox/VBoxGuestAdditions.iso"
            ))
        );
        assert_eq!(default_additions("Default Guest Additions ISO:\n"), None);
    }
}
