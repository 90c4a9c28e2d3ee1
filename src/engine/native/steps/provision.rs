//! Run the plan's provisioners (Ansible, shell, shell-local, file) against the guest over the
//! engine's SSH session; their output goes to the event stream line by line.

use super::wait_for_ssh::SharedSession;
use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use crate::engine::Build;
use crate::provision::{ProvisionContext, ProvisionError};
use osimager_drivers::HttpEndpoint;
use osimager_events::LogSource;
use std::path::Path;
use std::sync::Arc;

/// The running guest the provisioners work on: the VM (watched: a VM that dies stops the
/// step), the engine's SSH session and the address it reached.
pub(crate) struct Guest<'a> {
    pub vm: &'a Vm,
    pub session: &'a SharedSession,
    pub addr: (String, u16),
}

pub(crate) async fn run(
    r: &Runner,
    b: &Build,
    s: &Settings,
    temp: &Path,
    http: &Option<HttpEndpoint>,
    guest: Guest<'_>,
) -> Result<(), NativeError> {
    let Guest {
        vm,
        session,
        addr: (host, port),
    } = guest;
    if b.plan.provisioners.is_empty() || b.options.skip {
        r.skip("no provisioners");
        return Ok(());
    }
    let ptemp = temp.join("provision");
    std::fs::create_dir_all(&ptemp).map_err(|source| NativeError::CreateDir {
        what: "provisioning directory",
        path: ptemp.clone(),
        source,
    })?;
    let ctx = ProvisionContext::from_plan(&b.plan, host, port, ptemp)
        .map_err(|e| NativeError::Provision(ProvisionError::from_comm(e)))?;
    let mut ctx = ctx.with_environment(b.context.vars.clone(), b.context.secrets.clone());
    if let Some(sess) = session.lock().await.take() {
        ctx = ctx.with_session(sess);
    }
    ctx.template_fields.insert("Name".into(), s.vm_name.clone());
    if let Some(h) = http {
        ctx.template_fields.insert("HTTPIP".into(), h.ip.clone());
        ctx.template_fields
            .insert("HTTPPort".into(), h.port.to_string());
        ctx.http_addr = Some(format!("{}:{}", h.ip, h.port));
    }
    let events = r.events.clone();
    ctx.on_output = Some(Arc::new(move |line: &str| {
        events.log_from(LogSource::Provisioner, line)
    }));
    // A VM that is gone fails the step at once (its provisioner is stopped), whatever the
    // provisioner was doing.
    let result = tokio::select! {
        res = crate::provision::run_all(&b.plan.provisioners, &ctx) => {
            res.map_err(NativeError::Provision)
        }
        why = super::wait_for_ssh::vm_gone(vm) => Err(NativeError::VmExited {
            during: "provisioning",
            why,
        }),
    };
    *session.lock().await = ctx.into_session();
    result
}
