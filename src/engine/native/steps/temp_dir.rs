//! The build's private temp directory and its diagnostics directory (build log, serial
//! console, screenshots: `<output_directory>.build/`, replaced per build, kept afterwards).

use crate::engine::native::diag::BuildLogSink;
use crate::engine::native::resources::Dir;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use crate::engine::Build;
use std::path::PathBuf;
use std::sync::Arc;

/// The temp dir `-m` named, or the one the caller made to resolve the target in (`defs.temp_dir`),
/// registered for removal unless `-k`. Called before the first step, so a build that fails
/// validation leaves no empty directory behind.
pub(crate) fn adopt_given(r: &Runner, b: &Build) -> Option<PathBuf> {
    let dir = b.context.absolute(b.options.temp_dir.as_ref()?);
    if !b.options.keep && dir.is_dir() {
        r.register(Arc::new(Dir {
            what: "temp dir",
            path: dir.clone(),
        }));
    }
    Some(dir)
}

pub(crate) async fn run(
    r: &Runner,
    b: &Build,
    s: &Settings,
    given: Option<PathBuf>,
) -> Result<PathBuf, NativeError> {
    let dir = match given {
        Some(d) => {
            if !d.is_dir() {
                std::fs::create_dir_all(&d).map_err(|source| NativeError::CreateDir {
                    what: "temp dir",
                    path: d.clone(),
                    source,
                })?;
                if !b.options.keep {
                    r.register(Arc::new(Dir {
                        what: "temp dir",
                        path: d.clone(),
                    }));
                }
            }
            d
        }
        None => {
            let d = tempfile::Builder::new()
                .prefix("osimager-")
                .tempdir_in(&b.context.temp_root)
                .map_err(|source| NativeError::CreateDir {
                    what: "temp dir",
                    path: b.context.temp_root.clone(),
                    source,
                })?
                .keep();
            if !b.options.keep {
                r.register(Arc::new(Dir {
                    what: "temp dir",
                    path: d.clone(),
                }));
            }
            d
        }
    };
    r.events.log(format!("temp dir: {}", dir.display()));
    let _ = std::fs::remove_dir_all(&s.diag_dir);
    std::fs::create_dir_all(&s.diag_dir).map_err(|source| NativeError::CreateDir {
        what: "diagnostics directory",
        path: s.diag_dir.clone(),
        source,
    })?;
    let log_path = b
        .options
        .logfile
        .as_ref()
        .map(|p| b.context.absolute(p))
        .unwrap_or_else(|| s.diag_dir.join("build.log"));
    let sink = BuildLogSink::create(&log_path).map_err(|source| NativeError::BuildLog {
        path: log_path.clone(),
        source,
    })?;
    r.events.attach(Arc::new(sink), true);
    r.events.log(format!("build log: {}", log_path.display()));
    Ok(dir)
}
