//! Addresses: allowed-IP networks and host addresses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// An address with a prefix length, as in WireGuard's allowed IPs (`10.8.1.2/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an address with prefix length: {0:?}")]
pub struct IpNetworkError(String);

impl IpNetwork {
    pub fn parse(text: &str) -> Result<Self, IpNetworkError> {
        let err = || IpNetworkError(text.chars().take(64).collect());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for a single address (`/32` or `/128`).
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The address a client is known by: its first single-address allowed IP,
/// IPv4 preferred, else the first network.
pub fn client_address(allowed: &[IpNetwork]) -> Option<IpAddr> {
    allowed
        .iter()
        .find(|n| n.is_host() && n.addr.is_ipv4())
        .or_else(|| allowed.iter().find(|n| n.is_host()))
        .or_else(|| allowed.first())
        .map(IpNetwork::addr)
}

/// The address a request really came from. When the TCP peer is one of the
/// `trusted` reverse proxies, that is the right-most `X-Forwarded-For` entry
/// not added by a trusted proxy (entries further left can be forged by the
/// client); otherwise it is the peer itself.
pub fn request_origin(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut last_valid = None;
    for hop in forwarded_for.unwrap_or_default().rsplit(',').map(str::trim) {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        if !trusted.contains(&ip) {
            return ip;
        }
        last_valid = Some(ip);
    }
    last_valid.unwrap_or(peer)
}

/// A VPN host's address as an admin types it: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a host is an IP address or a DNS name (letters, digits, '-' and '.'), got {0:?}")]
pub struct HostAddressError(String);

impl HostAddress {
    pub fn parse(text: &str) -> Result<Self, HostAddressError> {
        let text = text.trim();
        let err = || HostAddressError(text.chars().take(64).collect());
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        let name = text.strip_suffix('.').unwrap_or(text);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(err());
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_v4_v6_and_bare_addresses() {
        assert_eq!(IpNetwork::parse("10.8.1.2/32").unwrap().to_string(), "10.8.1.2/32");
        assert_eq!(IpNetwork::parse("fd77:200::3/128").unwrap().to_string(), "fd77:200::3/128");
        assert_eq!(IpNetwork::parse("0.0.0.0/0").unwrap().prefix(), 0);
        assert_eq!(IpNetwork::parse("10.0.0.1").unwrap().prefix(), 32);
        for bad in ["10.0.0.1/33", "::/129", "10.0.0/24", "10.0.0.1/", "10.0.0.1/+8", "x/1"] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_address_prefers_a_single_ipv4_address() {
        let nets: Vec<_> =
            ["fd77::4/128", "10.77.1.0/24", "10.77.1.4/32"].iter().map(|t| IpNetwork::parse(t).unwrap()).collect();
        assert_eq!(client_address(&nets).unwrap().to_string(), "10.77.1.4");
        assert_eq!(client_address(&nets[..2]).unwrap().to_string(), "fd77::4");
        assert_eq!(client_address(&nets[1..2]).unwrap().to_string(), "10.77.1.0");
        assert_eq!(client_address(&[]), None);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let proxy = [ip("127.0.0.1")];
        assert_eq!(request_origin(ip("127.0.0.1"), Some("203.0.113.9"), &proxy), ip("203.0.113.9"));
        // A client cannot choose its address by sending the header itself.
        assert_eq!(request_origin(ip("198.51.100.1"), Some("203.0.113.9"), &proxy), ip("198.51.100.1"));
        // Forged entries on the left are ignored; the proxy's own entry counts.
        assert_eq!(request_origin(ip("127.0.0.1"), Some("10.0.0.1, 203.0.113.9"), &proxy), ip("203.0.113.9"));
        assert_eq!(request_origin(ip("127.0.0.1"), None, &proxy), ip("127.0.0.1"));
        assert_eq!(request_origin(ip("127.0.0.1"), Some("junk"), &proxy), ip("127.0.0.1"));
        assert_eq!(request_origin(ip("127.0.0.1"), Some("203.0.113.9, 127.0.0.1"), &proxy), ip("203.0.113.9"));
    }

    #[test]
    fn host_addresses_are_ips_or_dns_names() {
        assert_eq!(HostAddress::parse("198.18.3.2").unwrap().as_str(), "198.18.3.2");
        assert_eq!(HostAddress::parse("[fd00::1]").unwrap().as_str(), "fd00::1");
        assert_eq!(HostAddress::parse("VPN-1.Example.org.").unwrap().as_str(), "vpn-1.example.org");
        for bad in ["", "a b", "-x.org", "x..org", "host;id", "user@host", "$(id)"] {
            assert!(HostAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
