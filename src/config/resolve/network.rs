//! Stage 4 of `make_build`: the machine on the network. Its name and FQDN, the derived network
//! defs (dns_search, dnsN, ntpN, name, fqdn, subnet, prefix, gateway/gw — default: the
//! second-to-last address of the cidr —, netmask) and its IP.

use super::target::Target;
use super::types::ResolveRequest;
use super::value::{err, s};
use crate::config::dns::{self, DnsConfig};
use crate::config::loader::State;
use crate::config::pyjson::{py_str, truthy};
use crate::config::ConfigError;
use serde_json::{Map, Value};
use std::net::Ipv4Addr;

/// The machine being built, as the plan names it.
pub(super) struct Machine {
    pub name: String,
    pub fqdn: String,
    /// Given, else the FQDN's address from the location's DNS servers, else "" (DHCP).
    pub ip: String,
}

/// Name the machine, fill the network defs and the `name`/`fqdn` variables, find its IP.
pub(super) fn machine(
    req: &ResolveRequest,
    t: &Target,
    location: &Map<String, Value>,
    st: &mut State,
) -> Result<Machine, ConfigError> {
    let name = req
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| t.spec.clone());
    let fqdn = derive(&mut st.defs, req, &name)?;
    st.variables.insert("name".into(), s(&name));
    st.variables.insert("fqdn".into(), s(&fqdn));
    let ip = match req.ip.as_deref().filter(|i| !i.is_empty()) {
        Some(ip) => ip.to_string(),
        None => {
            let servers = location
                .get("defs")
                .and_then(|d| d.get("dns"))
                .cloned()
                .unwrap_or(Value::Null);
            dns::lookup_a(&fqdn, &DnsConfig::from_json(&servers))
                .map(|a| a.to_string())
                .unwrap_or_default()
        }
    };
    st.defs.insert("ip".into(), s(&ip));
    Ok(Machine { name, fqdn, ip })
}

fn list<'a>(obj: &'a Value, key: &str, what: &str) -> Result<Vec<&'a Value>, ConfigError> {
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.iter().collect()),
        Some(other) => Err(err(format!(
            "def {what}.{key} must be a list, found {other}"
        ))),
    }
}

/// Fill the derived defs; returns the FQDN.
fn derive(
    defs: &mut Map<String, Value>,
    req: &ResolveRequest,
    instance_name: &str,
) -> Result<String, ConfigError> {
    let empty = Value::Object(Map::new());
    let dns = defs.get("dns").cloned().unwrap_or(empty.clone());
    if !dns.is_object() {
        return Err(err(format!(
            "def dns must be an object with servers/search, found {dns}"
        )));
    }
    let search: Vec<String> = list(&dns, "search", "dns")?
        .into_iter()
        .map(py_str)
        .collect();
    defs.insert("dns_search".into(), Value::String(search.join(" ")));
    for (i, srv) in list(&dns, "servers", "dns")?.into_iter().enumerate() {
        defs.insert(format!("dns{}", i + 1), srv.clone());
    }
    let ntp = defs.get("ntp").cloned().unwrap_or(empty);
    if !ntp.is_object() {
        return Err(err(format!(
            "def ntp must be an object with servers, found {ntp}"
        )));
    }
    for (i, srv) in list(&ntp, "servers", "ntp")?.into_iter().enumerate() {
        defs.insert(format!("ntp{}", i + 1), srv.clone());
    }
    defs.insert("name".into(), Value::String(instance_name.into()));
    let fqdn = match (&req.fqdn, &req.name) {
        (Some(f), _) if !f.is_empty() => f.clone(),
        (_, Some(n)) if n.contains('.') => n.clone(),
        _ => format!(
            "{instance_name}.{}",
            defs.get("domain").map(py_str).unwrap_or_default()
        ),
    };
    defs.insert("fqdn".into(), Value::String(fqdn.clone()));
    let cidr = defs.get("cidr").map(py_str).unwrap_or_else(|| "/".into());
    let (subnet, prefix) = if cidr.contains('/') {
        let parts: Vec<&str> = cidr.split('/').collect();
        if parts.len() != 2 {
            return Err(err(format!("def cidr {cidr:?} must be ADDRESS/PREFIX")));
        }
        defs.insert("subnet".into(), Value::String(parts[0].into()));
        defs.insert("prefix".into(), Value::String(parts[1].into()));
        (parts[0].to_string(), parts[1].to_string())
    } else {
        (String::new(), String::new())
    };
    let mut gateway = defs
        .get("gateway")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    if !truthy(&gateway) && !subnet.is_empty() && !prefix.is_empty() {
        gateway = Value::String(second_to_last(&subnet, &prefix)?.to_string());
    }
    defs.insert("gateway".into(), gateway.clone());
    defs.insert("gw".into(), gateway);
    let has_mask = defs.get("netmask").is_some_and(truthy);
    if !has_mask && !prefix.is_empty() {
        let p: u32 = prefix.trim().parse().map_err(|_| {
            err(format!(
                "def cidr {cidr:?}: prefix {prefix:?} is not a number"
            ))
        })?;
        defs.insert("netmask".into(), Value::String(prefix_to_netmask(p)));
    }
    Ok(fqdn)
}

