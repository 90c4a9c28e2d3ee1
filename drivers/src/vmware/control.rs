//! How the driver controls VMware: vmrest when it is available (an endpoint the user runs,
//! given by `OSIMAGER_VMREST_URL` + `OSIMAGER_VMREST_USER` + `OSIMAGER_VMREST_PASSWORD`, or a
//! private `vmrest` started for the build), `vmrun` otherwise. vmrun is also the last source
//! of the guest's address.

use super::rest::{RestError, Vmrest};
use super::restproc::VmrestProcess;
use super::tools;
use super::vmrun::Vmrun;
use crate::driver::DriverEnv;
use crate::DriverError;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Control {
    pub rest: Option<Vmrest>,
    /// The private vmrest, when the driver started one.
    pub process: Option<VmrestProcess>,
    pub vmrun: Option<Vmrun>,
    /// The VM's vmrest id once registered.
    pub id: Option<String>,
    /// Why vmrest was not used although it is installed (a warning for the user).
    pub warning: Option<String>,
}

fn rest_err(e: RestError) -> DriverError {
    DriverError::Msg(e.to_string())
}

impl Control {
    /// Pick the control path (see the module docs). `log` receives a private vmrest's output.
    pub async fn connect(env: &DriverEnv, log: &Path) -> Result<Control, DriverError> {
        let vmrun = tools::find(env, "vmrun").map(|p| Vmrun::new(p, env.clone()));
        if let Some(url) = env.var("OSIMAGER_VMREST_URL").filter(|u| !u.is_empty()) {
            let (Some(user), Some(password)) = (
                env.var("OSIMAGER_VMREST_USER"),
                env.var("OSIMAGER_VMREST_PASSWORD"),
            ) else {
                return Err(DriverError::Msg(
                    "OSIMAGER_VMREST_URL is set but OSIMAGER_VMREST_USER or OSIMAGER_VMREST_PASSWORD is not: give the credentials `vmrest -C` configured".into(),
                ));
            };
            let api = Vmrest::new(url, user, password);
            api.list_vms().await.map_err(rest_err)?;
            return Ok(Control {
                rest: Some(api),
                process: None,
                vmrun,
                id: None,
                warning: None,
            });
        }
        let mut warning = None;
        if let Some(program) = tools::find(env, "vmrest") {
            match VmrestProcess::spawn(env, &program, log.to_path_buf()).await {
                Ok(p) => {
                    return Ok(Control {
                        rest: Some(p.api.clone()),
                        process: Some(p),
                        vmrun,
                        id: None,
                        warning: None,
                    })
                }
                // vmrest is not in every edition (nor licensed everywhere): vmrun does the job.
                Err(e) if vmrun.is_some() => {
                    warning = Some(format!(
                        "vmrest could not be used, controlling VMware with vmrun: {e}"
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        if vmrun.is_none() {
            return Err(DriverError::Msg(
                "neither vmrest nor vmrun is on PATH: install VMware Workstation (it puts both in /usr/bin), \
                 add their directory to PATH, or point OSIMAGER_VMREST_URL at a running vmrest"
                    .into(),
            ));
        }
        Ok(Control {
            rest: None,
            process: None,
            vmrun,
            id: None,
            warning,
        })
    }

    /// "vmrest at URL" or "vmrun (path)", for messages.
    pub fn describe(&self) -> String {
        match (&self.rest, &self.vmrun) {
            (Some(r), _) => format!("vmrest at {}", r.url()),
            (None, Some(v)) => format!("vmrun ({})", v.program.display()),
            (None, None) => "nothing".into(),
        }
    }

    fn rest_id(&self) -> Option<(&Vmrest, &str)> {
        Some((self.rest.as_ref()?, self.id.as_deref()?))
    }

    /// Register the VM with vmrest (vmrun needs no registration).
    pub async fn register(&mut self, name: &str, vmx: &Path) -> Result<(), DriverError> {
        let Some(rest) = &self.rest else {
            return Ok(());
        };
        let e = rest
            .register(name, &vmx.display().to_string())
            .await
            .map_err(rest_err)?;
        self.id = Some(e.id);
        Ok(())
    }

    pub async fn power_on(&self, vmx: &Path, headless: bool) -> Result<(), DriverError> {
        if let Some((rest, id)) = self.rest_id() {
            return rest.set_power(id, "on").await.map(|_| ()).map_err(|e| {
                DriverError::Msg(format!(
                    "{e} (if the VM's files are locked, another VMware process uses {}: close it, or \
                     remove stale *.lck directories next to it)",
                    vmx.display()
                ))
            });
        }
        self.vmrun()?.start(vmx, headless).await
    }

    /// `hard`: power off; else ask the guest to shut down (ACPI / VMware Tools).
    pub async fn power_off(&self, vmx: &Path, hard: bool) -> Result<(), DriverError> {
        if let Some((rest, id)) = self.rest_id() {
            return rest
                .set_power(id, if hard { "off" } else { "shutdown" })
                .await
                .map(|_| ())
                .map_err(rest_err);
        }
        self.vmrun()?.stop(vmx, hard).await
    }

    pub async fn is_running(&self, vmx: &Path) -> Result<bool, DriverError> {
        if let Some((rest, id)) = self.rest_id() {
            let s = rest.power_state(id).await.map_err(rest_err)?;
            return Ok(s != "poweredOff");
        }
        self.vmrun()?.is_running(vmx).await
    }

    /// The guest's address as VMware Tools reports it: vmrest's `/vms/{id}/ip`, or vmrun's
    /// `getGuestIPAddress` (`via_vmrun`).
    pub async fn tools_ip(&self, vmx: &Path, via_vmrun: bool) -> Result<String, DriverError> {
        if via_vmrun {
            return self.vmrun()?.guest_ip(vmx).await;
        }
        match self.rest_id() {
            Some((rest, id)) => rest.guest_ip(id).await.map_err(rest_err),
            None => Err(DriverError::Msg("no vmrest".into())),
        }
    }

    /// Unregister and delete the VM (vmrest `DELETE /vms/{id}`). A VM that has just been
    /// powered off can stay locked for a moment: retried for up to `patience`.
    pub async fn delete(&mut self, patience: Duration) -> Result<(), DriverError> {
        let Some((rest, id)) = self.rest_id() else {
            return Ok(());
        };
        let end = Instant::now() + patience;
        loop {
            match rest.delete(id).await {
                Ok(()) => break,
                Err(e @ RestError::Api { status: 404, .. }) => {
                    tracing::debug!("VM already gone: {e}");
                    break;
                }
                Err(e @ RestError::Api { .. }) if Instant::now() < end => {
                    tracing::debug!("vmrest delete, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(rest_err(e)),
            }
        }
        self.id = None;
        Ok(())
    }

    fn vmrun(&self) -> Result<&Vmrun, DriverError> {
        self.vmrun.as_ref().ok_or_else(|| {
            DriverError::Msg(
                "vmrun is not on PATH (VMware Workstation installs it in /usr/bin)".into(),
            )
        })
    }

    /// Stop the private vmrest, if any.
    pub async fn shutdown(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop().await;
        }
    }
}
