//! Disks (qemu-img) and the extra CD image (xorriso) of a QEMU build.

use super::config::{DiskFormat, QemuConfig};
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
            context: format!("running `{shown}` (is it installed? qemu-img is in the Debian package qemu-utils, xorriso in xorriso)"),
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
    let staging = env.work_dir.join(format!("{stem}-cd"));
    let io = |context: String| move |e| DriverError::Io { context, source: e };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(format!("clearing {}", staging.display())))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(format!("creating {}", staging.display())))?;
    for f in cd_files {
        let text = f.to_string_lossy();
        if text.contains(['*', '?', '[']) {
            return Err(DriverError::Msg(format!(
                "cd_files: glob pattern {text:?} is not supported; list the files or a directory"
            )));
        }
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
