//! Host network addresses the drivers need: the IPv4 address of a host interface (a bridge,
//! a vmnet adapter) that a guest on that network uses to reach the host.

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// The first IPv4 address of the host interface `name`, if it exists and has one.
pub fn interface_ipv4(name: &str) -> Option<Ipv4Addr> {
    interfaces_ipv4()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
}

/// Every (interface name, IPv4 address) pair of the host, in the kernel's order.
pub fn interfaces_ipv4() -> Vec<(String, Ipv4Addr)> {
    let mut found = Vec::new();
    // SAFETY: getifaddrs fills a linked list we only read and then free with freeifaddrs;
    // every pointer is checked for null before use and the list is not used after freeing.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return found;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
                continue;
            }
            if i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET {
                continue;
            }
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            found.push((name, Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
        }
        libc::freeifaddrs(head);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_127_0_0_1() {
        assert_eq!(interface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("no-such-interface0"), None);
        assert!(interfaces_ipv4().contains(&("lo".to_string(), Ipv4Addr::LOCALHOST)));
    }
}
