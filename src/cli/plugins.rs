//! `mkosimage --init-plugins`: install the Packer plugins the platforms name.

use crate::config::Config;
use anyhow::{bail, Result};
use std::process::ExitCode;

fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

/// Install the ansible plugin and every platform's `plugin` with `packer plugins install`.
pub(crate) fn init_plugins(cfg: &Config) -> Result<ExitCode> {
    let packer = cfg.settings.get_str("packer_cmd");
    let mut plugins = vec!["github.com/hashicorp/ansible".to_string()];
    for (_, p) in cfg.platforms()? {
        if let Some(serde_json::Value::String(pl)) = p.get("plugin") {
            if !plugins.contains(pl) {
                plugins.push(pl.clone());
            }
        }
    }
    out(&format!("Installing {} Packer plugins...\n", plugins.len()));
    let mut failed = Vec::new();
    for p in &plugins {
        out(&format!("  {p}\n"));
        let r = std::process::Command::new(&packer)
            .args(["plugins", "install", p])
            .output();
        match r {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                out(&format!(
                    "    FAILED: {}\n",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                failed.push(p.clone());
            }
            Err(e) => bail!(
                "cannot run '{packer}' (setting packer_cmd): {e}; install Packer or set packer_cmd"
            ),
        }
    }
    if !failed.is_empty() {
        out(&format!(
            "\n{} plugin(s) failed to install:\n",
            failed.len()
        ));
        for p in failed {
            out(&format!("  {p}\n"));
        }
        return Ok(ExitCode::FAILURE);
    }
    out("Done.\n");
    Ok(ExitCode::SUCCESS)
}
