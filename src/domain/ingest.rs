//! Planning one poll: from what the panel knew before and what a host
//! reports now, the bytes to add, the sessions to open, continue or close,
//! and each client's last sign of life. The store only carries out a plan.

use super::accounting::{delta, remembered, scoped_delta, CounterScope, Counters, Delta, FirstSight, SourceState};
use super::net::client_address;
use super::openvpn::{OvpnSession, OvpnStatus};
use super::sessions::{gone_step, last_seen_after, wireguard_step, SessionStep};
use super::wg_dump::{WgDump, WgPeer};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

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
    pub client_id: Option<i64>,
    /// The known client's position in the peers known before.
    pub slot: Option<usize>,
    pub delta: Delta,
    pub session: SessionStep,
    pub open_session: Option<i64>,
    pub last_seen: Option<DateTime<Utc>>,
}

impl PeerPlan<'_> {
    /// The public key in base64: the client's identity.
    pub fn identity(&self) -> String {
        self.peer.public_key.to_base64()
    }
}

/// A known peer missing from the poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone {
    pub client_id: i64,
    pub slot: usize,
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

/// Plans a WireGuard or AmneziaWG poll. `before` lists the peers known
/// before, and `find` gives the position in it of the client a reported
/// peer is (by its key), if any; `first_poll` is true when the server never
/// had a poll applied. A peer known before that is on the host and that no
/// reported peer is found to be has gone.
pub fn plan_wireguard<'a>(
    before: &[PeerBefore],
    mut find: impl FnMut(&WgPeer) -> Option<usize>,
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
    let mut seen = vec![false; before.len()];
    for peer in &dump.peers {
        let slot = find(peer).filter(|&i| i < before.len());
        let known = slot.map(|i| &before[i]);
        let now = Counters::new(peer.rx.get(), peer.tx.get());
        let d = delta(known.map(|k| SourceState { last: k.counters, present: k.on_host }), now, first_sight);
        let open = known.and_then(|k| k.open_session);
        let last_seen_before = known.and_then(|k| k.last_seen);
        let session = wireguard_step(open.is_some(), peer.latest_handshake, last_seen_before, at);
        let last_seen = last_seen_after(last_seen_before, peer.latest_handshake, !d.new.is_zero(), at);
        plan.new += d.new;
        plan.carried += d.carried;
        if let Some(i) = slot {
            seen[i] = true;
        }
        plan.peers.push(PeerPlan {
            peer,
            client_id: known.map(|k| k.client_id),
            slot,
            delta: d,
            session,
            open_session: open,
            last_seen,
        });
    }
    let mut gone: Vec<Gone> = before
        .iter()
        .enumerate()
        .filter(|&(i, k)| k.on_host && !seen[i])
        .map(|(slot, k)| Gone {
            client_id: k.client_id,
            slot,
            open_session: k.open_session,
            session: gone_step(k.open_session.is_some(), k.last_seen, at),
        })
        .collect();
    gone.sort_by_key(|g| g.client_id);
    plan.gone = gone;
    plan
}

/// An OpenVPN session the panel knows: every open one, and closed ones the
/// poll reports again (by [`OvpnSession::source`], or by exact start for a
/// client whose address changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionBefore {
    pub connection_id: i64,
    pub source: String,
    /// The session's start as first read, Unix seconds.
    pub since: Option<i64>,
    pub since_exact: bool,
    /// The management interface's client id, when known.
    pub client_id: Option<u64>,
    /// The highest counters read so far.
    pub counters: Counters,
    pub last_seen: DateTime<Utc>,
    pub open: bool,
}

impl SessionBefore {
    fn common_name(&self) -> &str {
        self.source.rsplit_once('|').map_or(self.source.as_str(), |(cn, _)| cn)
    }
}

/// The widest gap between a version-1 time (the host's local time) and UTC.
const MAX_ZONE_OFFSET_SECS: i64 = 14 * 3600;
/// Every zone offset in use is a whole number of quarter hours.
const ZONE_OFFSET_STEP_SECS: i64 = 900;

