//! `osimager doctor`: print what this host can build ([`crate::host::inspect`]).

use crate::host::{self, HostReport, InspectOptions, Status};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (the same fields a build service host endpoint returns)
    #[arg(long)]
    pub json: bool,
    /// Do not boot the KVM probe guest (KVM is then reported as not probed)
    #[arg(long)]
    pub no_kvm_probe: bool,
    /// Do not contact the secret store (Vault)
    #[arg(long)]
    pub offline: bool,
}

pub const AFTER_HELP: &str = "\
Checks QEMU and whether KVM actually runs a guest (a tiny probe guest, a few seconds at most),
qemu-img, socat, ansible-playbook, Packer and its version, VirtualBox (VBoxManage), VMware
(vmrun/vmrest), the secret store (Vault reachable and the token accepted, or the secrets file),
the ISO cache and your locations. Each problem comes with what to do.
Exit status 1 when something that is set up is broken (a refused Vault token, an unwritable
ISO cache), else 0.

Examples:
  osimager doctor
  osimager doctor --json | jq '.can_build'";

pub fn run(cfg: &crate::config::Config, a: &DoctorArgs) -> Result<ExitCode> {
    let report = host::inspect(
        cfg,
        &InspectOptions {
            probe_kvm: !a.no_kvm_probe,
            check_secrets: !a.offline,
            ..InspectOptions::default()
        },
    );
    let text = if a.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render(&report)
    };
    super::common::print(&text)?;
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as people read it: one line per check, what to do indented below it.
pub fn render(r: &HostReport) -> String {
    let mut out = format!("What this host ({}) can build:\n\n", r.arch);
    for c in &r.checks {
        out.push_str(&format!(
            "  {:<8} {:<17} {}\n",
            c.status.as_str(),
            c.id,
            crate::secret::redact(&c.detail)
        ));
        if let Some(fix) = &c.fix {
            if c.status != Status::Ok {
                out.push_str(&format!("  {:<8} {:<17} fix: {fix}\n", "", ""));
            }
        }
    }
    out.push('\n');
    if r.can_build.is_empty() {
        out.push_str(
            "Can build: nothing local yet (install QEMU, see above); cloud platforms need only \
             their accounts.\n",
        );
    } else {
        let list: Vec<String> = r
            .can_build
            .iter()
            .map(|b| {
                if b.accelerator.is_empty() {
                    format!("{} ({} engine)", b.platform, b.engine)
                } else {
                    format!(
                        "{} ({} engine, {})",
                        b.platform,
                        b.engine,
                        b.accelerator.to_uppercase()
                    )
                }
            })
            .collect();
        out.push_str(&format!("Can build: {}\n", list.join(", ")));
    }
    if r.check("locations")
        .is_some_and(|c| c.status == Status::Missing)
    {
        out.push_str("Next: osimager init\n");
    }
    out
}
