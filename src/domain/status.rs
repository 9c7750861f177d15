//! Connection status of a client, derived from its latest handshake.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A handshake younger than this means the client is online. WireGuard
/// re-handshakes every two minutes while traffic flows, so five minutes
/// tolerates one missed rekey.
pub const ONLINE_WINDOW: TimeDelta = TimeDelta::minutes(5);
/// A handshake younger than this (but not online) means "recently seen".
pub const RECENT_WINDOW: TimeDelta = TimeDelta::hours(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Online,
    RecentlySeen,
    Offline,
    NeverConnected,
}

impl ConnectionStatus {
    /// Status at `now` for a client whose latest handshake was `handshake`.
    /// A handshake in the future (clock skew between host and panel) counts
    /// as just now.
    pub fn at(handshake: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let Some(at) = handshake else {
            return Self::NeverConnected;
        };
        let age = now.signed_duration_since(at);
        if age < ONLINE_WINDOW {
            Self::Online
        } else if age < RECENT_WINDOW {
            Self::RecentlySeen
        } else {
            Self::Offline
        }
    }

    /// Status of a client whose presence is known directly (an OpenVPN
    /// client is online exactly while it has a session); `last_seen` grades
    /// the others.
    pub fn connected(connected: bool, last_seen: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        if connected {
            return Self::Online;
        }
        match Self::at(last_seen, now) {
            Self::Online => Self::RecentlySeen,
            other => other,
        }
    }

    /// A client's status and when it was last seen: OpenVPN clients by
    /// their session (`on_host`: connected), the others by their handshake.
    pub fn of(
        protocol: crate::domain::Protocol,
        on_host: bool,
        handshake: Option<DateTime<Utc>>,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> (Self, Option<DateTime<Utc>>) {
        match protocol {
            crate::domain::Protocol::Openvpn => (Self::connected(on_host, last_seen, now), last_seen),
            _ => (Self::at(handshake, now), handshake),
        }
    }

    pub fn is_online(self) -> bool {
        self == Self::Online
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Online => "Online",
            Self::RecentlySeen => "Recently seen",
            Self::Offline => "Offline",
            Self::NeverConnected => "Never connected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_357_357 + secs, 0).unwrap()
    }

    #[test]
    fn status_follows_the_handshake_age() {
        let now = t(0);
        assert_eq!(ConnectionStatus::at(None, now), ConnectionStatus::NeverConnected);
        assert_eq!(ConnectionStatus::at(Some(t(0)), now), ConnectionStatus::Online);
        assert_eq!(ConnectionStatus::at(Some(t(-299)), now), ConnectionStatus::Online);
        assert_eq!(ConnectionStatus::at(Some(t(-300)), now), ConnectionStatus::RecentlySeen);
        assert_eq!(ConnectionStatus::at(Some(t(-3599)), now), ConnectionStatus::RecentlySeen);
        assert_eq!(ConnectionStatus::at(Some(t(-3600)), now), ConnectionStatus::Offline);
        assert_eq!(ConnectionStatus::at(Some(t(60)), now), ConnectionStatus::Online);
    }

    #[test]
    fn a_directly_known_connection_decides_online() {
        assert_eq!(ConnectionStatus::connected(true, None, t(0)), ConnectionStatus::Online);
        assert_eq!(ConnectionStatus::connected(false, Some(t(-10)), t(0)), ConnectionStatus::RecentlySeen);
        assert_eq!(ConnectionStatus::connected(false, Some(t(-7200)), t(0)), ConnectionStatus::Offline);
        assert_eq!(ConnectionStatus::connected(false, None, t(0)), ConnectionStatus::NeverConnected);
    }

    #[test]
    fn statuses_serialize_in_snake_case() {
        assert_eq!(serde_json::to_string(&ConnectionStatus::RecentlySeen).unwrap(), "\"recently_seen\"");
    }
}
