//! After an install cache miss, when the guest first answers on SSH and before any provisioner:
//! flush the guest's caches (`sync` over the engine's session), have the driver freeze the
//! disks as they are (the VM goes on writing elsewhere), and store them in the install cache
//! in the background while provisioning runs. The entry is committed even when a later step
//! fails: the install itself succeeded, and the next build (after fixing the playbook) can
//! start from it. Problems here never fail the build; they are warnings.

use super::install_cache::Miss;
use super::wait_for_ssh::SharedSession;
use crate::engine::native::resources::Resource;
use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::NativeError;
use crate::engine::{Build, Events};
use crate::install_cache::{fmt_size, Committed, EntryMeta, Store};
use async_trait::async_trait;
use osimager_drivers::DiskState;
use std::path::PathBuf;
use std::sync::Arc;

/// The background store of the entry, awaited when the build ends.
struct Storing {
    what: String,
    handle: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[async_trait]
impl Resource for Storing {
    fn describe(&self) -> String {
        self.what.clone()
    }
    async fn undo(&self) -> Result<(), String> {
        if let Some(h) = self.handle.lock().await.take() {
            h.await
                .map_err(|e| format!("storing the install failed: {e}"))?;
        }
        Ok(())
    }
    fn leave(&self) -> Option<Vec<String>> {
        None
    }
}

pub(crate) async fn run(
    r: &Runner,
    b: &Build,
    vm: &Vm,
    session: &SharedSession,
    miss: &Miss,
) -> Result<(), NativeError> {
    // Flush what the guest still holds in memory: the frozen disk is then what a clean
    // shutdown would have left, except that the file systems are marked in use (journal).
    {
        let guard = session.lock().await;
        let Some(sess) = guard.as_ref() else {
            r.skip("install cache: no SSH session to flush the guest's caches; not cached");
            return Ok(());
        };
        let started = std::time::Instant::now();
        match sess.exec_capture("sync").await {
            Ok((st, _, _)) if st.success() => r.events.log(format!(
                "install cache: the guest flushed its caches (`sync`, {:.2} s)",
                started.elapsed().as_secs_f64()
            )),
            Ok((st, _, err)) => {
                r.events.warn(format!(
                    "install cache: `sync` in the guest failed ({}: {}); not cached",
                    st.packer_code(),
                    err.trim()
                ));
                return Ok(());
            }
            Err(e) => {
                r.events.warn(format!(
                    "install cache: `sync` in the guest failed ({e}); not cached"
                ));
                return Ok(());
            }
        }
    }
    let saved = {
        let mut d = vm.lock().await;
        let saved = d.save_disk_state().await;
        for w in d.take_warnings() {
            r.events.warn(format!("install cache: {w}"));
        }
        saved
    };
    let state = match saved {
        Ok(st) => st,
        Err(e) => {
            r.events.warn(format!(
                "install cache: saving the disk state failed ({e}); not cached"
            ));
            return Ok(());
        }
    };
    let meta = EntryMeta {
        format: crate::install_cache::key::FORMAT,
        key: miss.key.clone(),
        target: b.plan.target.clone(),
        name: b.plan.name.clone(),
        builder_type: b.plan.builder_type().to_string(),
        osimager: env!("CARGO_PKG_VERSION").to_string(),
        created: crate::install_cache::store::created_now(),
        files: state
            .files
            .iter()
            .map(|(role, p)| (role.clone(), file_name(role, p)))
            .collect(),
        inputs: miss.inputs.clone(),
        stamps: Default::default(),
    };
    let store = miss.store.clone();
    let replace = miss.replace;
    let events = r.events.clone();
    let handle =
        tokio::task::spawn_blocking(move || store_entry(&store, state, meta, replace, &events));
    let handle = tokio::spawn(async move {
        let _ = handle.await;
    });
    r.register(Arc::new(Storing {
        what: format!("storing the install in the cache as {}", &miss.key[..12]),
        handle: tokio::sync::Mutex::new(Some(handle)),
    }));
    r.events.log(format!(
        "install cache: the installed system's disk is frozen and being stored as {}",
        &miss.key[..12]
    ));
    Ok(())
}

/// `disk0.qcow2`, `efivars.fd`: the role and the source file's extension.
fn file_name(role: &str, p: &std::path::Path) -> String {
    match p.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{role}.{ext}"),
        None => role.to_string(),
    }
}

fn store_entry(store: &Store, state: DiskState, meta: EntryMeta, replace: bool, events: &Events) {
    let short = meta.key[..12].to_string();
    let staging = match store.stage(&meta.key) {
        Ok(d) => d,
        Err(e) => {
            events.warn(format!("install cache: {e}; not cached"));
            return;
        }
    };
    let discard = |staging: PathBuf, e: String| {
        let _ = std::fs::remove_dir_all(&staging);
        events.warn(format!("install cache: {e}; not cached"));
    };
    for (role, src) in &state.files {
        let name = &meta.files[role];
        if let Err(e) = Store::add_file(&staging, name, src) {
            return discard(staging, e.to_string());
        }
    }
    match store.commit(&staging, &meta, replace) {
        Ok(Committed::Stored) | Ok(Committed::Replaced) => {
            let size = store
                .entries()
                .iter()
                .find(|e| e.meta.key == meta.key)
                .map(|e| e.size)
                .unwrap_or(0);
            events.log(format!(
                "install cache: stored {short} ({}) in {}",
                fmt_size(size),
                store.dir.display()
            ));
        }
        Ok(Committed::AlreadyThere) => events.log(format!(
            "install cache: {short} was stored meanwhile by another build; this copy was dropped"
        )),
        Ok(Committed::InUse) => events.warn(format!(
            "install cache: {short} is in use by another build and was not replaced"
        )),
        Err(e) => return discard(staging, e.to_string()),
    }
    match store.evict(None) {
        Ok(gone) => {
            for g in gone {
                events.log(format!(
                    "install cache: evicted {} ({}, {}) to stay within {}",
                    &g.key[..12],
                    g.target,
                    fmt_size(g.size),
                    fmt_size(store.max_size)
                ));
            }
        }
        Err(e) => events.warn(format!("install cache: eviction failed: {e}")),
    }
}
