//! `osimager cache list|prune`: the install cache of native builds (`build --cache use`).

use super::args::CacheAction;
use crate::install_cache::{fmt_size, EntryInfo, Store, DEFAULT_MAX_SIZE};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

pub(crate) fn run(
    cfg: &crate::config::Config,
    action: &CacheAction,
    dir: Option<PathBuf>,
    max_size: Option<u64>,
) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| cfg.install_cache_dir());
    let max = max_size.unwrap_or(DEFAULT_MAX_SIZE);
    let store = Store::open(&dir, max)
        .with_context(|| format!("opening the install cache {}", dir.display()))?;
    match action {
        CacheAction::List { json } => {
            let entries = store.entries();
            let text = if *json {
                serde_json::to_string_pretty(&entries.iter().map(as_json).collect::<Vec<_>>())?
                    + "\n"
            } else {
                table(&store, &entries)
            };
            super::common::print(&text)?;
        }
        CacheAction::Prune {
            all,
            key,
            max_size,
            older_than,
        } => {
            let mut removed = 0usize;
            let mut kept_in_use = Vec::new();
            let age = older_than
                .as_deref()
                .map(|s| {
                    humantime::parse_duration(s).with_context(|| {
                        format!("--older-than {s:?}: use a duration such as 30d or 12h")
                    })
                })
                .transpose()?;
            let now = SystemTime::now();
            for e in store.entries() {
                let by_key = key
                    .as_deref()
                    .is_some_and(|k| !k.is_empty() && e.meta.key.starts_with(k));
                let old = age
                    .is_some_and(|a| now.duration_since(e.last_used).unwrap_or(Duration::ZERO) > a);
                if !(*all || by_key || old) {
                    continue;
                }
                if store.remove(&e.meta.key)? {
                    removed += 1;
                    eprintln!(
                        "removed {} ({}, {})",
                        &e.meta.key[..12],
                        e.meta.target,
                        fmt_size(e.size)
                    );
                } else {
                    kept_in_use.push(e.meta.key[..12].to_string());
                }
            }
            if !*all && key.is_none() {
                for g in store.evict(*max_size)? {
                    removed += 1;
                    eprintln!(
                        "evicted {} ({}, {})",
                        &g.key[..12],
                        g.target,
                        fmt_size(g.size)
                    );
                }
            }
            if let Some(k) = key {
                if removed == 0 && kept_in_use.is_empty() {
                    anyhow::bail!("no cached install has a key starting with {k:?} (see `osimager cache list`)");
                }
            }
            for k in &kept_in_use {
                eprintln!("kept {k}: a build is using it");
            }
            eprintln!(
                "{removed} removed; {} left in {}",
                fmt_size(store.entries().iter().map(|e| e.size).sum()),
                store.dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn as_json(e: &EntryInfo) -> serde_json::Value {
    serde_json::json!({
        "key": e.meta.key,
        "target": e.meta.target,
        "name": e.meta.name,
        "builder_type": e.meta.builder_type,
        "osimager": e.meta.osimager,
        "created": humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(e.meta.created)).to_string(),
        "last_used": humantime::format_rfc3339_seconds(e.last_used).to_string(),
        "size": e.size,
        "in_use": e.in_use,
        "path": e.dir.display().to_string(),
        "inputs": e.meta.inputs.items.keys().collect::<Vec<_>>(),
    })
}

fn ago(t: SystemTime) -> String {
    let d = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO);
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn table(store: &Store, entries: &[EntryInfo]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str(&format!(
            "no cached installs in {} (build with --cache use to make one)\n",
            store.dir.display()
        ));
        return out;
    }
    out.push_str(&format!(
        "{:<12}  {:<40}  {:<16}  {:>10}  {:<10}  {}\n",
        "KEY", "TARGET", "NAME", "SIZE", "USED", "CREATED"
    ));
    for e in entries {
        out.push_str(&format!(
            "{:<12}  {:<40}  {:<16}  {:>10}  {:<10}  {}{}\n",
            &e.meta.key[..12],
            e.meta.target,
            e.meta.name,
            fmt_size(e.size),
            ago(e.last_used),
            humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_secs(e.meta.created)
            ),
            if e.in_use { "  (in use)" } else { "" }
        ));
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    out.push_str(&format!(
        "{} entries, {} of {} in {}\n",
        entries.len(),
        fmt_size(total),
        fmt_size(store.max_size),
        store.dir.display()
    ));
    out
}
