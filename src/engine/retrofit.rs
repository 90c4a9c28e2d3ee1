//! Native retrofit (`osimager retrofit`, `rfosimage`): run a target's provisioners against a
//! machine that already exists, over SSH, without Packer. The plan is the one `build` would use;
//! only the communicator keys of its builder matter. The machine is reached at `ssh_host` if
//! the builder sets it, else the IP given on the command line, else the FQDN / name.

use super::BuildOptions;
use crate::plan::BuildPlan;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Where the communicator connects: (host, port).
pub fn endpoint(plan: &BuildPlan, ssh: &crate::comm::SshConfig) -> Result<(String, u16)> {
    let host = [
        ssh.host.clone().unwrap_or_default(),
        plan.ip.clone(),
        plan.fqdn.clone(),
        plan.name.clone(),
    ]
    .into_iter()
    .find(|h| !h.is_empty());
    match host {
        Some(h) => Ok((h, ssh.port)),
        None => bail!(
            "retrofit needs the machine's address: give NAME and IP (osimager retrofit TARGET NAME IP) \
             or set ssh_host in the builder"
        ),
    }
}

/// Run `plan.provisioners` against the existing machine.
///
/// Like OSImager's `rfosimage`, no spec files are generated: only the provisioners run.
pub fn run(plan: &BuildPlan, opts: &BuildOptions) -> Result<()> {
    let comm = plan
        .builder
        .get("communicator")
        .and_then(|v| v.as_str())
        .unwrap_or("ssh");
    if comm != "ssh" {
        bail!(
            "native retrofit speaks SSH only; this target's communicator is {comm:?}: \
             use --engine packer"
        );
    }
    let ssh = crate::comm::SshConfig::from_builder(&plan.builder)
        .context("reading the communicator keys (ssh_*) of the builder")?;
    let (host, port) = endpoint(plan, &ssh)?;
    let temp: PathBuf = match &opts.temp_dir {
        Some(t) => t.clone(),
        None => std::env::temp_dir().join(format!("osimager-retrofit-{}", std::process::id())),
    };
    std::fs::create_dir_all(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let result = (|| -> Result<()> {
        if opts.dry_run {
            eprintln!(
                "dry run: would connect to {host}:{port} as {:?} and run {} provisioner(s)",
                ssh.username,
                plan.provisioners.len()
            );
            return Ok(());
        }
        let ptemp = temp.join("provision");
        std::fs::create_dir_all(&ptemp)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            eprintln!("==> connecting to {host}:{port}");
            let session = crate::comm::wait_ready(&host, port, &ssh).await?;
            eprintln!("==> provision ({} provisioner(s))", plan.provisioners.len());
            let ctx = crate::provision::ProvisionContext::from_plan(plan, &host, port, &ptemp)?
                .with_session(session);
            crate::provision::run_all(&plan.provisioners, &ctx).await?;
            if let Some(s) = ctx.into_session() {
                s.close().await;
            }
            anyhow::Ok(())
        })
    })();
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&temp);
    } else {
        eprintln!("temp dir kept: {}", temp.display());
    }
    result.map(|_| eprintln!("==> retrofit of {host} finished"))
}
