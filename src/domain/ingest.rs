//! Planning one poll: from what the panel knew before and what a host
//! reports now, the bytes to add, the sessions to open, continue or close,
//! and each client's last sign of life. The store only carries out a plan.

use super::accounting::{delta, Counters, Delta, FirstSight, SourceState};
use super::net::client_address;
use super::openvpn::{OvpnSession, OvpnStatus};
use super::sessions::{gone_step, last_seen_after, wireguard_step, SessionStep};
use super::wg_dump::{WgDump, WgPeer};
use chrono::{DateTime, Utc};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

/// A WireGuard peer as the panel knew it before the poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerBefore {
    pub client_id: i64,
    pub counters: Counters,
    pub on_host: bool,
    pub open_session: Option<i64>,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeerPlan<'a> {
    pub peer: &'a WgPeer,
    /// The public key in base64: the client's identity.
    pub identity: String,
    pub client_id: Option<i64>,
    pub delta: Delta,
    pub session: SessionStep,
    pub open_session: Option<i64>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A known peer missing from the poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone {
    pub client_id: i64,
    pub open_session: Option<i64>,
    pub session: SessionStep,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WireguardPlan<'a> {
    pub peers: Vec<PeerPlan<'a>>,
    pub gone: Vec<Gone>,
    /// Sum of new traffic (months, hours, sessions).
    pub new: Counters,
    /// Sum of carried-in counters (lifetime only).
    pub carried: Counters,
}

/// Plans a WireGuard or AmneziaWG poll. `before` is keyed by public key
/// (base64); `first_poll` is true when the server never had a poll applied.
pub fn plan_wireguard<'a, K: Borrow<str> + Hash + Eq>(
    before: &HashMap<K, PeerBefore>,
    dump: &'a WgDump,
    at: DateTime<Utc>,
    first_poll: bool,
) -> WireguardPlan<'a> {
    let first_sight = if first_poll { FirstSight::CarryIn } else { FirstSight::Count };
    let mut plan = WireguardPlan {
        peers: Vec::with_capacity(dump.peers.len()),
        gone: Vec::new(),
        new: Counters::ZERO,
        carried: Counters::ZERO,
    };
    let mut seen = HashSet::with_capacity(dump.peers.len());
    for peer in &dump.peers {
        let identity = peer.public_key.to_base64();
        let known = before.get(identity.as_str());
        let now = Counters::new(peer.rx.get(), peer.tx.get());
        let d = delta(known.map(|k| SourceState { last: k.counters, present: k.on_host }), now, first_sight);
        let open = known.and_then(|k| k.open_session);
        let last_seen_before = known.and_then(|k| k.last_seen);
        let session = wireguard_step(open.is_some(), peer.latest_handshake, last_seen_before, at);
        let last_seen = last_seen_after(last_seen_before, peer.latest_handshake, !d.new.is_zero(), at);
        plan.new += d.new;
        plan.carried += d.carried;
        if let Some(k) = known {
            seen.insert(k.client_id);
        }
        plan.peers.push(PeerPlan {
            peer,
            identity,
            client_id: known.map(|k| k.client_id),
            delta: d,
            session,
            open_session: open,
            last_seen,
        });
    }
    let mut gone: Vec<Gone> = before
        .values()
        .filter(|k| k.on_host && !seen.contains(&k.client_id))
        .map(|k| Gone {
            client_id: k.client_id,
            open_session: k.open_session,
            session: gone_step(k.open_session.is_some(), k.last_seen, at),
        })
        .collect();
    gone.sort_by_key(|g| g.client_id);
    plan.gone = gone;
    plan
}

/// An open OpenVPN session as the panel knew it before the poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionBefore {
    pub connection_id: i64,
    pub counters: Counters,
    pub last_seen: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OvpnSessionPlan<'a> {
    pub session: &'a OvpnSession,
    pub source: String,
    /// The open connection row, if the session was known.
    pub connection_id: Option<i64>,
    pub delta: Delta,
}

/// One OpenVPN user (common name), summed over their sessions in this poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OvpnUserPlan {
    pub delta: Delta,
    pub username: Option<String>,
    /// The most recent session's addresses.
    pub endpoint: Option<String>,
    pub virtual_ip: Option<String>,
    pub sessions: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OpenvpnPlan<'a> {
    pub sessions: Vec<OvpnSessionPlan<'a>>,
    /// Keyed by common name, in name order.
    pub users: BTreeMap<String, OvpnUserPlan>,
    /// Known open sessions that ended: (connection id, disconnected at).
    pub ended: Vec<(i64, DateTime<Utc>)>,
    pub new: Counters,
    pub carried: Counters,
}

