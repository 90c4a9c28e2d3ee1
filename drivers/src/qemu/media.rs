//! Disks (qemu-img), the extra CD image (xorriso) and the floppy image (mtools) of a QEMU
//! build.

use super::config::{DiskFormat, QemuConfig};
use super::glob;
use crate::{DriverEnv, DriverError};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Run a tool; failure carries the full command and its stderr.
pub(crate) async fn run(
    env: &DriverEnv,
    program: &str,
    args: &[String],
) -> Result<String, DriverError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    env.apply(&mut cmd);
    let out = cmd
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::Io {
            context: format!("running `{shown}` (is it installed? qemu-img is in the Debian package qemu-utils, xorriso in xorriso, mformat/mcopy in mtools)"),
            source: e,
        })?;
    if !out.status.success() {
        return Err(DriverError::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn image_info(env: &DriverEnv, path: &Path) -> Result<serde_json::Value, DriverError> {
    let out = run(
        env,
        "qemu-img",
        &["info".into(), "--output=json".into(), s(path)],
    )
    .await?;
    serde_json::from_str(&out)
        .map_err(|e| DriverError::Msg(format!("qemu-img info {}: bad JSON: {e}", path.display())))
}

/// Create the build's disks in the work directory; returns them (main disk first).
pub(crate) async fn create_disks(cfg: &QemuConfig) -> Result<Vec<PathBuf>, DriverError> {
    let fmt = cfg.format.as_str().to_string();
    let main = cfg.work_disk();
    let size = format!("{}M", cfg.disk_size_mib);
    if cfg.disk_image {
        let base = cfg.media.iso_path.as_ref().ok_or_else(|| {
            DriverError::Msg("disk_image is true but no base image was given (iso_url)".into())
        })?;
        let base = std::fs::canonicalize(base).map_err(|e| DriverError::Io {
            context: format!("reading the base image {}", base.display()),
            source: e,
        })?;
        let base_fmt = image_info(&cfg.env, &base)
            .await?
            .get("format")
            .and_then(|f| f.as_str())
            .unwrap_or("raw")
            .to_string();
        if cfg.use_backing_file {
            run(
                &cfg.env,
                "qemu-img",
                &[
                    "create".into(),
                    "-f".into(),
                    fmt.clone(),
                    "-b".into(),
                    s(&base),
                    "-F".into(),
                    base_fmt,
                    s(&main),
                ],
            )
            .await?;
        } else {
            run(
                &cfg.env,
                "qemu-img",
                &[
                    "convert".into(),
                    "-f".into(),
                    base_fmt,
                    "-O".into(),
                    fmt.clone(),
                    s(&base),
                    s(&main),
                ],
            )
            .await?;
        }
        if !cfg.skip_resize_disk {
            let current = image_info(&cfg.env, &main)
                .await?
                .get("virtual-size")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            if current < cfg.disk_size_mib * 1024 * 1024 {
                run(
                    &cfg.env,
                    "qemu-img",
                    &["resize".into(), "-f".into(), fmt.clone(), s(&main), size],
                )
                .await?;
            }
        }
    } else {
        run(
            &cfg.env,
            "qemu-img",
            &["create".into(), "-f".into(), fmt.clone(), s(&main), size],
        )
        .await?;
    }
    let mut disks = vec![main];
    for (i, mib) in cfg.disk_additional_size_mib.iter().enumerate() {
        let p = cfg
            .env
            .work_dir
            .join(format!("{}-{}.{}", cfg.vm_name, i + 1, fmt));
        run(
            &cfg.env,
            "qemu-img",
            &[
                "create".into(),
                "-f".into(),
                fmt.clone(),
                s(&p),
                format!("{mib}M"),
            ],
        )
        .await?;
        disks.push(p);
    }
    Ok(disks)
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(src, dst).map(|_| ())
    }
}

/// An empty staging directory `<work>/<stem>-<what>` for an image's contents.
fn fresh_staging(env: &DriverEnv, stem: &str, what: &str) -> Result<PathBuf, DriverError> {
    let staging = env.work_dir.join(format!("{stem}-{what}"));
    let io = |context: String| move |e| DriverError::Io { context, source: e };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(format!("clearing {}", staging.display())))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(format!("creating {}", staging.display())))?;
    Ok(staging)
}

