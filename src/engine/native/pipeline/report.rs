//! The last step: checksums, commit of the output directory, manifest; and the dry-run report.

use super::Pipeline;
use crate::engine::native::artifacts;
use crate::engine::native::cleanup::Undo;
use crate::engine::native::{BuildReport, DriverFactory};
use anyhow::Result;
use osimager_drivers::Driver;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

impl<D: Driver, F: DriverFactory<D>> Pipeline<'_, D, F> {
    /// `-n`: say what would happen, create nothing.
    pub(super) fn dry_run_report(&self) -> BuildReport {
        let s = self.s();
        let iso = s
            .iso
            .as_ref()
            .map(|r| r.urls.join(", "))
            .unwrap_or_default();
        self.log.line(&format!(
            "dry run: would build VM {:?} from {} into {} ({} boot command strings, \
             {} provisioners, communicator {})",
            s.vm_name,
            if iso.is_empty() { "no ISO" } else { &iso },
            s.output_dir.display(),
            s.boot_command.len(),
            self.plan.provisioners.len(),
            if s.ssh.is_some() { "ssh" } else { "none" }
        ));
        BuildReport {
            output_dir: s.output_dir.clone(),
            files: Vec::new(),
            checksums: PathBuf::new(),
            manifest: PathBuf::new(),
            log: None,
            diag_dir: s.diag_dir.clone(),
            run_uuid: String::new(),
            duration: self.started.elapsed(),
            dry_run: true,
        }
    }

    pub(super) fn step_manifest(&mut self, files: Vec<PathBuf>) -> Result<BuildReport> {
        let s = self.s().clone();
        let staging = self.staging.clone().expect("export ran");
        let sums = artifacts::write_checksums(&staging, &files)?;
        artifacts::commit(&staging, &s.output_dir, self.opts.force)?;
        self.undo.forget(&Undo::RemoveDir(staging.clone()));
        let moved = |p: &Path| s.output_dir.join(p.strip_prefix(&staging).unwrap_or(p));
        let files: Vec<PathBuf> = files.iter().map(|f| moved(f)).collect();
        let mut listed = Vec::new();
        for f in &files {
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            listed.push((f.display().to_string(), size));
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
                    "target": self.plan.target,
                    "name": self.plan.name,
                    "vm_name": s.vm_name,
                    "engine": "native",
                }),
            },
        )?;
        self.log.line(&format!("manifest: {}", manifest.display()));
        Ok(BuildReport {
            output_dir: s.output_dir.clone(),
            files,
            checksums: moved(&sums),
            manifest,
            log: self.log.path().map(Path::to_path_buf),
            diag_dir: s.diag_dir.clone(),
            run_uuid,
            duration: self.started.elapsed(),
            dry_run: false,
        })
    }
}