/// Whether a reading that started at `since` is the known session (same
/// [`OvpnSession::source`]) that started at `known`. Starts read the same way
/// must be equal. A version-1 file prints the host's local time, so between
/// it and an exact time they may differ by a zone offset: a whole number of
/// quarter hours, at most 14 hours. (A client reconnecting from the very
/// same address and port exactly such a span after its previous session
/// began, read once each way, would be taken for that session.)
pub fn same_session(known: Option<i64>, known_exact: bool, since: Option<i64>, exact: bool) -> bool {
    match (known, since) {
        (Some(a), Some(b)) if known_exact != exact => {
            let gap = (a - b).abs();
            gap % ZONE_OFFSET_STEP_SECS == 0 && gap <= MAX_ZONE_OFFSET_SECS
        }
        (a, b) => a == b,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OvpnSessionPlan<'a> {
    pub session: &'a OvpnSession,
    pub source: String,
    /// The known session, if any.
    pub connection_id: Option<i64>,
    /// The known session had been closed (it was missing from a reading).
    pub reopen: bool,
    pub delta: Delta,
    /// The counters to remember: the highest read so far.
    pub counters: Counters,
    /// The session's start, when this reading is exact and the known one was not.
    pub exact_since: Option<i64>,
    /// The known session's new source, when its client's address changed
    /// (a roaming UDP client, a NAT that changed its port).
    pub moved_to: Option<String>,
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

/// Plans an OpenVPN poll. Session counters only grow (see
/// [`CounterScope::Monotonic`]): a stale reading adds nothing, a session read
/// again after it was missing adds only its growth, and a closed session read
/// again without growth (an old status file) is left closed.
pub fn plan_openvpn<'a>(before: &[SessionBefore], status: &'a OvpnStatus, first_poll: bool) -> OpenvpnPlan<'a> {
    let first_sight = if first_poll { FirstSight::CarryIn } else { FirstSight::Count };
    let mut plan = OpenvpnPlan {
        sessions: Vec::with_capacity(status.sessions.len()),
        users: BTreeMap::new(),
        ended: Vec::new(),
        new: Counters::ZERO,
        carried: Counters::ZERO,
    };
    let mut by_source: HashMap<&str, Vec<&SessionBefore>> = HashMap::new();
    for k in before {
        by_source.entry(k.source.as_str()).or_default().push(k);
    }
    // Open sessions first, then the most recently closed.
    for list in by_source.values_mut() {
        list.sort_by_key(|k| (!k.open, std::cmp::Reverse(k.last_seen), k.connection_id));
    }
    let mut matched: HashSet<i64> = HashSet::new();
    let mut seen: HashSet<(String, Option<i64>)> = HashSet::new();
    let mut newest: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
    let sources: HashSet<String> = status.sessions.iter().map(OvpnSession::source).collect();
    for session in &status.sessions {
        let source = session.source();
        let since = session.connected_since.map(|t| t.timestamp());
        if !seen.insert((source.clone(), since)) {
            continue; // the same session listed twice: count it once
        }
        let by_address = by_source.get(source.as_str()).and_then(|list| {
            list.iter()
                .find(|k| {
                    !matched.contains(&k.connection_id)
                        && same_session(k.since, k.since_exact, since, session.since_exact)
                })
                .copied()
        });
        // A client whose address changed keeps its client id and exact start.
        // A session first read from a version-1 file has neither: it is the
        // one still open under the same name, at an address this reading no
        // longer lists, started a zone offset away, with no more bytes.
        let roamed = || {
            let cid = session.client_id.filter(|_| session.since_exact && since.is_some())?;
            let unmatched =
                |k: &&SessionBefore| !matched.contains(&k.connection_id) && k.common_name() == session.common_name;
            let by_client_id = || {
                before.iter().filter(unmatched).find(|k| k.since_exact && k.since == since && k.client_id == Some(cid))
            };
            let from_version_1 = || {
                before.iter().filter(unmatched).find(|k| {
                    k.open
                        && !k.since_exact
                        && !sources.contains(k.source.as_str())
                        && same_session(k.since, false, since, true)
                        && k.counters.rx <= session.counters.rx
                        && k.counters.tx <= session.counters.tx
                })
            };
            by_client_id().or_else(from_version_1)
        };
        let known = by_address.or_else(roamed);
        let moved_to = known.filter(|k| k.source != source).map(|_| source.clone());
        let state = known.map(|k| SourceState { last: k.counters, present: k.open });
        let d = scoped_delta(CounterScope::Monotonic, state, session.counters, first_sight);
        if let Some(k) = known {
            matched.insert(k.connection_id);
            if !k.open && d.new.is_zero() {
                continue; // an old reading of a session that has ended
            }
        }
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
            reopen: known.is_some_and(|k| !k.open),
            delta: d,
            counters: remembered(CounterScope::Monotonic, known.map(|k| k.counters), session.counters),
            exact_since: known.filter(|k| !k.since_exact && session.since_exact).and(since),
            moved_to,
        });
    }
    let mut ended: Vec<(i64, DateTime<Utc>)> = before
        .iter()
        .filter(|k| k.open && !matched.contains(&k.connection_id))
        .map(|k| (k.connection_id, k.last_seen))
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
        let plan = plan_wireguard(&[], |_| None, &dump, at(10), true);
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
        let removed = "removedremovedremovedremovedremovedremoved0=";
        let keys = [ACTIVE, removed];
        let before = [
            PeerBefore {
                client_id: 1,
                counters: Counters::new(5000, 5000),
                on_host: true,
                open_session: Some(9),
                last_seen: Some(at(0)),
            },
            PeerBefore {
                client_id: 2,
                counters: Counters::new(1, 1),
                on_host: true,
                open_session: Some(10),
                last_seen: Some(at(-30)),
            },
        ];
        let find = |peer: &WgPeer| keys.iter().position(|k| *k == peer.public_key.to_base64());
        let plan = plan_wireguard(&before, find, &dump, at(20), false);
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
                slot: 1,
                open_session: Some(10),
                session: SessionStep::Close { disconnected_at: at(-30) }
            }]
        );
    }

    fn known(status: &OvpnStatus, name: &str, id: i64, rx: u64, open: bool) -> SessionBefore {
        let s = status.sessions.iter().find(|s| s.common_name == name).unwrap();
        SessionBefore {
            connection_id: id,
            source: s.source(),
            since: s.connected_since.map(|t| t.timestamp()),
            since_exact: s.since_exact,
            client_id: s.client_id,
            counters: Counters::new(rx, rx),
            last_seen: at(0),
            open,
        }
    }

    #[test]
    fn openvpn_sessions_sum_per_user_and_ended_ones_close() {
        let status = parse_status(V2).unwrap();
        let gone = SessionBefore {
            connection_id: 6,
            source: "carol|198.18.202.9:1".into(),
            since: Some(1),
            since_exact: true,
            client_id: Some(7),
            counters: Counters::new(9, 9),
            last_seen: at(-3),
            open: true,
        };
        let before = vec![known(&status, "alice", 5, 3000, true), gone];
        let plan = plan_openvpn(&before, &status, false);
        assert_eq!(plan.users["alice"].delta.new, Counters::new(686, 686));
        assert_eq!(plan.users["bob"].delta.new, Counters::new(2066, 2070), "a new session counts fully");
        assert_eq!(plan.users["bob"].virtual_ip.as_deref(), Some("10.78.202.3"));
        assert_eq!(plan.ended, vec![(6, at(-3))]);
        let first = plan_openvpn(&[], &status, true);
        assert_eq!(first.new, Counters::ZERO);
        assert_eq!(first.carried, Counters::new(3686 + 2066, 3686 + 2070));
    }

    #[test]
    fn a_closed_session_read_again_counts_only_its_growth_and_an_old_echo_nothing() {
        let status = parse_status(V2).unwrap();
        let plan = plan_openvpn(&[known(&status, "alice", 5, 3000, false)], &status, false);
        let alice = plan.sessions.iter().find(|s| s.session.common_name == "alice").unwrap();
        assert_eq!((alice.connection_id, alice.reopen, alice.delta.new), (Some(5), true, Counters::new(686, 686)));
        let echo = plan_openvpn(&[known(&status, "alice", 5, 9000, false)], &status, false);
        assert!(echo.sessions.iter().all(|s| s.session.common_name != "alice"), "left closed");
        assert!(!echo.users.contains_key("alice"));
    }

    #[test]
    fn a_session_whose_address_changed_is_the_same_session() {
        let status = parse_status(V2).unwrap();
        let mut alice = known(&status, "alice", 5, 3000, true);
        alice.source = "alice|198.51.100.7:40000".into();
        let plan = plan_openvpn(&[alice], &status, false);
        let s = plan.sessions.iter().find(|s| s.session.common_name == "alice").unwrap();
        assert_eq!((s.connection_id, s.delta.new), (Some(5), Counters::new(686, 686)), "only its growth");
        assert_eq!(s.moved_to.as_deref(), Some("alice|198.18.202.6:47885"));
        assert!(plan.ended.is_empty());
    }

    #[test]
    fn a_session_first_read_from_a_version_1_file_is_followed_when_its_address_changes() {
        let status = parse_status(V2).unwrap();
        let mut alice = known(&status, "alice", 5, 3000, true);
        alice.source = "alice|198.51.100.7:40000".into();
        alice.since = alice.since.map(|t| t + 3 * 3600); // the host's local time, UTC+3
        (alice.since_exact, alice.client_id) = (false, None);
        let plan = plan_openvpn(&[alice.clone()], &status, false);
        let s = plan.sessions.iter().find(|s| s.session.common_name == "alice").unwrap();
        assert_eq!((s.connection_id, s.delta.new), (Some(5), Counters::new(686, 686)), "only its growth");
        assert_eq!(s.exact_since, Some(1_795_364_967));
        assert!(plan.ended.is_empty());

        let mut off_grid = alice.clone();
        off_grid.since = off_grid.since.map(|t| t + 1);
        let mut still_listed = alice.clone();
        still_listed.source = "alice|198.18.202.6:47564".into();
        let mut more_bytes = alice;
        more_bytes.counters = Counters::new(5000, 5000);
        for other in [off_grid, more_bytes] {
            let plan = plan_openvpn(&[other], &status, false);
            let s = plan.sessions.iter().find(|s| s.session.common_name == "alice").unwrap();
            assert_eq!((s.connection_id, s.delta.new), (None, Counters::new(3686, 3686)), "a new session");
            assert_eq!(plan.ended, vec![(5, at(0))]);
        }
        let mut with_listed = status.clone();
        let mut twin = with_listed.sessions.iter().find(|s| s.common_name == "alice").unwrap().clone();
        twin.real_address = Some("198.18.202.6:47564".into());
        with_listed.sessions.push(twin);
        let plan = plan_openvpn(&[still_listed], &with_listed, false);
        let at_address = |a: &str| plan.sessions.iter().find(|s| s.source == a).map(|s| s.connection_id);
        assert_eq!(at_address("alice|198.18.202.6:47564"), Some(Some(5)), "the old address still listed");
        assert_eq!(at_address("alice|198.18.202.6:47885"), Some(None));
    }

    #[test]
    fn a_version_1_start_in_local_time_matches_the_exact_one_a_zone_offset_away() {
        let exact = 1_795_364_967;
        assert!(same_session(Some(exact), true, Some(exact + 3 * 3600), false), "UTC+3 host");
        assert!(same_session(Some(exact + 5 * 3600 + 1800), false, Some(exact), true), "UTC+5:30 host");
        assert!(!same_session(Some(exact), true, Some(exact + 3 * 3600 + 1), false));
        assert!(!same_session(Some(exact), true, Some(exact + 15 * 3600), false));
        assert!(!same_session(Some(exact), true, Some(exact + 900), true), "two exact starts must be equal");
        assert!(same_session(None, false, None, false));
    }
}
