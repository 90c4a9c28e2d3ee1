//! The Packer engine's entry points on a loaded [`Config`]: `build`, `retrofit`, `check_urls`.

use super::urls::{check_urls as report_urls, group_urls};
use super::{retrofit, run, PackerContext, PackerError, PackerReport};
use crate::config::{Config, ResolveRequest};
use crate::engine::BuildOptions;
use crate::plan::BuildPlan;
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Flags of `mkosimage` that the shared [`BuildOptions`] does not carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackerFlags {
    /// `--skip`: no provisioners and no Ansible venv (the plan should also be resolved with
    /// `ResolveRequest::skip`).
    pub skip: bool,
    /// `-v`: say what is done (data dir, template path, hook scripts).
    pub verbose: bool,
}

impl PackerContext {
    /// Settings and data layers of a loaded configuration.
    pub fn from_config(config: &Config, flags: PackerFlags) -> PackerContext {
        let st = &config.settings;
        let get = |k: &str| st.get_str(k);
        let venv_dir = PathBuf::from(get("venv_dir"));
        let venv_dir = if venv_dir.is_absolute() {
            venv_dir
        } else {
            PathBuf::from(get("base_dir")).join(venv_dir)
        };
        let token = get("vault_token");
        PackerContext {
            packer_cmd: match get("packer_cmd") {
                c if c.is_empty() => "packer".into(),
                c => c,
            },
            venv_dir,
            user_dir: config.layers.user.clone(),
            data_dirs: vec![config.layers.system.clone()],
            vault_addr: get("vault_addr"),
            vault_token: (!token.is_empty()).then(|| Secret::new(token)),
            settings: st.values.clone(),
            skip: flags.skip,
            verbose: flags.verbose,
        }
    }
}

/// `osimager build --engine packer` / `mkosimage`: run the plan through Packer.
pub fn build(
    config: &Config,
    plan: &BuildPlan,
    opts: &BuildOptions,
) -> anyhow::Result<PackerReport> {
    build_with(config, plan, opts, PackerFlags::default()).map_err(anyhow::Error::from)
}

/// [`build`] with the mkosimage-only flags.
pub fn build_with(
    config: &Config,
    plan: &BuildPlan,
    opts: &BuildOptions,
    flags: PackerFlags,
) -> Result<PackerReport, PackerError> {
    let ctx = PackerContext::from_config(config, flags);
    let generate = |dir: &Path| {
        crate::config::files::generate(config, plan, dir).map_err(|e| anyhow::anyhow!("{e}"))
    };
    run(&ctx, plan, opts, &generate)
}

/// `osimager retrofit` / `rfosimage`: provision an existing machine through Packer's null
/// builder (see [`retrofit`](super::retrofit)).
pub fn retrofit_with(
    config: &Config,
    plan: &BuildPlan,
    opts: &BuildOptions,
    flags: PackerFlags,
) -> Result<PackerReport, PackerError> {
    let ctx = PackerContext::from_config(config, flags);
    retrofit::retrofit(&ctx, plan, opts)
}

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
