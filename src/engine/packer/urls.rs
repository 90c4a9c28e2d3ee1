//! ISO URL checks: `--check-urls` (every spec's download URL, HEAD, ten at a time) and the
//! per-build check, plus the `--avail` line format.
//!
//! HEAD semantics follow Python's `urllib.request.urlopen` that OSImager uses: 307/308 are
//! followed, 301/302 are not (urllib reports them as the status, and `--check-urls` counts
//! 200/301/302 as OK).

use futures_util::stream::{self, StreamExt};
use std::time::Duration;

/// Status of a URL, or the error text (truncated to 60 characters like OSImager's report).
pub type UrlStatus = Result<u16, String>;

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let code = attempt.status().as_u16();
        if (code == 307 || code == 308) && attempt.previous().len() < 10 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .user_agent(concat!("osimager/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

fn short(e: impl std::fmt::Display) -> String {
    e.to_string().chars().take(60).collect()
}

async fn head(client: &reqwest::Client, url: &str) -> UrlStatus {
    match client.head(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(short(e)),
    }
}

/// Run `fut_fn` on a private single-threaded runtime in its own thread, so callers may be inside
/// or outside an async context.
fn on_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(rt.block_on(f()))
    })
    .join()
    .map_err(|_| "URL check thread panicked".to_string())?
}

/// HEAD one URL.
pub fn head_status(url: &str, timeout: Duration) -> UrlStatus {
    let url = url.to_string();
    on_runtime(move || {
        Box::pin(async move {
            let c = client(timeout)?;
            head(&c, &url).await
        })
    })?
}

/// HEAD many URLs, ten at a time; results in input order.
pub fn head_many(urls: &[String], timeout: Duration) -> Vec<UrlStatus> {
    let urls = urls.to_vec();
    let n = urls.len();
    on_runtime(move || {
        Box::pin(async move {
            let c = match client(timeout) {
                Ok(c) => c,
                Err(e) => return vec![Err(e); urls.len()],
            };
            let mut out: Vec<(usize, UrlStatus)> = stream::iter(urls.into_iter().enumerate())
                .map(|(i, u)| {
                    let c = c.clone();
                    async move { (i, head(&c, &u).await) }
                })
                .buffer_unordered(10)
                .collect()
                .await;
            out.sort_by_key(|(i, _)| *i);
            out.into_iter().map(|(_, s)| s).collect()
        })
    })
    .unwrap_or_else(|e| vec![Err(e); n])
}

/// One URL and the specs that download it (first spec names the group in the report).
#[derive(Debug, Clone, PartialEq)]
pub struct UrlGroup {
    pub url: String,
    pub specs: Vec<String>,
}

/// `--check-urls`: check each group, print OSImager's report, return (ok, failed).
/// `total_specs` is the index size; `skipped` the specs with no remote URL.
pub fn check_urls(
    groups: &[UrlGroup],
    total_specs: usize,
    skipped: usize,
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> std::io::Result<(usize, usize)> {
    writeln!(
        out,
        "Checking {} unique URLs across {} specs ({} local-only)...",
        groups.len(),
        total_specs.saturating_sub(skipped),
        skipped
    )?;
    writeln!(out)?;
    let urls: Vec<String> = groups.iter().map(|g| g.url.clone()).collect();
    let statuses = head_many(&urls, timeout);
    let mut failed: Vec<(&UrlGroup, String)> = Vec::new();
    let mut ok = 0;
    for (g, st) in groups.iter().zip(statuses) {
        match st {
            Ok(200 | 301 | 302) => ok += 1,
            Ok(code) => failed.push((g, code.to_string())),
            Err(e) => failed.push((g, e)),
        }
    }
    if !failed.is_empty() {
        failed.sort_by(|a, b| a.0.specs.first().cmp(&b.0.specs.first()));
        for (g, status) in &failed {
            let first = g.specs.first().map(String::as_str).unwrap_or("");
            writeln!(out, "  FAIL ({status}): {first}")?;
            if g.specs.len() > 1 {
                writeln!(out, "    also: {}", g.specs[1..].join(", "))?;
            }
            writeln!(out, "    {}", g.url)?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Results: {ok} OK, {} FAILED, {skipped} local-only",
        failed.len()
    )?;
    Ok((ok, failed.len()))
}

/// Group (spec, url) pairs by URL, in first-seen order (OSImager iterates specs sorted).
pub fn group_urls(pairs: &[(String, String)]) -> Vec<UrlGroup> {
    let mut groups: Vec<UrlGroup> = Vec::new();
    for (spec, url) in pairs {
        match groups.iter_mut().find(|g| &g.url == url) {
            Some(g) => g.specs.push(spec.clone()),
            None => groups.push(UrlGroup {
                url: url.clone(),
                specs: vec![spec.clone()],
            }),
        }
    }
    groups
}

/// One `--avail` line: the spec's ISO source, a path when the ISO is local, the URL when it would
/// be downloaded, nothing when it is neither local nor downloadable (or `local_only`).
/// `url` is the index entry's `iso_url` (or `disk_image_url` for image-import specs).
pub fn avail_line(
    spec_key: &str,
    url: &str,
    is_local: bool,
    iso_path: &str,
    local_only: bool,
) -> Option<String> {
    if url.is_empty() {
        return None;
    }
    let source = if is_local {
        match url.strip_prefix("file://") {
            Some(p) => p.to_string(),
            None => std::path::Path::new(iso_path)
                .join(crate::urlname::filename_from_url(url))
                .display()
                .to_string(),
        }
    } else if !local_only && !url.starts_with("file://") {
        url.to_string()
    } else {
        return None;
    };
    Some(format!("  {spec_key:<30} {source}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avail_lines() {
        assert_eq!(
            avail_line("debian-12-x86_64", "http://h/d.iso", true, "/iso", false).unwrap(),
            format!("  {:<30} /iso/d.iso", "debian-12-x86_64")
        );
        assert_eq!(
            avail_line("a", "http://h/d.iso", false, "/iso", false).unwrap(),
            format!("  {:<30} http://h/d.iso", "a")
        );
        assert!(avail_line("a", "http://h/d.iso", false, "/iso", true).is_none());
        assert!(avail_line("a", "file:///x.iso", false, "/iso", false).is_none());
    }

    #[test]
    fn grouping() {
        let g = group_urls(&[
            ("a".into(), "u1".into()),
            ("b".into(), "u2".into()),
            ("c".into(), "u1".into()),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].specs, vec!["a", "c"]);
    }
}
