//! Addresses on the VM's network: where the build's HTTP server binds and what the guest
//! calls it; where the guest's SSH (or WinRM) port is.

use super::config::VmwareConfig;
use super::control::Control;
use super::net;
use super::vmx::Vmx;
use crate::driver::HostAddress;
use crate::DriverError;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Interfaces Packer skips when it looks for the host's address on a bridged network.
const VIRTUAL_PREFIXES: &[&str] = &[
    "docker", "br-", "veth", "podman", "virbr", "vmnet", "vboxnet", "utun", "tun", "tap",
];

/// NAT and host-only networks: the guest reaches the host at the `fixed-address` of the
/// `host <device>` block of the device's dhcpd.conf; the server binds the address of the host
/// interface named like the device (`vmnet8`), or the fixed address itself when a host
/// interface carries it. Bridged: the host's first non-virtual IPv4 address, for both.
pub fn host_address(cfg: &VmwareConfig) -> Result<HostAddress, DriverError> {
    let ifaces = crate::netaddr::interfaces_ipv4();
    if cfg.network.eq_ignore_ascii_case("bridged") {
        let (_, ip) = ifaces
            .iter()
            .find(|(n, ip)| {
                !ip.is_loopback()
                    && !VIRTUAL_PREFIXES
                        .iter()
                        .any(|p| n.to_ascii_lowercase().starts_with(p))
            })
            .ok_or_else(|| {
                DriverError::Msg(
                    "network \"bridged\": this host has no non-loopback IPv4 address for the guest to reach the build's HTTP server"
                        .into(),
                )
            })?;
        return Ok(HostAddress {
            bind: IpAddr::V4(*ip),
            guest_ip: ip.to_string(),
        });
    }
    let dir = net::config_dir(&cfg.env);
    let devices = net::devices(&dir, &cfg.network);
    let mut why = Vec::new();
    for dev in &devices {
        let Some(conf) = net::dhcp_conf(&dir, dev) else {
            why.push(format!(
                "no DHCP configuration for {dev} under {}",
                dir.join(dev).display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&conf).map_err(|source| DriverError::Io {
            context: format!("reading {}", conf.display()),
            source,
        })?;
        let Some(guest_ip) = net::host_fixed_address(&text, dev) else {
            why.push(format!(
                "{} has no `host {dev} {{ fixed-address … }}` block",
                conf.display()
            ));
            continue;
        };
        let bind = crate::netaddr::interface_ipv4(dev)
            .or_else(|| ifaces.iter().map(|(_, a)| *a).find(|a| *a == guest_ip));
        match bind {
            Some(b) => {
                return Ok(HostAddress {
                    bind: IpAddr::V4(b),
                    guest_ip: guest_ip.to_string(),
                })
            }
            None => why.push(format!(
                "the host has no interface {dev} and no interface with address {guest_ip} (is VMware's networking running? `vmware-networks --status`)"
            )),
        }
    }
    Err(DriverError::Msg(format!(
        "cannot tell the host's address on VMware network {:?} (devices {devices:?}, configuration in {}; set OSIMAGER_VMWARE_CONFIG_DIR if VMware keeps it elsewhere): {}",
        cfg.network,
        dir.display(),
        why.join("; ")
    )))
}

/// The guest's MAC address from its .vmx (`ethernet0.address` when static, else the
/// `generatedAddress` VMware writes at power-on).
pub fn guest_mac(vmx: &Path) -> Option<String> {
    let v = Vmx::read(vmx).ok()?;
    v.get("ethernet0.address")
        .filter(|a| !a.is_empty())
        .or_else(|| v.get("ethernet0.generatedAddress"))
        .filter(|a| !a.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Find the guest's address: vmrest's `/vms/{id}/ip`, then the DHCP leases of the VM's
/// network, then `vmrun getGuestIPAddress`, in that order, each candidate probed with TCP
/// on `port`; repeated until one answers or `timeout` passes.
pub async fn discover_guest(
    cfg: &VmwareConfig,
    control: &Control,
    vmx: &Path,
    port: u16,
    timeout: Duration,
) -> Result<String, DriverError> {
    let dir = net::config_dir(&cfg.env);
    let end = Instant::now() + timeout;
    let probe = Duration::from_secs(2);
    let mut notes: Vec<String>;
    loop {
        notes = Vec::new();
        // 1. vmrest (VMware Tools).
        if control.rest.is_some() {
            match control.tools_ip(vmx, false).await {
                Ok(ip) if net::tcp_probe(&ip, port, probe).await => return Ok(ip),
                Ok(ip) => notes.push(format!("vmrest: {ip} (port {port} not answering yet)")),
                Err(e) => notes.push(format!("vmrest: {e}")),
            }
        }
        // 2. DHCP leases on the network's devices.
        match guest_mac(vmx) {
            None => notes.push(format!("leases: no MAC address in {} yet", vmx.display())),
            Some(mac) => {
                let mut found = Vec::<Ipv4Addr>::new();
                for dev in net::devices(&dir, &cfg.network) {
                    if let Some(p) = net::dhcp_leases(&dir, &dev) {
                        let text = std::fs::read_to_string(&p).unwrap_or_default();
                        found.extend(net::addresses_for(
                            &net::parse_leases(&text),
                            &mac,
                            net::now(),
                        ));
                    }
                }
                if found.is_empty() {
                    notes.push(format!("leases: none for {mac} under {}", dir.display()));
                }
                for ip in &found {
                    if net::tcp_probe(&ip.to_string(), port, probe).await {
                        return Ok(ip.to_string());
                    }
                }
                if !found.is_empty() {
                    notes.push(format!("leases: {found:?} (port {port} not answering yet)"));
                }
            }
        }
        // 3. vmrun (VMware Tools).
        if control.vmrun.is_some() {
            match control.tools_ip(vmx, true).await {
                Ok(ip) if net::tcp_probe(&ip, port, probe).await => return Ok(ip),
                Ok(ip) => notes.push(format!("vmrun: {ip} (port {port} not answering yet)")),
                Err(e) => notes.push(format!("vmrun: {e}")),
            }
        }
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2).min(end - Instant::now())).await;
    }
    Err(DriverError::Msg(format!(
        "the guest's address was not found within {timeout:?} (last tries: {}); without VMware Tools \
         in the guest the address comes only from VMware's DHCP leases — check that the guest uses DHCP, \
         or set ssh_host",
        notes.join("; ")
    )))
}
