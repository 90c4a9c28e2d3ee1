//! Export the stopped VM's disk(s) into a staging directory beside the output directory
//! (`.<name>.partial-<pid>`), so a failed build never leaves a half-written output.

use crate::engine::native::artifacts;
use crate::engine::native::resources::{Dir, ResourceId, Vm};
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use std::path::PathBuf;
use std::sync::Arc;

/// The exported files, not yet in place.
pub(crate) struct Staged {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub id: ResourceId,
}

pub(crate) async fn run(r: &Runner, s: &Settings, vm: &Vm) -> Result<Staged, NativeError> {
    if let Some(parent) = s.output_dir.parent() {
        std::fs::create_dir_all(parent).map_err(|source| NativeError::CreateDir {
            what: "output parent directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let dir = artifacts::staging_dir(&s.output_dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|source| NativeError::CreateDir {
        what: "staging directory",
        path: dir.clone(),
        source,
    })?;
    let id = r.register(Arc::new(Dir {
        what: "staging directory",
        path: dir.clone(),
    }));
    let files = {
        let export = async { vm.lock().await.export(&dir).await };
        tokio::pin!(export);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                f = &mut export => break f.map_err(NativeError::Export)?,
                _ = tick.tick() => report_size(r, &dir, false),
            }
        }
    };
    report_size(r, &dir, true);
    Ok(Staged { dir, files, id })
}

/// Bytes written into the staging directory so far (drivers write the image there).
fn report_size(r: &Runner, dir: &std::path::Path, last: bool) {
    let done = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    r.events.progress(
        osimager_events::Progress::Bytes {
            label: "exporting the image".into(),
            done,
            total: None,
        },
        last,
    );
}