/// Build the `cd_files` / `cd_content` ISO of a QEMU build (see [`make_cd_image`]).
pub(crate) async fn make_cd(cfg: &QemuConfig) -> Result<Option<(PathBuf, PathBuf)>, DriverError> {
    make_cd_image(
        &cfg.env,
        &cfg.vm_name,
        &cfg.cd_files,
        &cfg.cd_content,
        cfg.cd_label.as_deref(),
    )
    .await
}

/// Build the `cd_files` / `cd_content` ISO (volume label `cd_label`) in the work directory as
/// `<stem>-cd.iso`, as Packer does: files go to the root under their base name, a directory
/// keeps its name (its contents when the path ends with `/`). Returns the image and the
/// staging directory (both work files). Shared by the drivers that attach such a CD.
pub(crate) async fn make_cd_image(
    env: &crate::DriverEnv,
    stem: &str,
    cd_files: &[PathBuf],
    cd_content: &std::collections::BTreeMap<String, String>,
    cd_label: Option<&str>,
) -> Result<Option<(PathBuf, PathBuf)>, DriverError> {
    if cd_files.is_empty() && cd_content.is_empty() {
        return Ok(None);
    }
    let staging = fresh_staging(env, stem, "cd")?;
    let io = |context: String| move |e| DriverError::Io { context, source: e };
    for f in expand_all("cd_files", cd_files)? {
        let f = &f;
        let text = f.to_string_lossy();
        let dst = if text.ends_with('/') || f.file_name().is_none() {
            staging.clone()
        } else {
            staging.join(f.file_name().unwrap_or_default())
        };
        copy_tree(f, &dst).map_err(io(format!("cd_files: copying {}", f.display())))?;
    }
    for (name, content) in cd_content {
        let rel = Path::new(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(DriverError::Msg(format!(
                "cd_content: {name:?} must be a relative path inside the CD"
            )));
        }
        let dst = staging.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&dst, content).map_err(io(format!("writing {}", dst.display())))?;
    }
    let iso = env.work_dir.join(format!("{stem}-cd.iso"));
    let mut args: Vec<String> = vec![
        "-as".into(),
        "mkisofs".into(),
        "-quiet".into(),
        "-o".into(),
        s(&iso),
    ];
    if let Some(label) = cd_label {
        args.extend(["-V".into(), label.to_string()]);
    }
    args.extend(["-J".into(), "-joliet-long".into(), "-r".into(), s(&staging)]);
    run(env, "xorriso", &args).await?;
    Ok(Some((iso, staging)))
}

/// Expand the wildcards of a file list (see [`glob`]); the key names the list in errors.
fn expand_all(key: &str, list: &[PathBuf]) -> Result<Vec<PathBuf>, DriverError> {
    let mut out = Vec::new();
    for entry in list {
        out.extend(
            glob::expand(&entry.to_string_lossy())
                .map_err(|e| DriverError::Msg(format!("{key}: {e}")))?,
        );
    }
    Ok(out)
}

