//! Native retrofit (`osimager retrofit`, `rfosimage`): run a target's provisioners against a
//! machine that already exists, over SSH, without Packer. The plan is the one `build` would use;
//! only the communicator keys of its builder matter. The machine is reached at `ssh_host` if
//! the builder sets it, else the IP given on the command line, else the FQDN / name.

use super::error::anyhow_compat::Boxed;
use super::{Build, BuildError};
use crate::plan::BuildPlan;
use anyhow::{bail, Context, Result};
use osimager_events::{BuildEvent, LogSource, Outcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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

/// Run `plan.provisioners` against the existing machine (no spec files are generated, as in
/// OSImager's `rfosimage`).
pub async fn run(b: &Build) -> Result<(), BuildError> {
    let ev = &b.events;
    let started = Instant::now();
    ev.emit(BuildEvent::StepStarted {
        step: "retrofit".into(),
    });
    let result = tokio::select! {
        r = provision(b) => r,
        _ = b.cancel.cancelled() => Err(anyhow::anyhow!("interrupted by {}", b.cancel.reason())),
    };
    ev.emit(BuildEvent::StepFinished {
        step: "retrofit".into(),
        outcome: if result.is_ok() {
            Outcome::Ok
        } else if b.cancel.is_cancelled() {
            Outcome::Cancelled
        } else {
            Outcome::Failed
        },
        duration_ms: started.elapsed().as_millis() as u64,
    });
    result.map_err(|e| BuildError::Retrofit(Boxed(e)))
}

async fn provision(b: &Build) -> Result<()> {
    let (plan, opts, ev) = (&b.plan, &b.options, &b.events);
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
    if let Some(pw) = &ssh.password {
        b.context.secrets.register(pw.expose());
    }
    let (host, port) = endpoint(plan, &ssh)?;
    if opts.dry_run {
        ev.log(format!(
            "dry run: would connect to {host}:{port} as {:?} and run {} provisioner(s)",
            ssh.username,
            plan.provisioners.len()
        ));
        return Ok(());
    }
    let temp: PathBuf = match &opts.temp_dir {
        Some(t) => b.context.absolute(t),
        None => b
            .context
            .temp_root
            .join(format!("osimager-retrofit-{}", super::new_build_id())),
    };
    std::fs::create_dir_all(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let result = async {
        let ptemp = temp.join("provision");
        std::fs::create_dir_all(&ptemp).with_context(|| format!("creating {}", ptemp.display()))?;
        ev.log(format!("connecting to {host}:{port}"));
        let session = crate::comm::wait_ready(&host, port, &ssh).await?;
        ev.log(format!(
            "provision ({} provisioner(s))",
            plan.provisioners.len()
        ));
        let mut ctx = crate::provision::ProvisionContext::from_plan(plan, &host, port, &ptemp)?
            .with_environment(b.context.vars.clone(), b.context.secrets.clone())
            .with_session(session);
        let events = ev.clone();
        ctx.on_output = Some(Arc::new(move |line: &str| {
            events.log_from(LogSource::Provisioner, line)
        }));
        crate::provision::run_all(&plan.provisioners, &ctx).await?;
        if let Some(s) = ctx.into_session() {
            s.close().await;
        }
        anyhow::Ok(())
    }
    .await;
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&temp);
    } else {
        ev.log(format!("temp dir kept: {}", temp.display()));
    }
    result?;
    ev.log(format!("retrofit of {host} finished"));
    Ok(())
}
