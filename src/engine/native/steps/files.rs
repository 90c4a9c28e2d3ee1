//! Write the spec's rendered files (answer files, scripts) into the temp dir.

use crate::engine::native::runner::Runner;
use crate::engine::native::NativeError;
use crate::engine::Build;
use std::path::{Path, PathBuf};

pub(crate) async fn run(r: &Runner, b: &Build, temp: &Path) -> Result<Vec<PathBuf>, NativeError> {
    if b.plan.inputs.files.is_empty() {
        r.skip("the spec generates no files");
        return Ok(Vec::new());
    }
    let written = b
        .plan
        .inputs
        .write_files(temp)
        .map_err(|source| NativeError::WriteFile {
            path: temp.to_path_buf(),
            source,
        })?;
    for f in &written {
        r.events.log(format!("generated {}", f.display()));
    }
    Ok(written)
}
