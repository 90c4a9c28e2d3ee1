//! VMware's host networking as files describe it (Linux layout under `/etc/vmware`, or
//! `OSIMAGER_VMWARE_CONFIG_DIR`): `netmap.conf` maps a network name (`NAT`, `HostOnly`,
//! `Bridged`) to a device (`vmnet8`, …); `<device>/dhcpd/dhcpd.conf` has a `host <device>`
//! block whose `fixed-address` is the host's address as guests see it; `<device>/dhcpd/
//! dhcpd.leases` holds the ISC-format leases that tell a guest's address from its MAC.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The directory holding VMware's network configuration.
pub fn config_dir(env: &crate::DriverEnv) -> PathBuf {
    env.var("OSIMAGER_VMWARE_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/vmware"))
}

/// `networkN.name` / `networkN.device` pairs of netmap.conf.
pub fn parse_netmap(text: &str) -> Vec<(String, String)> {
    let vmx = super::vmx::Vmx::parse(text);
    let mut out = Vec::new();
    for (k, name) in &vmx.0 {
        let Some(idx) = k
            .strip_prefix("network")
            .and_then(|r| r.strip_suffix(".name"))
        else {
            continue;
        };
        if let Some(dev) = vmx.get(&format!("network{idx}.device")) {
            out.push((name.clone(), dev.to_string()));
        }
    }
    out
}

/// The devices of network `network`: netmap.conf's entries whose name matches (any case);
/// a value that names no network is itself a device (a custom network). Without netmap.conf,
/// Workstation's defaults (nat → vmnet8, hostonly → vmnet1, bridged → vmnet0).
pub fn devices(dir: &Path, network: &str) -> Vec<String> {
    let map = std::fs::read_to_string(dir.join("netmap.conf"))
        .map(|t| parse_netmap(&t))
        .unwrap_or_else(|_| {
            vec![
                ("Bridged".into(), "vmnet0".into()),
                ("HostOnly".into(), "vmnet1".into()),
                ("NAT".into(), "vmnet8".into()),
            ]
        });
    let devs: Vec<String> = map
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(network))
        .map(|(_, d)| d.clone())
        .collect();
    if devs.is_empty() {
        vec![network.to_string()]
    } else {
        devs
    }
}

fn first_existing(dir: &Path, device: &str, names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(device).join(n))
        .find(|p| p.is_file())
}

/// The DHCP configuration file of `device` (the paths Packer tries).
pub fn dhcp_conf(dir: &Path, device: &str) -> Option<PathBuf> {
    first_existing(
        dir,
        device,
        &[
            "dhcp/dhcp.conf",
            "dhcp/dhcpd.conf",
            "dhcpd/dhcp.conf",
            "dhcpd/dhcpd.conf",
        ],
    )
}

/// The DHCP leases file of `device`.
pub fn dhcp_leases(dir: &Path, device: &str) -> Option<PathBuf> {
    first_existing(
        dir,
        device,
        &[
            "dhcp/dhcp.leases",
            "dhcp/dhcpd.leases",
            "dhcpd/dhcp.leases",
            "dhcpd/dhcpd.leases",
        ],
    )
}

/// Split ISC dhcpd text into tokens (`{`, `}`, `;` separate; `#` comments; quoted strings).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = match line.find('#') {
            Some(i) => &line[..i],
            None => line,
        };
        let mut cur = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                c if quoted => cur.push(c),
                '{' | '}' | ';' => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    out.push(c.to_string());
                }
                c if c.is_whitespace() => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// Top-level blocks `kind arg { statement; … }` as (arg, statements), each statement a list
/// of words.
fn blocks(text: &str, kind: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let t = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] == kind && i + 2 < t.len() && t[i + 2] == "{" {
            let arg = t[i + 1].clone();
            let mut stmts = Vec::new();
            let mut cur = Vec::new();
            let mut depth = 1;
            i += 3;
            while i < t.len() && depth > 0 {
                match t[i].as_str() {
                    "{" => depth += 1,
                    "}" => depth -= 1,
                    ";" if depth == 1 => stmts.push(std::mem::take(&mut cur)),
                    w if depth == 1 => cur.push(w.to_string()),
                    _ => {}
                }
                i += 1;
            }
            out.push((arg, stmts));
        } else {
            i += 1;
        }
    }
    out
}

/// The `fixed-address` of the `host <device> { … }` block: the host's address on that
/// network, as guests see it (Packer's HTTPIP for NAT and host-only networks).
pub fn host_fixed_address(dhcpd_conf: &str, device: &str) -> Option<Ipv4Addr> {
    blocks(dhcpd_conf, "host")
        .into_iter()
        .filter(|(name, _)| name == device)
        .flat_map(|(_, stmts)| stmts)
        .find(|s| s.first().is_some_and(|w| w == "fixed-address"))
        .and_then(|s| s.get(1)?.parse().ok())
}

/// One lease: address, MAC (lower case) and its validity (UTC, seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: String,
    pub starts: Option<i64>,
    pub ends: Option<i64>,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `W YYYY/MM/DD HH:MM:SS` (UTC) → seconds since the epoch.
