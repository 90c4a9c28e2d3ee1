//! `--check-urls` on a loaded [`Config`].

use crate::config::{Config, ResolveRequest};
use crate::engine::packer::urls::{check_urls as report_urls, group_urls};
use std::path::PathBuf;
use std::time::Duration;

/// `--check-urls`: resolve every indexed spec against a throw-away location (as OSImager does:
/// `virtualbox/_urlcheck/<spec>`, name `urlcheck`, IP 10.0.0.99), HEAD each distinct remote ISO
/// URL and print the report to `out`. Returns (ok, failed).
pub fn check_urls(
    config: &Config,
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<(usize, usize)> {
    let index = config.index()?;
    let keys: Vec<String> = index.keys().map(str::to_string).collect();
    if keys.is_empty() {
        writeln!(
            out,
            "No specs found in {}/specs/",
            config.layers.system.display()
        )?;
        writeln!(
            out,
            "  Or create your own: {}/specs/",
            config.layers.user.display()
        )?;
        return Ok((0, 0));
    }
    let loc_dir = config.layers.user.join("locations");
    std::fs::create_dir_all(&loc_dir)?;
    let dummy = loc_dir.join("_urlcheck.json");
    std::fs::write(
        &dummy,
        serde_json::json!({
            "platforms": ["virtualbox"],
            "defs": {
                "domain": "check.local", "cidr": "10.0.0.0/24",
                "gateway": "10.0.0.1", "vms_path": "/tmp/vms",
                "iso_path": "/tmp/iso",
                "dns": {"servers": ["10.0.0.1"]},
                "ntp": {"servers": ["pool.ntp.org"]}
            }
        })
        .to_string(),
    )?;
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(dummy);
    let scratch = tempfile::Builder::new()
        .prefix("osimager-urlcheck-")
        .tempdir()?;
    let mut sorted = keys.clone();
    sorted.sort();
    let mut pairs = Vec::new();
    let mut skipped = 0usize;
    for key in &sorted {
        let req = ResolveRequest {
            target: format!("virtualbox/_urlcheck/{key}"),
            name: Some("urlcheck".into()),
            ip: Some("10.0.0.99".into()),
            temp_dir: scratch.path().to_path_buf(),
            ..Default::default()
        };
        let url = config
            .resolve(&req)
            .ok()
            .and_then(|p| {
                p.defs
                    .get("iso_url")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if url.is_empty() || url.starts_with("file://") {
            skipped += 1;
        } else {
            pairs.push((key.clone(), url));
        }
    }
    let groups = group_urls(&pairs);
    Ok(report_urls(&groups, keys.len(), skipped, timeout, out)?)
}
