//! The build temp dir (generated files and the template). OSImager: `tempfile.mkdtemp()` unless
//! `-m DIR`; removed at the end unless `-k` or `-m`. We also remove it when the build fails.
//!
//! The configuration needs the path before the plan exists (`defs.temp_dir` appears in builder
//! values such as `cd_files`), so the caller creates it first and resolves with it; the engine
//! adopts the plan's temp dir and removes it at the end unless `opts.keep`.

use crate::engine::BuildOptions;
use std::path::{Path, PathBuf};

/// A temp dir removed on drop unless kept.
#[derive(Debug)]
pub struct BuildTempDir {
    path: PathBuf,
    remove: bool,
}

impl BuildTempDir {
    /// Removed at the end unless kept (`-k`; the CLI also keeps a `-m DIR` the user named).
    fn should_remove(opts: &BuildOptions) -> bool {
        !opts.keep
    }

    /// `opts.temp_dir` (created if missing) or a fresh `<temp_root>/tmpXXXXXXXX`.
    pub fn create(
        opts: &BuildOptions,
        temp_root: &Path,
    ) -> Result<BuildTempDir, (PathBuf, std::io::Error)> {
        if let Some(p) = &opts.temp_dir {
            return Self::adopt(p.clone(), opts);
        }
        let dir = tempfile::Builder::new()
            .prefix("tmp")
            .tempdir_in(temp_root)
            .map_err(|e| (temp_root.to_path_buf(), e))?;
        Ok(BuildTempDir {
            path: dir.keep(),
            remove: Self::should_remove(opts),
        })
    }

    /// Take charge of an existing path (created if missing).
    pub fn adopt(
        path: PathBuf,
        opts: &BuildOptions,
    ) -> Result<BuildTempDir, (PathBuf, std::io::Error)> {
        std::fs::create_dir_all(&path).map_err(|e| (path.clone(), e))?;
        Ok(BuildTempDir {
            path,
            remove: Self::should_remove(opts),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Will the dir be removed when this guard drops?
    pub fn will_remove(&self) -> bool {
        self.remove
    }

    /// Keep the dir (e.g. `--on-error=abort` after a failure).
    pub fn keep(&mut self) {
        self.remove = false;
    }
}

impl Drop for BuildTempDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
