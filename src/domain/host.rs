//! What a server is, independent of where it is stored: the VPN software it
//! runs, how the panel logs in to it, and the host key pinned for it.

use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The VPN software a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Wireguard,
    Amneziawg,
    Openvpn,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "wireguard" | "wg" => Some(Self::Wireguard),
            "amneziawg" | "awg" => Some(Self::Amneziawg),
            "openvpn" | "ovpn" => Some(Self::Openvpn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wireguard => "wireguard",
            Self::Amneziawg => "amneziawg",
            Self::Openvpn => "openvpn",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Wireguard => "WireGuard",
            Self::Amneziawg => "AmneziaWG",
            Self::Openvpn => "OpenVPN",
        }
    }

    /// The command-line tool of a WireGuard-family server.
    pub fn wg_tool(self) -> Option<&'static str> {
        match self {
            Self::Wireguard => Some("wg"),
            Self::Amneziawg => Some("awg"),
            Self::Openvpn => None,
        }
    }
}

/// How the panel authenticates to a host's sshd.
#[derive(Debug, Clone)]
pub enum SshKeySource {
    /// A private key file on the panel's machine.
    File(PathBuf),
    /// The private key text, stored in the database.
    Inline(Secret),
}

/// The host key pinned for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPin {
    /// The key as an OpenSSH public-key line (`ssh-ed25519 AAAA…`).
    pub openssh: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}