/// Plans an OpenVPN poll. `before` holds the open sessions, keyed by
/// [`OvpnSession::source_key`].
pub fn plan_openvpn<'a>(
    before: &HashMap<String, SessionBefore>,
    status: &'a OvpnStatus,
    first_poll: bool,
) -> OpenvpnPlan<'a> {
    let first_sight = if first_poll { FirstSight::CarryIn } else { FirstSight::Count };
    let mut plan = OpenvpnPlan {
        sessions: Vec::with_capacity(status.sessions.len()),
        users: BTreeMap::new(),
        ended: Vec::new(),
        new: Counters::ZERO,
        carried: Counters::ZERO,
    };
    let mut seen = HashSet::new();
    let mut newest: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
    for session in &status.sessions {
        let source = session.source_key();
        if !seen.insert(source.clone()) {
            continue; // the same session listed twice: count it once
        }
        let known = before.get(&source);
        let d = delta(known.map(|k| SourceState { last: k.counters, present: true }), session.counters, first_sight);
        plan.new += d.new;
        plan.carried += d.carried;
        let user = plan.users.entry(session.common_name.clone()).or_default();
        user.delta.new += d.new;
        user.delta.carried += d.carried;
        user.sessions += 1;
        let newest_start = newest.entry(session.common_name.clone()).or_insert(None);
        if user.sessions == 1 || session.connected_since > *newest_start {
            *newest_start = session.connected_since;
            user.endpoint = session.real_address.clone();
            user.virtual_ip = session.virtual_address.or(session.virtual_ipv6).map(|ip| ip.to_string());
            if session.username.is_some() {
                user.username = session.username.clone();
            }
        }
        plan.sessions.push(OvpnSessionPlan {
            session,
            source,
            connection_id: known.map(|k| k.connection_id),
            delta: d,
        });
    }
    let mut ended: Vec<(i64, DateTime<Utc>)> = before
        .iter()
        .filter(|(source, _)| !seen.contains(*source))
        .map(|(_, k)| (k.connection_id, k.last_seen))
        .collect();
    ended.sort();
    plan.ended = ended;
    plan
}

/// The address a WireGuard client is known by inside the tunnel.
pub fn wireguard_virtual_ip(peer: &WgPeer) -> Option<String> {
    client_address(&peer.allowed_ips).map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::openvpn::parse_status;
    use crate::domain::wg_dump::parse_wg_dump;

    const SERVER: &str = include_str!("fixtures/wg_show_server_dump.txt");
    const V2: &str = include_str!("fixtures/openvpn_status_v2.txt");
    const ACTIVE: &str = "lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=";
    const IDLE: &str = "hrOeuHs9Pv5cMWmTP48msP9yD3BXipu1np8xB1cL40Q=";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_357_357 + secs, 0).unwrap()
    }

    #[test]
    fn the_first_poll_carries_counters_in_and_opens_sessions_for_fresh_handshakes() {
        let dump = parse_wg_dump(SERVER).unwrap();
        let plan = plan_wireguard(&HashMap::<String, _>::new(), &dump, at(10), true);
        assert_eq!(plan.new, Counters::ZERO);
        assert_eq!(plan.carried, Counters::new(5572 + 612, 5452 + 524));
        let active = plan.peers.iter().find(|p| p.peer.public_key.to_string() == ACTIVE).unwrap();
        assert_eq!(active.session, SessionStep::Open { connected_at: at(0) });
        let idle = plan.peers.iter().find(|p| p.peer.public_key.to_string() == IDLE).unwrap();
        assert_eq!(idle.session, SessionStep::Idle);
        assert_eq!(idle.last_seen, None);
    }

    #[test]
    fn a_later_poll_counts_growth_and_notices_a_removed_peer() {
        let dump = parse_wg_dump(SERVER).unwrap();
        let mut before = HashMap::new();
        before.insert(
            ACTIVE.to_owned(),
            PeerBefore {
                client_id: 1,
                counters: Counters::new(5000, 5000),
                on_host: true,
                open_session: Some(9),
                last_seen: Some(at(0)),
            },
        );
        before.insert(
            "removedremovedremovedremovedremovedremoved0=".to_owned(),
            PeerBefore {
                client_id: 2,
                counters: Counters::new(1, 1),
                on_host: true,
                open_session: Some(10),
                last_seen: Some(at(-30)),
            },
        );
        let plan = plan_wireguard(&before, &dump, at(20), false);
        let active = plan.peers.iter().find(|p| p.client_id == Some(1)).unwrap();
        assert_eq!(active.delta.new, Counters::new(572, 452));
        assert_eq!(active.session, SessionStep::Continue);
        // Peers never seen before appeared since the last poll: all new traffic.
        assert_eq!(plan.carried, Counters::ZERO);
        assert_eq!(plan.new, Counters::new(572 + 612, 452 + 524));
        assert_eq!(
            plan.gone,
            vec![Gone {
                client_id: 2,
                open_session: Some(10),
                session: SessionStep::Close { disconnected_at: at(-30) }
            }]
        );
    }

    #[test]
    fn openvpn_sessions_sum_per_user_and_ended_ones_close() {
        let status = parse_status(V2).unwrap();
        let alice = status.sessions.iter().find(|s| s.common_name == "alice").unwrap();
        let mut before = HashMap::new();
        before.insert(
            alice.source_key(),
            SessionBefore { connection_id: 5, counters: Counters::new(3000, 3000), last_seen: at(0) },
        );
        before.insert(
            "cid:7@1".to_owned(),
            SessionBefore { connection_id: 6, counters: Counters::new(9, 9), last_seen: at(-3) },
        );
        let plan = plan_openvpn(&before, &status, false);
        assert_eq!(plan.users["alice"].delta.new, Counters::new(686, 686));
        assert_eq!(plan.users["bob"].delta.new, Counters::new(2066, 2070), "a new session counts fully");
        assert_eq!(plan.users["bob"].virtual_ip.as_deref(), Some("10.78.202.3"));
        assert_eq!(plan.ended, vec![(6, at(-3))]);
        let first = plan_openvpn(&HashMap::new(), &status, true);
        assert_eq!(first.new, Counters::ZERO);
        assert_eq!(first.carried, Counters::new(3686 + 2066, 3686 + 2070));
    }
}
