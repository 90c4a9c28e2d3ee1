//! DNS A lookups (`get_ip`): the default IP of a machine (its FQDN against the location's
//! `dns.servers`) and the `*>k<*` marker (system resolver). Failure of any kind gives `None`
//! (the original's "" → DHCP).
//!
//! Like the original (dnspython with `use_search_by_default = False`), the name is queried as an
//! absolute name: a `dns.search` list is accepted but does not change the query.

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::TokioAsyncResolver;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Per-server timeout (dnspython's default).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Whole-lookup limit (dnspython's default lifetime).
pub const LIFETIME: Duration = Duration::from_secs(5);

/// Where to look names up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers: `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`. Empty: the system's
    /// (`/etc/resolv.conf`).
    pub servers: Vec<String>,
    /// Search domains (location `dns.search`); see the module note.
    pub search: Vec<String>,
}

impl DnsConfig {
    /// From a location's `dns` object (`{"servers": […], "search": […]}`); strings or lists.
    pub fn from_json(dns: &serde_json::Value) -> DnsConfig {
        let list = |k: &str| -> Vec<String> {
            match dns.get(k) {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(serde_json::Value::String(s)) => s
                    .split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            }
        };
        DnsConfig {
            servers: list("servers"),
            search: list("search"),
        }
    }
}

fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().ok()
}

fn resolver_config(cfg: &DnsConfig) -> Option<ResolverConfig> {
    let mut group = NameServerConfigGroup::new();
    if cfg.servers.is_empty() {
        let (system, _) = hickory_resolver::system_conf::read_system_conf().ok()?;
        for ns in system.name_servers() {
            group.push(ns.clone());
        }
    } else {
        for s in &cfg.servers {
            let addr = parse_server(s.trim())?;
            group.push(NameServerConfig::new(addr, Protocol::Udp));
            group.push(NameServerConfig::new(addr, Protocol::Tcp));
        }
    }
    if group.is_empty() {
        return None;
    }
    Some(ResolverConfig::from_parts(None, Vec::new(), group))
}

/// The first A record of `name`, or `None` (no answer, timeout, bad server list, …).
pub fn lookup_a(name: &str, cfg: &DnsConfig) -> Option<Ipv4Addr> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let config = resolver_config(cfg)?;
    let mut opts = ResolverOpts::default();
    opts.timeout = TIMEOUT;
    opts.attempts = 1;
    opts.ndots = 0;
    opts.use_hosts_file = false;
    opts.cache_size = 0;
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    // Run on a private runtime in its own thread: callers may or may not be inside tokio.
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let resolver = TokioAsyncResolver::tokio(config, opts);
                let lookup = tokio::time::timeout(LIFETIME, resolver.ipv4_lookup(fqdn))
                    .await
                    .ok()?
                    .ok()?;
                lookup.iter().next().map(|a| a.0)
            })
        })
        .join()
        .ok()
        .flatten()
    })
}

#[cfg(test)]
mod tests;