fn lease_time(words: &[String]) -> Option<i64> {
    let date = words.get(2)?;
    let time = words.get(3)?;
    let d: Vec<i64> = date
        .split('/')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    Some(days_from_civil(d[0], d[1], d[2]) * 86400 + t[0] * 3600 + t[1] * 60 + t[2])
}

pub fn parse_leases(text: &str) -> Vec<Lease> {
    blocks(text, "lease")
        .into_iter()
        .filter_map(|(ip, stmts)| {
            let ip: Ipv4Addr = ip.parse().ok()?;
            let mut lease = Lease {
                ip,
                mac: String::new(),
                starts: None,
                ends: None,
            };
            for s in &stmts {
                match s.first().map(String::as_str) {
                    Some("starts") => lease.starts = lease_time(s),
                    Some("ends") => lease.ends = lease_time(s),
                    Some("hardware") if s.get(1).is_some_and(|w| w == "ethernet") => {
                        lease.mac = s.get(2).map(|m| m.to_ascii_lowercase()).unwrap_or_default();
                    }
                    _ => {}
                }
            }
            Some(lease)
        })
        .collect()
}

/// The addresses leased to `mac`: leases valid at `now` first, newest first within each
/// group, each address once.
pub fn addresses_for(leases: &[Lease], mac: &str, now: i64) -> Vec<Ipv4Addr> {
    let mac = mac.to_ascii_lowercase();
    let mut mine: Vec<&Lease> = leases.iter().filter(|l| l.mac == mac).collect();
    let valid = |l: &Lease| l.starts.is_none_or(|s| s <= now) && l.ends.is_none_or(|e| e >= now);
    mine.sort_by_key(|l| (!valid(l), std::cmp::Reverse(l.starts.unwrap_or(0))));
    let mut out = Vec::new();
    for l in mine {
        if !out.contains(&l.ip) {
            out.push(l.ip);
        }
    }
    out
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether something accepts TCP connections on `ip:port` within `timeout`.
pub async fn tcp_probe(ip: &str, port: u16, timeout: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETMAP: &str = "network8.device = \"vmnet8\"\nnetwork0.name = \"Bridged\"\n\
        network0.device = \"vmnet0\"\nnetwork1.name = \"HostOnly\"\nnetwork8.name = \"NAT\"\n\
        network1.device = \"vmnet1\"\nnetwork3.notuseful = \"blah\"\n";

    #[test]
    fn netmap_names_to_devices() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("netmap.conf"), NETMAP).unwrap();
        assert_eq!(devices(dir.path(), "nat"), ["vmnet8"]);
        assert_eq!(devices(dir.path(), "HostOnly"), ["vmnet1"]);
        assert_eq!(devices(dir.path(), "vmnet5"), ["vmnet5"]);
        let none = tempfile::tempdir().unwrap();
        assert_eq!(devices(none.path(), "nat"), ["vmnet8"]);
    }

    #[test]
    fn dhcpd_conf_host_block() {
        let conf = "allow unknown-clients;\n\
            subnet 172.33.33.0 netmask 255.255.255.0 {\n  range 172.33.33.128 172.33.33.254;\n\
              option routers 172.33.33.2;\n}\n\
            host vmnet8 {\t# host\n  hardware ethernet 00:50:56:C0:00:08;\n\
              fixed-address 172.33.33.1;\n  option domain-name \"packer.test\";\n}\n";
        assert_eq!(
            host_fixed_address(conf, "vmnet8"),
            Some(Ipv4Addr::new(172, 33, 33, 1))
        );
        assert_eq!(host_fixed_address(conf, "vmnet1"), None);
    }

    #[test]
    fn leases_valid_first_then_newest() {
        let text = "# normal\nlease 127.0.0.17 {\n    starts 3 2020/05/13 12:00:37;\n\
            ends 3 2020/05/13 12:30:37;\n    hardware ethernet 0d:ea:d0:66:77:88;\n}\n\
            lease 127.0.0.19 {\n\tstarts 4 2020/05/28 11:35:06;\n\tends 4 2020/05/28 12:05:06;\n\
            \thardware ethernet 0D:EA:D0:66:77:88;\n    client-hostname \"VAGRANT\";\n}\n\
            lease 127.0.0.20 {\n starts 5 2020/08/20 20:32:03;\n ends 5 2020/08/20 21:02:03;\n\
             hardware ethernet 0d:ea:d0:99:aa:bb;\n}\n";
        let leases = parse_leases(text);
        assert_eq!(leases.len(), 3);
        assert_eq!(leases[0].starts, Some(1589371237));
        let mac = "0d:ea:d0:66:77:88";
        // Long after both expired: newest first.
        assert_eq!(
            addresses_for(&leases, mac, 1_700_000_000),
            [Ipv4Addr::new(127, 0, 0, 19), Ipv4Addr::new(127, 0, 0, 17)]
        );
        // While the older one is valid, it comes first.
        assert_eq!(
            addresses_for(&leases, "0D:EA:D0:66:77:88", 1589371300)[0],
            Ipv4Addr::new(127, 0, 0, 17)
        );
        assert!(addresses_for(&leases, "00:00:00:00:00:00", 0).is_empty());
    }
}
