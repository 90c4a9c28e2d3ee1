//! `file` provisioner: upload files, directories or inline `content` to the guest, or download
//! a file (`direction: download`). Packer's rules: a destination ending in `/` is a directory;
//! a source directory ending in `/` uploads its contents, otherwise the directory itself.

use super::entry::{Entry, ProvisionError};
use super::ProvisionContext;
use crate::comm::{shell_quote, Session};
use std::path::Path;

pub(crate) const KEYS: &[&str] = &[
    "source",
    "sources",
    "destination",
    "direction",
    "generated",
    "content",
];

pub(crate) fn check(e: &Entry) -> Result<(), ProvisionError> {
    if e.str("destination")?.unwrap_or_default().is_empty() {
        return Err(e.invalid("destination is required"));
    }
    let given = [e.has("source"), e.has("sources"), e.has("content")]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        return Err(e.invalid("exactly one of source, sources or content is required"));
    }
    match e.str("direction")?.as_deref() {
        None | Some("upload") => {}
        Some("download") if e.has("content") => {
            return Err(e.invalid("content cannot be downloaded"))
        }
        Some("download") => {}
        Some(d) => {
            return Err(e.invalid(format!("direction must be upload or download, got {d:?}")))
        }
    }
    e.bool("generated")?;
    if e.strings("sources")?.len() > 1 && !e.str("destination")?.unwrap_or_default().ends_with('/')
    {
        return Err(e.invalid("with several sources, destination must be a directory ending in /"));
    }
    Ok(())
}

pub(crate) async fn run(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    let dest = e.str("destination")?.unwrap_or_default();
    let session = ctx.session().await.map_err(|c| e.comm(c))?;
    if let Some(content) = e.str("content")? {
        tracing::info!("provisioners[{}]: uploading content to {dest}", e.index);
        return session
            .upload_bytes(content.as_bytes(), &dest, Some(0o644))
            .await
            .map_err(|c| e.comm(c));
    }
    let mut sources = e.str("source")?.into_iter().collect::<Vec<_>>();
    sources.extend(e.strings("sources")?);
    if e.str("direction")?.as_deref() == Some("download") {
        for src in sources {
            let mut local = ctx.local_path(&dest);
            if dest.ends_with('/') {
                local = local.join(Path::new(&src).file_name().unwrap_or_default());
            }
            tracing::info!(
                "provisioners[{}]: downloading {src} to {}",
                e.index,
                local.display()
            );
            let data = session.download(&src).await.map_err(|c| e.comm(c))?;
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|err| e.failed(format!("creating {}: {err}", parent.display())))?;
            }
            std::fs::write(&local, data)
                .map_err(|err| e.failed(format!("writing {}: {err}", local.display())))?;
        }
        return Ok(());
    }
    for src in sources {
        let local = ctx.local_path(&src);
        let meta = std::fs::metadata(&local).map_err(|err| {
            e.failed(format!(
                "source {} cannot be read: {err} (relative paths resolve against {})",
                local.display(),
                ctx.work_dir.display()
            ))
        })?;
        if meta.is_dir() {
            let target = if src.ends_with('/') {
                dest.trim_end_matches('/').to_string()
            } else {
                let base = local.file_name().unwrap_or_default().to_string_lossy();
                format!("{}/{base}", dest.trim_end_matches('/'))
            };
            tracing::info!(
                "provisioners[{}]: uploading directory {} to {target}",
                e.index,
                local.display()
            );
            upload_dir(&session, &local, &target)
                .await
                .map_err(|m| e.failed(m))?;
        } else {
            let target = if dest.ends_with('/') {
                format!(
                    "{dest}{}",
                    local.file_name().unwrap_or_default().to_string_lossy()
                )
            } else {
                dest.clone()
            };
            tracing::info!(
                "provisioners[{}]: uploading {} to {target}",
                e.index,
                local.display()
            );
            session
                .upload(&local, &target)
                .await
                .map_err(|c| e.comm(c))?;
        }
    }
    Ok(())
}

/// Upload a directory tree file by file (no tar/scp needed in the guest).
async fn upload_dir(session: &Session, local: &Path, remote: &str) -> Result<(), String> {
    let mut stack = vec![(local.to_path_buf(), remote.to_string())];
    while let Some((dir, rdir)) = stack.pop() {
        let st = session
            .exec(&format!("mkdir -p {}", shell_quote(&rdir)))
            .await
            .map_err(|c| c.to_string())?;
        if !st.success() {
            return Err(format!("mkdir -p {rdir} in the guest ended with {st}"));
        }
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|err| format!("reading {}: {err}", dir.display()))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|d| d.file_name());
        for ent in entries {
            let path = ent.path();
            let rpath = format!("{rdir}/{}", ent.file_name().to_string_lossy());
            if path.is_dir() {
                stack.push((path, rpath));
            } else {
                session
                    .upload(&path, &rpath)
                    .await
                    .map_err(|c| c.to_string())?;
            }
        }
    }
    Ok(())
}
