//! Virtual disks (vmware-vdiskmanager when installed, else qemu-img, whose VMDKs
//! Workstation opens), compaction, and the export of the finished VM.

use super::config::{Format, VmwareConfig};
use super::tools;
use crate::DriverError;
use std::path::{Path, PathBuf};

/// The adapter type written into the disk descriptor. vmware-vdiskmanager and qemu-img know
/// ide, buslogic and lsilogic; every other adapter (SATA, NVMe, PVSCSI, SAS) uses lsilogic
/// descriptors (the descriptor's adapter only matters for IDE geometry).
fn descriptor_adapter(adapter: &str) -> &'static str {
    match adapter {
        "ide" => "ide",
        "buslogic" => "buslogic",
        _ => "lsilogic",
    }
}

/// qemu-img's VMDK subformat for a vmware-vdiskmanager disk type.
fn subformat(type_id: u8) -> Result<&'static str, DriverError> {
    Ok(match type_id {
        0 => "monolithicSparse",
        1 => "twoGbMaxExtentSparse",
        2 => "monolithicFlat",
        3 => "twoGbMaxExtentFlat",
        5 => "streamOptimized",
        t => {
            return Err(DriverError::Msg(format!(
                "disk_type_id {t} (ESX preallocated) needs vmware-vdiskmanager, which is not on PATH; use disk_type_id 0–3"
            )))
        }
    })
}

/// Create the VM's disks in `dir`; returns their paths (main disk first).
pub async fn create(cfg: &VmwareConfig, dir: &Path) -> Result<Vec<PathBuf>, DriverError> {
    let mut made = Vec::new();
    let vdm = tools::find(&cfg.env, "vmware-vdiskmanager");
    for (name, mib) in cfg.disk_names().iter().zip(cfg.disk_sizes()) {
        let path = dir.join(name);
        let adapter = descriptor_adapter(&cfg.disk_adapter_type);
        let args: Vec<String> = match &vdm {
            Some(_) => vec![
                "-c".into(),
                "-s".into(),
                format!("{mib}M"),
                "-a".into(),
                adapter.into(),
                "-t".into(),
                cfg.disk_type_id.to_string(),
                path.display().to_string(),
            ],
            None => vec![
                "create".into(),
                "-q".into(),
                "-f".into(),
                "vmdk".into(),
                "-o".into(),
                format!(
                    "adapter_type={adapter},subformat={}",
                    subformat(cfg.disk_type_id)?
                ),
                path.display().to_string(),
                format!("{mib}M"),
            ],
        };
        let program = match &vdm {
            Some(p) => p.clone(),
            None => tools::require(&cfg.env, "qemu-img", "it creates the VMDK when vmware-vdiskmanager is missing; Debian package qemu-utils")?,
        };
        tools::run_ok(&cfg.env, &program, &args).await?;
        made.push(path);
    }
    Ok(made)
}

/// The files of the disk whose descriptor is `disk`: the descriptor and, for split or flat
/// disks, its extents (`disk-s001.vmdk`, `disk-f001.vmdk`, `disk-flat.vmdk`).
fn disk_files(disk: &Path) -> Vec<PathBuf> {
    let mut out = vec![disk.to_path_buf()];
    let (Some(dir), Some(stem)) = (disk.parent(), disk.file_stem()) else {
        return out;
    };
    let stem = stem.to_string_lossy();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = n
                .strip_prefix(&format!("{stem}-"))
                .and_then(|r| r.strip_suffix(".vmdk"))
            else {
                continue;
            };
            let extent = rest == "flat"
                || (rest.len() == 4
                    && (rest.starts_with('s') || rest.starts_with('f'))
                    && rest[1..].bytes().all(|b| b.is_ascii_digit()));
            if extent {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Compact the disks: `vmware-vdiskmanager -d` (defragment) then `-k` (shrink), as Packer
/// does; without vdiskmanager, qemu-img rewrites each disk in the same subformat, which
/// drops unallocated and zero clusters.
pub async fn compact(cfg: &VmwareConfig, disks: &[PathBuf]) -> Result<(), DriverError> {
    if let Some(vdm) = tools::find(&cfg.env, "vmware-vdiskmanager") {
        for d in disks {
            for flag in ["-d", "-k"] {
                tools::run_ok(&cfg.env, &vdm, &[flag.into(), d.display().to_string()]).await?;
            }
        }
        return Ok(());
    }
    let qemu_img = tools::require(
        &cfg.env,
        "qemu-img",
        "it compacts the VMDK when vmware-vdiskmanager is missing",
    )?;
    let sub = subformat(cfg.disk_type_id)?;
    let adapter = descriptor_adapter(&cfg.disk_adapter_type);
    for d in disks {
        let (Some(dir), Some(name)) = (d.parent(), d.file_name()) else {
            continue;
        };
        let tmp = tempfile::Builder::new()
            .prefix(".compact-")
            .tempdir_in(dir)
            .map_err(|source| DriverError::Io {
                context: format!("creating a directory for compacting {}", d.display()),
                source,
            })?;
        let out = tmp.path().join(name);
        tools::run_ok(
            &cfg.env,
            &qemu_img,
            &[
                "convert".into(),
                "-q".into(),
                "-O".into(),
                "vmdk".into(),
                "-o".into(),
                format!("adapter_type={adapter},subformat={sub}"),
                d.display().to_string(),
                out.display().to_string(),
            ],
        )
        .await?;
        for old in disk_files(d) {
            let _ = std::fs::remove_file(old);
        }
        for new in disk_files(&out) {
            let dest = dir.join(new.file_name().unwrap_or_default());
            std::fs::rename(&new, &dest).map_err(|source| DriverError::Io {
                context: format!("replacing {} with its compacted copy", dest.display()),
                source,
            })?;
        }
    }
    Ok(())
}

/// The extensions Packer keeps when it cleans a finished VM's directory.
pub const KEEP_EXTENSIONS: &[&str] = &["nvram", "vmdk", "vmsd", "vmx", "vmxf"];

/// Delete everything in `dir` but the VM's own files (logs, lock directories, memory files,
/// a stray `.compact-*` directory), as Packer's StepCleanFiles does.
pub fn clean_dir(dir: &Path) -> Result<Vec<PathBuf>, DriverError> {
    let mut removed = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|source| DriverError::Io {
        context: format!("listing {}", dir.display()),
        source,
    })?;
    for e in rd.flatten() {
        let p = e.path();
        let keep = p.is_file()
            && p.extension()
                .is_some_and(|x| KEEP_EXTENSIONS.contains(&x.to_string_lossy().as_ref()));
        if keep {
            continue;
        }
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DriverError::Io {
                    context: format!("deleting {}", p.display()),
                    source,
                })
            }
        }
    }
    Ok(removed)
}

