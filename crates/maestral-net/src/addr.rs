//! This machine's addresses: the one on the way to a peer, whether one is still ours, which
//! interface holds it, and each network's broadcast address (getifaddrs on Unix; elsewhere
//! what a socket can tell).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// This machine's address on the way to `towards` (default: the LAN's way out). Asks the OS
/// which interface a UDP socket would use; nothing is sent. Falls back to 127.0.0.1.
pub fn lan_ip(towards: Option<SocketAddr>) -> IpAddr {
    let towards = towards.unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 9)));
    let local = if towards.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    std::net::UdpSocket::bind(SocketAddr::new(local, 0))
        .and_then(|s| s.connect(towards).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// One address of an interface that is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Local {
    pub interface: String,
    pub ip: IpAddr,
    pub broadcast: Option<Ipv4Addr>,
}

/// Every address of every interface that is up (empty where the OS cannot list them).
pub(crate) fn locals() -> Vec<Local> {
    #[cfg(unix)]
    {
        use nix::net::if_::InterfaceFlags;
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
        addrs
            .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
            .filter_map(|a| {
                let address = a.address.as_ref()?;
                let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                    (Some(v4), _) => IpAddr::V4(v4.ip()),
                    (None, Some(v6)) => IpAddr::V6(v6.ip()),
                    _ => return None,
                };
                let broadcast =
                    a.broadcast.as_ref().and_then(|b| b.as_sockaddr_in()).map(|b| b.ip()).filter(
                        |b| a.flags.contains(InterfaceFlags::IFF_BROADCAST) && !b.is_unspecified(),
                    );
                Some(Local { interface: a.interface_name, ip, broadcast })
            })
            .collect()
    }
    #[cfg(not(unix))]
    Vec::new()
}

/// Whether `ip` is still one of this machine's addresses.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    let all = locals();
    if all.is_empty() {
        // Nothing listed: binding tells (it fails for an address that is not ours).
        return match std::net::UdpSocket::bind(SocketAddr::new(ip, 0)) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::AddrNotAvailable,
        };
    }
    all.iter().any(|l| l.ip == ip)
}

/// The interface that holds `ip` now.
pub(crate) fn interface_of(ip: IpAddr) -> Option<String> {
    locals().into_iter().find(|l| l.ip == ip).map(|l| l.interface)
}

/// An address of `interface` in `like`'s family (not link-local), if it has one now.
pub(crate) fn address_on(interface: &str, like: IpAddr) -> Option<IpAddr> {
    locals().into_iter().map(|l| (l.interface, l.ip)).find_map(|(name, ip)| {
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        (name == interface && ip.is_ipv4() == like.is_ipv4() && !link_local).then_some(ip)
    })
}

/// The broadcast address of each IPv4 network this machine is on (loopback left out).
pub(crate) fn broadcasts() -> Vec<Ipv4Addr> {
    let mut all: Vec<Ipv4Addr> = Vec::new();
    for b in locals().into_iter().filter(|l| !l.ip.is_loopback()).filter_map(|l| l.broadcast) {
        if !all.contains(&b) {
            all.push(b);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_ours_and_an_address_nobody_has_is_not() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(is_local(lo));
        // TEST-NET-3, never assigned to a machine.
        assert!(!is_local(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77))));
        let name = interface_of(lo).expect("loopback has an interface");
        assert_eq!(address_on(&name, lo), Some(lo));
        assert!(address_on("no-such-interface", lo).is_none());
    }
}
