//! `vmrun -T ws …`: the fallback control path when vmrest is not available (and what
//! Packer itself uses). vmrun reports errors on stdout as `Error: …` and its exit status is
//! not reliable, so any `Error:` line is a failure whatever the exit status.

use super::tools;
use crate::driver::DriverEnv;
use crate::DriverError;
use std::path::{Path, PathBuf};

/// VMware's `vmrun` CLI (`-T ws`), used when vmrest is not available.
#[derive(Debug, Clone)]
pub struct Vmrun {
    /// The `vmrun` executable.
    pub program: PathBuf,
    env: DriverEnv,
}

/// The `Error: …` message in vmrun's output, if any.
pub fn error_line(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Error:").map(|m| m.trim().to_string()))
}

/// `vmrun list`: `Total running VMs: N`, then one .vmx path per line.
pub fn parse_list(out: &str) -> Vec<PathBuf> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Total running VMs"))
        .map(PathBuf::from)
        .collect()
}

impl Vmrun {
    /// `program` run with the build's environment.
    pub fn new(program: PathBuf, env: DriverEnv) -> Vmrun {
        Vmrun { program, env }
    }

    async fn run(&self, args: &[&str]) -> Result<String, DriverError> {
        let mut argv = vec!["-T".to_string(), "ws".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let out = tools::run(&self.env, &self.program, &argv).await?;
        let text = format!("{}{}", out.stdout, out.stderr);
        if let Some(msg) = error_line(&text) {
            return Err(DriverError::Command {
                command: tools::shown(&self.program, &argv),
                status: out.status.to_string(),
                stderr: msg,
            });
        }
        if !out.status.success() {
            return Err(DriverError::Command {
                command: tools::shown(&self.program, &argv),
                status: out.status.to_string(),
                stderr: text.trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// `start VMX gui|nogui`: power the VM on.
    pub async fn start(&self, vmx: &Path, headless: bool) -> Result<(), DriverError> {
        let v = vmx.display().to_string();
        self.run(&["start", &v, if headless { "nogui" } else { "gui" }])
            .await
            .map(|_| ())
    }

    /// `stop VMX hard|soft`. Stopping a VM that is already off is not an error.
    pub async fn stop(&self, vmx: &Path, hard: bool) -> Result<(), DriverError> {
        let v = vmx.display().to_string();
        match self
            .run(&["stop", &v, if hard { "hard" } else { "soft" }])
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if !self.is_running(vmx).await.unwrap_or(true) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `list`: the `.vmx` paths of the running VMs.
    pub async fn list(&self) -> Result<Vec<PathBuf>, DriverError> {
        Ok(parse_list(&self.run(&["list"]).await?))
    }

    /// Whether `vmx` (made absolute) is among the running VMs.
    pub async fn is_running(&self, vmx: &Path) -> Result<bool, DriverError> {
        let abs = std::path::absolute(vmx).unwrap_or_else(|_| vmx.to_path_buf());
        Ok(self.list().await?.contains(&abs))
    }

    /// `getGuestIPAddress VMX` (needs VMware Tools in the guest).
    pub async fn guest_ip(&self, vmx: &Path) -> Result<String, DriverError> {
        let v = vmx.display().to_string();
        let out = self.run(&["getGuestIPAddress", &v]).await?;
        let ip = out.trim().to_string();
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(DriverError::Msg(format!(
                "vmrun getGuestIPAddress returned {ip:?}, not an IP address"
            )));
        }
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_errors_parse() {
        let out = "Total running VMs: 2\n/vms/a/a.vmx\n/vms/b b/b.vmx\n";
        assert_eq!(
            parse_list(out),
            vec![
                PathBuf::from("/vms/a/a.vmx"),
                PathBuf::from("/vms/b b/b.vmx")
            ]
        );
        assert!(parse_list("Total running VMs: 0\n").is_empty());
        assert_eq!(
            error_line("Error: The virtual machine is not powered on: /x.vmx\n").as_deref(),
            Some("The virtual machine is not powered on: /x.vmx")
        );
        assert_eq!(error_line("10.0.0.5\n"), None);
    }
}
