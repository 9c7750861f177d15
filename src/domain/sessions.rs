//! When a VPN session opens and closes.
//!
//! WireGuard has no connections, only handshakes: a session opens when a
//! poll sees a fresh handshake (younger than the online window) and closes
//! when the latest handshake has grown older than that, or the peer is gone.
//! An OpenVPN session is one CLIENT_LIST entry: it opens when the entry
//! appears and closes when it is gone.

use super::status::ONLINE_WINDOW;
use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStep {
    /// No session before, none now.
    Idle,
    Open {
        connected_at: DateTime<Utc>,
    },
    Continue,
    Close {
        disconnected_at: DateTime<Utc>,
    },
}

/// A WireGuard peer present in a poll at `at`.
/// `last_seen` is the last sign of life recorded before this poll.
pub fn wireguard_step(
    open: bool,
    handshake: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> SessionStep {
    let fresh = handshake.filter(|h| at.signed_duration_since(*h) < ONLINE_WINDOW);
    match (open, fresh) {
        (false, Some(h)) => SessionStep::Open { connected_at: h.min(at) },
        (true, Some(_)) => SessionStep::Continue,
        (true, None) => SessionStep::Close { disconnected_at: last_seen.or(handshake).unwrap_or(at) },
        (false, None) => SessionStep::Idle,
    }
}

/// A source that is gone from a poll (peer removed, OpenVPN entry ended).
pub fn gone_step(open: bool, last_seen: Option<DateTime<Utc>>, at: DateTime<Utc>) -> SessionStep {
    if open {
        SessionStep::Close { disconnected_at: last_seen.unwrap_or(at) }
    } else {
        SessionStep::Idle
    }
}

/// The last sign of life after a poll: the handshake, or the poll itself if
/// bytes moved since the previous one.
pub fn last_seen_after(
    before: Option<DateTime<Utc>>,
    handshake: Option<DateTime<Utc>>,
    traffic_moved: bool,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let activity = if traffic_moved { Some(at) } else { None };
    [before, handshake.map(|h| h.min(at)), activity].into_iter().flatten().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_357_357 + secs, 0).unwrap()
    }

    #[test]
    fn a_fresh_handshake_opens_a_session_at_the_handshake() {
        assert_eq!(wireguard_step(false, Some(t(-20)), None, t(0)), SessionStep::Open { connected_at: t(-20) });
        assert_eq!(wireguard_step(true, Some(t(-20)), Some(t(-20)), t(0)), SessionStep::Continue);
    }

    #[test]
    fn a_stale_handshake_closes_the_session_at_the_last_sign_of_life() {
        let window = ONLINE_WINDOW.num_seconds();
        assert_eq!(
            wireguard_step(true, Some(t(-window)), Some(t(-window + 40)), t(0)),
            SessionStep::Close { disconnected_at: t(-window + 40) }
        );
        assert_eq!(wireguard_step(false, Some(t(-window)), None, t(0)), SessionStep::Idle);
        assert_eq!(wireguard_step(false, None, None, t(0)), SessionStep::Idle);
    }

    #[test]
    fn a_vanished_source_closes_an_open_session() {
        assert_eq!(gone_step(true, Some(t(-5)), t(0)), SessionStep::Close { disconnected_at: t(-5) });
        assert_eq!(gone_step(false, Some(t(-5)), t(0)), SessionStep::Idle);
    }

    #[test]
    fn last_seen_moves_with_handshakes_and_traffic_only_forward() {
        assert_eq!(last_seen_after(None, None, false, t(0)), None);
        assert_eq!(last_seen_after(Some(t(-100)), Some(t(-50)), false, t(0)), Some(t(-50)));
        assert_eq!(last_seen_after(Some(t(-100)), Some(t(-150)), true, t(0)), Some(t(0)));
        // A host clock ahead of the panel's does not put last-seen in the future.
        assert_eq!(last_seen_after(None, Some(t(0) + TimeDelta::hours(1)), false, t(0)), Some(t(0)));
    }
}