/// Hard-link `src` to `dst` (same file system: instant, and the work copy can be deleted
/// afterwards), else copy it.
fn link_or_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dst);
    std::fs::hard_link(src, dst).or_else(|_| std::fs::copy(src, dst).map(|_| ()))
}

/// Export the stopped, cleaned VM in `vm_dir` into `out_dir`: its files (`.vmx`, disks and
/// extents, `.nvram`, `.vmsd`, `.vmxf`), and with format ovf/ova ovftool's package made from
/// the exported .vmx (Packer: `ovftool [ovftool_options] OUT/VM.vmx OUT/VM.ovf|ova`).
pub async fn export(
    cfg: &VmwareConfig,
    vm_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, DriverError> {
    std::fs::create_dir_all(out_dir).map_err(|source| DriverError::Io {
        context: format!("creating the output directory {}", out_dir.display()),
        source,
    })?;
    let mut files = Vec::new();
    let rd = std::fs::read_dir(vm_dir).map_err(|source| DriverError::Io {
        context: format!("listing {}", vm_dir.display()),
        source,
    })?;
    let mut srcs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| KEEP_EXTENSIONS.contains(&x.to_string_lossy().as_ref()))
        })
        .collect();
    srcs.sort();
    for src in srcs {
        let dst = out_dir.join(src.file_name().unwrap_or_default());
        link_or_copy(&src, &dst).map_err(|source| DriverError::Io {
            context: format!("copying {} to {}", src.display(), dst.display()),
            source,
        })?;
        files.push(dst);
    }
    if cfg.needs_ovftool() {
        let ovftool = tools::require(
            &cfg.env,
            "ovftool",
            "format ovf/ova exports with VMware's ovftool",
        )?;
        let vmx = out_dir.join(format!("{}.vmx", cfg.vm_name));
        let pkg = out_dir.join(format!("{}.{}", cfg.vm_name, cfg.format.as_str()));
        let mut args = cfg.ovftool_options.clone();
        args.push(vmx.display().to_string());
        args.push(pkg.display().to_string());
        tools::run_ok(&cfg.env, &ovftool, &args).await?;
        if cfg.format == Format::Ovf {
            // ovftool writes NAME.ovf, NAME.mf and NAME-disk1.vmdk next to each other.
            let before: Vec<PathBuf> = files.clone();
            if let Ok(rd) = std::fs::read_dir(out_dir) {
                for e in rd.flatten() {
                    if !before.contains(&e.path()) && e.path().is_file() {
                        files.push(e.path());
                    }
                }
            }
        } else {
            files.push(pkg);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_belong_to_their_disk() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "disk.vmdk",
            "disk-s001.vmdk",
            "disk-s002.vmdk",
            "disk-1.vmdk",
            "disk-1-s001.vmdk",
            "disk-flat.vmdk",
            "x.vmx",
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(disk_files(&d.path().join("disk.vmdk"))),
            [
                "disk-flat.vmdk",
                "disk-s001.vmdk",
                "disk-s002.vmdk",
                "disk.vmdk"
            ]
        );
        assert_eq!(
            names(disk_files(&d.path().join("disk-1.vmdk"))),
            ["disk-1-s001.vmdk", "disk-1.vmdk"]
        );
    }

    #[test]
    fn clean_keeps_only_the_vm_files() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.vmx", "a.nvram", "disk.vmdk", "vmware.log", "a.vmem"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        std::fs::create_dir(d.path().join("a.vmx.lck")).unwrap();
        let removed = clean_dir(d.path()).unwrap();
        assert_eq!(removed.len(), 3);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.nvram", "a.vmx", "disk.vmdk"]);
    }
}