/// Every file below `dir` (recursively), sorted.
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_below(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Size of Packer's floppy: 1440 KiB, FAT12.
const FLOPPY_KIB: u64 = 1440;

/// Build the floppy image (`floppy_files`, `floppy_dirs`, label `floppy_label`) as Packer does:
/// a 1.44 MB FAT12 image; each `floppy_files` file goes to the root under its base name and a
/// directory there adds every file below it, also flat at the root; each `floppy_dirs` entry
/// keeps its own name and structure. Made with mtools (`mformat`, `mcopy`) from a staging
/// directory. Returns the image and the staging directory (both work files).
pub(crate) async fn make_floppy(
    cfg: &QemuConfig,
) -> Result<Option<(PathBuf, PathBuf)>, DriverError> {
    if cfg.floppy_files.is_empty() && cfg.floppy_dirs.is_empty() {
        return Ok(None);
    }
    let staging = fresh_staging(&cfg.env, &cfg.vm_name, "floppy")?;
    let io = |context: String| move |e| DriverError::Io { context, source: e };
    let missing = |key: &str, p: &Path| {
        DriverError::Msg(format!(
            "{key}: {} does not exist (generated files are written before the VM is created; \
             check the path)",
            p.display()
        ))
    };
    let mut flat = Vec::new();
    for f in expand_all("floppy_files", &cfg.floppy_files)? {
        if f.is_dir() {
            files_below(&f, &mut flat)
                .map_err(io(format!("floppy_files: reading {}", f.display())))?;
        } else if f.is_file() {
            flat.push(f);
        } else {
            return Err(missing("floppy_files", &f));
        }
    }
    for f in &flat {
        let name = f.file_name().unwrap_or_default();
        let dst = staging.join(name);
        if dst.exists() {
            return Err(DriverError::Msg(format!(
                "floppy_files: two files named {:?} would land at the root of the floppy ({}); \
                 rename one or use floppy_dirs",
                name,
                f.display()
            )));
        }
        std::fs::copy(f, &dst).map_err(io(format!("floppy_files: copying {}", f.display())))?;
    }
    for d in expand_all("floppy_dirs", &cfg.floppy_dirs)? {
        if !d.exists() {
            return Err(missing("floppy_dirs", &d));
        }
        let Some(name) = d.file_name() else {
            return Err(DriverError::Msg(format!(
                "floppy_dirs: {} has no name to give the directory on the floppy",
                d.display()
            )));
        };
        copy_tree(&d, &staging.join(name))
            .map_err(io(format!("floppy_dirs: copying {}", d.display())))?;
    }
    let img = cfg.env.work_dir.join(format!("{}-floppy.img", cfg.vm_name));
    let _ = std::fs::remove_file(&img);
    run(
        &cfg.env,
        "mformat",
        &[
            "-C".into(),
            "-f".into(),
            FLOPPY_KIB.to_string(),
            "-v".into(),
            cfg.floppy_label.clone(),
            "-i".into(),
            s(&img),
            "::".into(),
        ],
    )
    .await?;
    let mut top: Vec<PathBuf> = std::fs::read_dir(&staging)
        .map_err(io(format!("reading {}", staging.display())))?
        .flatten()
        .map(|e| e.path())
        .collect();
    top.sort();
    if !top.is_empty() {
        let mut args: Vec<String> = vec!["-s".into(), "-p".into(), "-i".into(), s(&img)];
        args.extend(top.iter().map(|p| s(p)));
        args.push("::/".into());
        run(&cfg.env, "mcopy", &args).await.map_err(|e| match e {
            DriverError::Command { stderr, .. } if stderr.contains("Disk full") => {
                DriverError::Msg(format!(
                    "floppy_files/floppy_dirs do not fit on a 1.44 MB floppy: {stderr}; use \
                     cd_files or the HTTP server for large files"
                ))
            }
            other => other,
        })?;
    }
    Ok(Some((img, staging)))
}

/// Copy the finished disks into `out_dir`: `qemu-img convert` (drops unused space) unless
/// `skip_compaction` (or the disk is a `use_backing_file` overlay), with `-c` for compressed qcow2 when `disk_compression`.
pub(crate) async fn export_disks(
    cfg: &QemuConfig,
    disks: &[PathBuf],
    out_dir: &Path,
) -> Result<Vec<PathBuf>, DriverError> {
    std::fs::create_dir_all(out_dir).map_err(|e| DriverError::Io {
        context: format!("creating the output directory {}", out_dir.display()),
        source: e,
    })?;
    let fmt = cfg.format.as_str().to_string();
    let mut written = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let dst = if i == 0 {
            cfg.output_disk(out_dir)
        } else {
            out_dir.join(format!("{}-{}", cfg.vm_name, i))
        };
        // An overlay on a backing file is kept as an overlay (converting would flatten it).
        if cfg.skip_compaction || (cfg.use_backing_file && i == 0) {
            tokio::fs::copy(disk, &dst)
                .await
                .map_err(|e| DriverError::Io {
                    context: format!("copying {} to {}", disk.display(), dst.display()),
                    source: e,
                })?;
        } else {
            let mut args: Vec<String> = vec![
                "convert".into(),
                "-f".into(),
                fmt.clone(),
                "-O".into(),
                fmt.clone(),
            ];
            if cfg.disk_compression && cfg.format == DiskFormat::Qcow2 {
                args.push("-c".into());
            }
            args.extend([s(disk), s(&dst)]);
            run(&cfg.env, "qemu-img", &args).await?;
        }
        written.push(dst);
    }
    Ok(written)
}
