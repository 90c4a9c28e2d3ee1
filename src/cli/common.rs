//! What the subcommands share: loading the configuration (its warnings printed), writing to
//! standard output, reporting an error, and the temp dir of one resolution.

use crate::config::{Config, ConfigOptions};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// The configuration (`--data-dir`, `--set` items, `--local`), its settings' warnings printed.
pub(crate) fn load(
    cli_data_dir: &Option<PathBuf>,
    set: Vec<String>,
    local: bool,
) -> Result<Config> {
    let cfg = Config::load(&ConfigOptions {
        data_dir: cli_data_dir.clone(),
        set,
        local_only: local,
    })?;
    for w in &cfg.settings.warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

/// Write `text` to standard output.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`osimager list | head`) is not an error.
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Print an error the way users read it: once, each cause only when it adds something.
pub(crate) fn report(e: &anyhow::Error) {
    let mut msg = format!("error: {e}");
    let mut shown = e.to_string();
    for c in e.chain().skip(1) {
        let t = c.to_string();
        if t.is_empty() || shown.contains(&t) {
            continue;
        }
        msg.push_str(&format!("\n  caused by: {t}"));
        shown.push_str(&t);
    }
    eprintln!("{}", crate::secret::redact(&msg));
}

/// A temp dir for one resolution: the user's (kept), a fresh one (removed on drop), or only a
/// fresh name (`dump`/`defs` write nothing there; creating and removing a directory would be a
/// sizeable part of their time).
pub(crate) enum TempDir {
    User(PathBuf),
    Fresh(tempfile::TempDir),
    Named(PathBuf),
}

impl TempDir {
    pub(crate) fn new(user: Option<PathBuf>) -> Result<TempDir> {
        Ok(match user {
            Some(p) => TempDir::User(p),
            None => TempDir::Fresh(
                tempfile::Builder::new()
                    .prefix("tmp")
                    .tempdir()
                    .context("creating a temp directory")?,
            ),
        })
    }
    /// The user's dir, else a name shaped like a fresh one's (`$TMPDIR/tmpXXXXXX`) that is not
    /// created.
    pub(crate) fn named(user: Option<PathBuf>) -> TempDir {
        use rand::distributions::{Alphanumeric, DistString};
        match user {
            Some(p) => TempDir::User(p),
            None => TempDir::Named(std::env::temp_dir().join(format!(
                "tmp{}",
                Alphanumeric.sample_string(&mut rand::thread_rng(), 6)
            ))),
        }
    }
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            TempDir::User(p) | TempDir::Named(p) => p.clone(),
            TempDir::Fresh(t) => t.path().to_path_buf(),
        }
    }
    /// Whether the dir is only named (resolve must not create it).
    pub(crate) fn named_only(&self) -> bool {
        matches!(self, TempDir::Named(_))
    }
    /// Keep a fresh dir on disk (returns its path).
    pub(crate) fn keep(self) -> PathBuf {
        match self {
            TempDir::User(p) | TempDir::Named(p) => p,
            TempDir::Fresh(t) => t.keep(),
        }
    }
}