/// OSImager `prefix_to_netmask` (prefix > 32 yields what the original's shifts yield).
fn prefix_to_netmask(prefix: u32) -> String {
    let p = prefix.min(32);
    let mask: u32 = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    Ipv4Addr::from(mask).to_string()
}

fn prefix_len(prefix: &str, cidr: &str) -> Result<u32, ConfigError> {
    if let Ok(p) = prefix.parse::<u32>() {
        if p <= 32 {
            return Ok(p);
        }
    }
    if let Ok(m) = prefix.parse::<Ipv4Addr>() {
        let m = u32::from(m);
        if m.leading_ones() + m.trailing_zeros() == 32 {
            return Ok(m.leading_ones());
        }
        // A host mask (0.0.0.255) is accepted by Python's ipaddress too.
        if m.leading_zeros() + m.trailing_ones() == 32 {
            return Ok(m.leading_zeros());
        }
    }
    Err(err(format!("def cidr {cidr}: invalid prefix {prefix:?}")))
}

/// `str(ipaddress.IPv4Network(f"{subnet}/{prefix}")[-2])`.
fn second_to_last(subnet: &str, prefix: &str) -> Result<Ipv4Addr, ConfigError> {
    let cidr = format!("{subnet}/{prefix}");
    let addr: Ipv4Addr = subnet.parse().map_err(|_| {
        err(format!(
            "def cidr {cidr}: {subnet:?} is not an IPv4 address"
        ))
    })?;
    let p = prefix_len(prefix, &cidr)?;
    let a = u32::from(addr);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    if a & !mask != 0 {
        return Err(err(format!(
            "def cidr {cidr} has host bits set; set gateway explicitly or fix the cidr"
        )));
    }
    let size: u64 = 1u64 << (32 - p);
    if size < 2 {
        return Err(err(format!(
            "def cidr {cidr} has no second-to-last address; set gateway explicitly"
        )));
    }
    Ok(Ipv4Addr::from((a as u64 + size - 2) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_mask() {
        assert_eq!(
            second_to_last("10.9.8.0", "24").unwrap().to_string(),
            "10.9.8.254"
        );
        assert_eq!(
            second_to_last("10.0.0.0", "255.255.0.0")
                .unwrap()
                .to_string(),
            "10.0.255.254"
        );
        assert_eq!(
            second_to_last("10.0.0.0", "31").unwrap().to_string(),
            "10.0.0.0"
        );
        assert!(second_to_last("10.0.0.1", "24").is_err());
        assert!(second_to_last("10.0.0.1", "32").is_err());
        assert_eq!(prefix_to_netmask(24), "255.255.255.0");
        assert_eq!(prefix_to_netmask(0), "0.0.0.0");
        assert_eq!(prefix_to_netmask(32), "255.255.255.255");
    }
}
