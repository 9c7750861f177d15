//! A new peer's side of things: the next free address in the interface's
//! subnet, and the wg-quick file its device imports (AmneziaWG's
//! obfuscation settings repeated from the server's interface).

use super::client_change::{email, opt, refuse, text, whole, FieldError};
use super::net::{HostAddress, IpNetwork};
use super::wg_config::{interface_value, AMNEZIA_KEYS};
use super::PublicKey;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Where clients reach a server: `host:port` (`[v6]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: HostAddress,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an endpoint is host:port (an IP address or DNS name and a port 1-65535), got {0:?}")]
pub struct EndpointError(String);

impl Endpoint {
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let text = text.trim();
        let err = || EndpointError(text.chars().take(64).collect());
        let (host, port) = text.rsplit_once(':').ok_or_else(err)?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(err()); // a bare IPv6 address needs brackets
        }
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(err)?;
        Ok(Self { host: HostAddress::parse(host).map_err(|_| err())?, port })
    }

    pub fn new(host: HostAddress, port: u16) -> Self {
        Self { host, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.as_str().parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// What a server's generated client configs say beyond the keys: the
/// endpoint (`None`: the SSH host and the interface's `ListenPort`) and DNS
/// servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientDefaults {
    pub endpoint: Option<Endpoint>,
    pub dns: Vec<IpAddr>,
}

impl ClientDefaults {
    /// DNS servers as an admin types them: comma-separated addresses.
    pub fn parse_dns(text: &str) -> Result<Vec<IpAddr>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse().map_err(|_| format!("{:?} is not an IP address", a.chars().take(64).collect::<String>()))
            })
            .collect()
    }

    pub fn dns_text(&self) -> String {
        self.dns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// The interface's first IPv4 `Address` (`10.8.0.1/24`): its subnet and
/// the server's own address in it.
pub fn interface_subnet(config: &str) -> Option<IpNetwork> {
    let value = interface_value(config, "Address")?;
    value.split(',').filter_map(|a| IpNetwork::parse(a.trim()).ok()).find(|n| n.addr().is_ipv4())
}

/// Every address a peer of the file holds, revoked peers included (a
/// restore must get its address back): the `AllowedIPs` of live sections
/// and of sections kept commented out.
pub fn taken_addresses(config: &str) -> BTreeSet<IpAddr> {
    config
        .lines()
        .map(|l| l.trim_start().strip_prefix("#| ").unwrap_or(l).trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("AllowedIPs"))
        .flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|a| IpNetwork::parse(&a).ok())
        .map(|n| n.addr())
        .collect()
}

/// The lowest host address of `subnet` that is not the network, the
/// broadcast, the server's own address or in `taken`.
pub fn next_free_address(subnet: &IpNetwork, taken: &BTreeSet<IpAddr>) -> Option<Ipv4Addr> {
    let IpAddr::V4(server) = subnet.addr() else { return None };
    let prefix = u32::from(subnet.prefix());
    if prefix > 30 {
        return None;
    }
    let mask = u32::MAX << (32 - prefix);
    let network = u32::from(server) & mask;
    let broadcast = network | !mask;
    (network + 1..broadcast).map(Ipv4Addr::from).find(|a| *a != server && !taken.contains(&IpAddr::V4(*a)))
}

/// A client's wg-quick file.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base64; this text is a secret.
    pub private_key: String,
    pub address: IpNetwork,
    pub dns: Vec<IpAddr>,
    /// AmneziaWG: the server interface's `Jc`, `S1`, `H1`… as they are.
    pub obfuscation: Vec<(String, String)>,
    pub server_public_key: PublicKey,
    pub preshared_key: Option<String>,
    pub endpoint: Endpoint,
    pub allowed_ips: Vec<String>,
    pub persistent_keepalive: Option<u16>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientConfig({} via {}, keys redacted)", self.address, self.endpoint)
    }
}

/// The server interface's AmneziaWG settings a client must repeat.
pub fn obfuscation_of(server_config: &str) -> Vec<(String, String)> {
    AMNEZIA_KEYS
        .iter()
        .filter_map(|k| interface_value(server_config, k).map(|v| ((*k).to_owned(), v.trim().to_owned())))
        .collect()
}

impl fmt::Display for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Interface]")?;
        writeln!(f, "PrivateKey = {}", self.private_key)?;
        writeln!(f, "Address = {}", self.address)?;
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
            writeln!(f, "DNS = {}", dns.join(", "))?;
        }
        for (k, v) in &self.obfuscation {
            writeln!(f, "{k} = {v}")?;
        }
        writeln!(f)?;
        writeln!(f, "[Peer]")?;
        writeln!(f, "PublicKey = {}", self.server_public_key)?;
        if let Some(psk) = &self.preshared_key {
            writeln!(f, "PresharedKey = {psk}")?;
        }
        writeln!(f, "Endpoint = {}", self.endpoint)?;
        writeln!(f, "AllowedIPs = {}", self.allowed_ips.join(", "))?;
        if let Some(k) = self.persistent_keepalive {
            writeln!(f, "PersistentKeepalive = {k}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// A request to generate a peer, as sent to `POST /api/servers/{id}/clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPeer {
    pub name: String,
    pub email: Option<String>,
    pub user_id: Option<i64>,
}

/// Reads a [`NewPeer`]: `name` required; `email` and `user_id` optional.
pub fn parse_new_peer(body: &serde_json::Map<String, serde_json::Value>) -> Result<NewPeer, FieldError> {
    const FIELDS: [&str; 3] = ["name", "email", "user_id"];
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(refuse(unknown, format!("unknown field; known are {}", FIELDS.join(", "))));
    }
    let name = text("name", body.get("name").ok_or_else(|| refuse("name", "is required"))?)?;
    let null = serde_json::Value::Null;
    let email = opt(body.get("email").unwrap_or(&null), |v| email("email", v))?;
    let user_id = opt(body.get("user_id").unwrap_or(&null), |v| whole("user_id", v, 1, i64::MAX))?;
    Ok(NewPeer { name, email, user_id })
}
