//! The last step: checksums, the output directory renamed into place, the Packer-format
//! manifest appended, one `artifact` event per file. Also the dry-run report.

use super::export::Staged;
use crate::engine::native::artifacts;
use crate::engine::native::runner::Runner;
use crate::engine::native::{BuildReport, NativeError, Settings};
use crate::engine::Build;
use osimager_events::BuildEvent;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) async fn run(
    r: &Runner,
    b: &Build,
    s: &Settings,
    staged: Staged,
) -> Result<BuildReport, NativeError> {
    let (sums, digests) = artifacts::write_checksums(&staged.dir, &staged.files)?;
    artifacts::commit(&staged.dir, &s.output_dir, b.options.force)?;
    r.forget(staged.id);
    let moved = |p: &Path| s.output_dir.join(p.strip_prefix(&staged.dir).unwrap_or(p));
    let files: Vec<PathBuf> = staged.files.iter().map(|f| moved(f)).collect();
    let mut listed = Vec::new();
    for (f, sha) in files.iter().zip(digests) {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        listed.push((f.display().to_string(), size));
        r.events.emit(BuildEvent::Artifact {
            path: f.display().to_string(),
            size,
            sha256: Some(sha),
        });
    }
    let run_uuid = artifacts::uuid_v4();
    let manifest = s
        .output_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(artifacts::MANIFEST_FILE);
    let build_time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    artifacts::append_manifest(
        &manifest,
        &artifacts::ManifestEntry {
            name: &s.build_name,
            builder_type: &s.builder_type,
            build_time,
            files: listed,
            artifact_id: "VM",
            run_uuid: &run_uuid,
            custom_data: serde_json::json!({
                "target": b.plan.target,
                "name": b.plan.name,
                "vm_name": s.vm_name,
                "engine": "native",
                "build_id": r.events.build_id(),
            }),
        },
    )?;
    r.events.log(format!("manifest: {}", manifest.display()));
    Ok(BuildReport {
        output_dir: s.output_dir.clone(),
        files,
        checksums: moved(&sums),
        manifest,
        diag_dir: s.diag_dir.clone(),
        run_uuid,
        dry_run: false,
    })
}

/// `-n`: say what would happen, create nothing.
pub(crate) fn dry_run(r: &Runner, b: &Build, s: &Settings) -> BuildReport {
    let iso = s
        .iso
        .as_ref()
        .map(|r| r.urls.join(", "))
        .unwrap_or_default();
    r.events.log(format!(
        "dry run: would build VM {:?} with the {} driver from {} into {} ({} boot command \
         strings, {} provisioners, communicator {})",
        s.vm_name,
        s.builder_type,
        if iso.is_empty() { "no ISO" } else { &iso },
        s.output_dir.display(),
        s.boot_command.len(),
        b.plan.provisioners.len(),
        if s.ssh.is_some() { "ssh" } else { "none" }
    ));
    BuildReport {
        output_dir: s.output_dir.clone(),
        files: Vec::new(),
        checksums: PathBuf::new(),
        manifest: PathBuf::new(),
        diag_dir: s.diag_dir.clone(),
        run_uuid: String::new(),
        dry_run: true,
    }
}
