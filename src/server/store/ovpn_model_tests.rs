//! Property: whatever OpenVPN reports, and however it reaches the panel, the
//! ledgers in the store (SQLite, and PostgreSQL when configured) equal a
//! reference model's, byte for byte.
//!
//! An OpenVPN session's counters start at zero when it connects and only
//! grow. The model follows the traffic: a byte is counted once, at the first
//! applied poll whose reading includes it, in that poll's month, hour and
//! day; counters found at the server's first poll predate the panel
//! (lifetime only). Readings come from the management interface (`status 3`,
//! exact) and from a status file that lags behind it (version 1 with local
//! times on a host three hours east of UTC, or version 2), interleaved at
//! random, with truncated replies, failed polls, sessions that end between
//! polls, OpenVPN restarts (client ids start again at 0) and panel restarts.
//!
//! Clients may also roam: a live session's address changes (a UDP client
//! moving, a NAT changing its port) while its client id and start stay.
//!
//! The generator avoids two cases no reading can tell apart: a client that
//! reconnects from the very same address and port a whole number of quarter
//! hours after its previous session began, read once from a version-1 file
//! and once from the management interface (see
//! [`crate::domain::ingest::same_session`]); and a version-1 file listing a
//! session that has roamed (version 1 has neither client ids nor exact starts
//! to follow a move by; such a session is counted as a new one). A session
//! first read from a version-1 file and later, after a move, from the
//! management interface is followed: the exact reading finds it by name,
//! zone-offset start and counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::sqlite::SqliteStore;
use super::test_support::{
    compare_store_ledgers, postgres_store, sqlite_store, test_server, test_stores, MonthlyLedger, TestStore,
};
use super::{OpenvpnPoll, ReportStore, Store};
use crate::domain::accounting::{day_key, hour_key, month_key, Counters};
use crate::domain::openvpn::parse_status;
use crate::domain::Protocol;
use crate::domain::ServerId;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;
/// The OpenVPN host's clock zone: version-1 files print its local time.
const HOST_OFFSET: i64 = 3 * 3600;

#[derive(Debug, Clone)]
enum Op {
    Connect {
        user: usize,
        reuse_address: bool,
        port: u16,
        after: i64,
    },
    Traffic {
        session: usize,
        rx: u64,
        tx: u64,
    },
    Disconnect {
        session: usize,
    },
    /// A live session's client address changes.
    Roam {
        session: usize,
    },
    /// OpenVPN rewrites its status file (version 1 or 2).
    WriteFile {
        v1: bool,
    },
    PollManagement {
        advance: i64,
    },
    PollFile {
        advance: i64,
    },
    /// A reply cut short: it must be refused and change nothing.
    Truncated {
        management: bool,
        cut: usize,
    },
    FailedPoll {
        advance: i64,
    },
    RestartOpenvpn,
    RestartPanel,
    RollUp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS.len(), proptest::bool::weighted(0.3), 30_000u16..30_004, 1i64..900)
            .prop_map(|(user, reuse_address, port, after)| Op::Connect { user, reuse_address, port, after }),
        6 => (0usize..8, 0u64..50_000, 0u64..200_000).prop_map(|(session, rx, tx)| Op::Traffic { session, rx, tx }),
        2 => (0usize..8).prop_map(|session| Op::Disconnect { session }),
        1 => (0usize..8).prop_map(|session| Op::Roam { session }),
        2 => proptest::bool::ANY.prop_map(|v1| Op::WriteFile { v1 }),
        4 => (1i64..3 * 86_400).prop_map(|advance| Op::PollManagement { advance }),
        3 => (1i64..3_600).prop_map(|advance| Op::PollFile { advance }),
        1 => (proptest::bool::ANY, 0usize..2_000).prop_map(|(management, cut)| Op::Truncated { management, cut }),
        1 => (1i64..3_600).prop_map(|advance| Op::FailedPoll { advance }),
        1 => Just(Op::RestartOpenvpn),
        1 => Just(Op::RestartPanel),
        1 => Just(Op::RollUp),
    ]
}

#[derive(Debug, Clone)]
struct Session {
    user: usize,
    client_id: u64,
    address: String,
    since: i64,
    counters: Counters,
    live: bool,
    /// Its address changed since it connected.
    roamed: bool,
    /// The highest counters an applied poll has read.
    counted: Counters,
}

#[derive(Debug, Default)]
struct Ledger {
    lifetime: Counters,
    months: BTreeMap<String, Counters>,
    hours: BTreeMap<i64, Counters>,
    days: BTreeMap<String, Counters>,
    known: bool,
}

struct Model {
    sessions: Vec<Session>,
    users: Vec<Ledger>,
    next_client_id: u64,
    /// The status file as last written: version 1?, when, and its sessions.
    file: Option<(bool, DateTime<Utc>, Vec<Session>)>,
    first_poll: bool,
}

impl Model {
    fn live(&self) -> Vec<usize> {
        (0..self.sessions.len()).filter(|i| self.sessions[*i].live).collect()
    }

    /// Counts what `readings` show beyond what was counted.
    fn apply(&mut self, readings: &[Session], at: DateTime<Utc>) {
        let month = month_key(at, &TZ);
        for r in readings {
            let Some(s) = self.sessions.iter_mut().find(|s| s.client_id == r.client_id && s.since == r.since) else {
                continue;
            };
            let grown =
                Counters::new(r.counters.rx.saturating_sub(s.counted.rx), r.counters.tx.saturating_sub(s.counted.tx));
            s.counted = Counters::new(s.counted.rx.max(r.counters.rx), s.counted.tx.max(r.counters.tx));
            let ledger = &mut self.users[s.user];
            ledger.known = true;
            if self.first_poll {
                ledger.lifetime += grown;
                continue;
            }
            if grown.is_zero() {
                continue;
            }
            ledger.lifetime += grown;
            *ledger.months.entry(month.clone()).or_default() += grown;
            *ledger.hours.entry(hour_key(at)).or_default() += grown;
            *ledger.days.entry(day_key(at, &TZ)).or_default() += grown;
        }
        self.first_poll = false;
    }
}

fn management_text(sessions: &[Session], at: DateTime<Utc>) -> String {
    status_v2_v3(sessions, at, '\t')
}

fn status_v2_v3(sessions: &[Session], at: DateTime<Utc>, sep: char) -> String {
    let cols = [
        "HEADER",
        "CLIENT_LIST",
        "Common Name",
        "Real Address",
        "Virtual Address",
        "Virtual IPv6 Address",
        "Bytes Received",
        "Bytes Sent",
        "Connected Since",
        "Connected Since (time_t)",
        "Username",
        "Client ID",
        "Peer ID",
        "Data Channel Cipher",
    ];
    let mut out = format!("TITLE{sep}OpenVPN 2.6.14 x86_64-pc-linux-gnu\n");
    out += &format!("TIME{sep}{}{sep}{}\n", at.format("%Y-%m-%d %H:%M:%S"), at.timestamp());
    out += &cols.join(&sep.to_string());
    out.push('\n');
    for s in sessions {
        let since = DateTime::from_timestamp(s.since, 0).unwrap();
        let row = [
            "CLIENT_LIST".to_owned(),
            USERS[s.user].to_owned(),
            s.address.clone(),
            format!("10.8.0.{}", s.user + 2),
            String::new(),
            s.counters.rx.to_string(),
            s.counters.tx.to_string(),
            since.format("%Y-%m-%d %H:%M:%S").to_string(),
            s.since.to_string(),
            "UNDEF".to_owned(),
            s.client_id.to_string(),
            s.client_id.to_string(),
            "AES-256-GCM".to_owned(),
        ];
        out += &row.join(&sep.to_string());
        out.push('\n');
    }
    out += "END\n";
    out
}

/// Version 1: no client ids, times in the host's local zone.
fn status_v1(sessions: &[Session], at: DateTime<Utc>) -> String {
    let local = |t: i64| DateTime::from_timestamp(t + HOST_OFFSET, 0).unwrap().format("%Y-%m-%d %H:%M:%S").to_string();
    let mut out = format!("OpenVPN CLIENT LIST\nUpdated,{}\n", local(at.timestamp()));
    out += "Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n";
    for s in sessions {
        out += &format!("{},{},{},{},{}\n", USERS[s.user], s.address, s.counters.rx, s.counters.tx, local(s.since));
    }
    out += "ROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\n";
    for s in sessions {
        out += &format!("10.8.0.{},{},{},{}\n", s.user + 2, USERS[s.user], s.address, local(at.timestamp()));
    }
    out += "GLOBAL STATS\nMax bcast/mcast queue length,1\nEND\n";
    out
}

pub(super) async fn add_openvpn_server(store: &dyn Store, name: &str) -> ServerId {
    store.insert_server(&test_server(name, Protocol::Openvpn), Utc::now()).await.unwrap()
}

async fn poll(store: &dyn Store, id: ServerId, text: &str, at: DateTime<Utc>) -> Result<bool, String> {
    let status = parse_status(text).map_err(|e| format!("a whole reply did not parse: {e}"))?;
    let month = month_key(at, &TZ);
    let outcome = store.apply_openvpn_poll(id, &OpenvpnPoll { at, month: &month, status: &status, fence: None }).await;
    Ok(outcome.map_err(|e| e.to_string())?.applied)
}

async fn check(store: &dyn Store, id: ServerId, model: &Model, now: DateTime<Utc>) -> Result<(), String> {
    let month = month_key(now, &TZ);
    let clients = store.clients(id, &month).await.map_err(|e| e.to_string())?;
    let mut server_total = Counters::ZERO;
    let mut server_month = Counters::ZERO;
    for (i, ledger) in model.users.iter().enumerate() {
        let stored = clients.iter().find(|c| c.identity == USERS[i]);
        let want_month = ledger.months.get(&month).copied().unwrap_or_default();
        match (ledger.known, stored) {
            (false, None) => continue,
            (false, Some(_)) => return Err(format!("{} stored but never read", USERS[i])),
            (true, None) => return Err(format!("{} missing from the store", USERS[i])),
            (true, Some(c)) if c.total != ledger.lifetime => {
                return Err(format!("{} lifetime: stored {:?}, model {:?}", USERS[i], c.total, ledger.lifetime))
            }
            (true, Some(c)) if c.month != want_month => {
                return Err(format!("{} month {month}: stored {:?}, model {want_month:?}", USERS[i], c.month))
            }
            (true, Some(_)) => {}
        }
        server_total += ledger.lifetime;
        server_month += want_month;
    }
    let model_months: MonthlyLedger = model
        .users
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.months.iter().map(move |(m, c)| ((USERS[i].to_owned(), m.clone()), *c)))
        .collect();
    compare_store_ledgers(store, id, now, &month, &model_months, server_total, server_month).await
}

/// Rolls up everything committed, then compares the hourly and daily
/// ledgers with the model's.
async fn check_rollups(store: &TestStore, model: &Model, now: DateTime<Utc>) -> Result<(), String> {
    let forever = std::time::Duration::from_secs(100 * 365 * 86_400);
    crate::server::maintenance::roll_up(&**store, TZ, now, forever, forever).await.map_err(|e| e.to_string())?;
    // Every column as text: the same query reads both backends.
    let hourly = store
        .texts(
            "SELECT c.identity, CAST(h.hour AS TEXT), CAST(h.rx AS TEXT), CAST(h.tx AS TEXT) \
             FROM traffic_hourly h JOIN clients c ON c.id = h.client_id",
            &[],
        )
        .await;
    let daily = store
        .texts(
            "SELECT c.identity, CAST(d.day AS TEXT), CAST(d.rx AS TEXT), CAST(d.tx AS TEXT) \
             FROM traffic_daily d JOIN clients c ON c.id = d.client_id",
            &[],
        )
        .await;
    let read = |rows: &[Vec<Option<String>>]| -> BTreeMap<(String, String), Counters> {
        rows.iter()
            .map(|r| {
                let text = |i: usize| r[i].clone().unwrap();
                let c = Counters::new(text(2).parse().unwrap(), text(3).parse().unwrap());
                ((text(0), text(1)), c)
            })
            .filter(|(_, c)| !c.is_zero())
            .collect()
    };
    let want_hours: BTreeMap<(String, String), Counters> = model
        .users
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.hours.iter().map(move |(h, c)| ((USERS[i].to_owned(), h.to_string()), *c)))
        .collect();
    let want_days: BTreeMap<(String, String), Counters> = model
        .users
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.days.iter().map(move |(d, c)| ((USERS[i].to_owned(), d.clone()), *c)))
        .collect();
    if read(&hourly) != want_hours {
        return Err(format!("hourly ledger: stored {:?}, model {want_hours:?}", read(&hourly)));
    }
    if read(&daily) != want_days {
        return Err(format!("daily ledger: stored {:?}, model {want_days:?}", read(&daily)));
    }
    Ok(())
}

/// Runs `ops` on `store` against the model, then removes the store. An
/// error names the backend.
async fn run(mut store: TestStore, ops: Vec<Op>) -> Result<(), String> {
    let result = run_ops(&mut store, ops).await;
    let backend = store.backend();
    store.finish().await;
    result.map_err(|e| format!("{backend}: {e}"))
}

async fn run_ops(store: &mut TestStore, ops: Vec<Op>) -> Result<(), String> {
    let id = add_openvpn_server(&**store, "ovpn").await;
    let mut model = Model {
        sessions: Vec::new(),
        users: USERS.iter().map(|_| Ledger::default()).collect(),
        next_client_id: 0,
        file: None,
        first_poll: true,
    };
    let mut now = Utc.with_ymd_and_hms(2026, 1, 28, 22, 30, 0).single().unwrap();

    for (step, op) in ops.into_iter().enumerate() {
        let label = format!("{op:?}");
        match op {
            Op::Connect { user, reuse_address, port, after } => {
                now += Duration::seconds(after);
                let previous = model.sessions.iter().rev().find(|s| s.user == user).cloned();
                let address = match previous {
                    Some(p) if reuse_address && !p.live => {
                        // See the module docs: keep the start off the quarter-hour grid of
                        // every earlier session from this address.
                        while model
                            .sessions
                            .iter()
                            .any(|s| s.address == p.address && (now.timestamp() - s.since) % 900 == 0)
                        {
                            now += Duration::seconds(1);
                        }
                        p.address
                    }
                    _ => format!("198.18.7.{}:{}", user + 10, u32::from(port) + 10 * model.sessions.len() as u32),
                };
                if model.sessions.iter().any(|s| s.live && s.address == address) {
                    continue;
                }
                model.sessions.push(Session {
                    user,
                    client_id: model.next_client_id,
                    address,
                    since: now.timestamp(),
                    counters: Counters::ZERO,
                    live: true,
                    roamed: false,
                    counted: Counters::ZERO,
                });
                model.next_client_id += 1;
            }
            Op::Traffic { session, rx, tx } => {
                let live = model.live();
                if !live.is_empty() {
                    model.sessions[live[session % live.len()]].counters += Counters::new(rx, tx);
                }
            }
            Op::Roam { session } => {
                let live = model.live();
                if !live.is_empty() {
                    let i = live[session % live.len()];
                    let n = model.sessions.len() + step;
                    model.sessions[i].address = format!("198.18.8.{}:{}", model.sessions[i].user + 10, 40_000 + n);
                    model.sessions[i].roamed = true;
                }
            }
            Op::Disconnect { session } => {
                let live = model.live();
                if !live.is_empty() {
                    model.sessions[live[session % live.len()]].live = false;
                }
            }
            Op::RestartOpenvpn => {
                for s in model.sessions.iter_mut() {
                    s.live = false;
                }
                model.next_client_id = 0;
                now += Duration::seconds(1);
            }
            Op::WriteFile { v1 } => {
                let live: Vec<Session> = model.sessions.iter().filter(|s| s.live).cloned().collect();
                model.file = Some((v1, now, live));
            }
            Op::PollManagement { advance } => {
                now += Duration::seconds(advance);
                let live: Vec<Session> = model.sessions.iter().filter(|s| s.live).cloned().collect();
                if !poll(&**store, id, &management_text(&live, now), now).await? {
                    return Err(format!("step {step}: a new poll was not applied"));
                }
                model.apply(&live, now);
            }
            Op::PollFile { advance } => {
                let Some((v1, written, sessions)) = model.file.clone() else { continue };
                let roamed = |old: &Session| {
                    model.sessions.iter().any(|s| s.client_id == old.client_id && s.since == old.since && s.roamed)
                };
                if v1 && sessions.iter().any(roamed) {
                    continue; // see the module docs
                }
                now += Duration::seconds(advance);
                let text = if v1 { status_v1(&sessions, written) } else { status_v2_v3(&sessions, written, ',') };
                if !poll(&**store, id, &text, now).await? {
                    return Err(format!("step {step}: a new poll was not applied"));
                }
                model.apply(&sessions, now);
            }
            Op::Truncated { management, cut } => {
                let live: Vec<Session> = model.sessions.iter().filter(|s| s.live).cloned().collect();
                let text = if management { management_text(&live, now) } else { status_v1(&live, now) };
                // Cut anywhere before the final END line is complete.
                let cut = cut % (text.len() - 4);
                if let Ok(status) = parse_status(&text[..cut]) {
                    return Err(format!("step {step}: a reply cut at {cut} parsed: {status:?}"));
                }
            }
            Op::FailedPoll { advance } => {
                now += Duration::seconds(advance);
                store.record_poll_failure(id, now, "timed out").await.unwrap();
            }
            Op::RestartPanel => store.reopen().await,
            Op::RollUp => {
                let forever = std::time::Duration::from_secs(100 * 365 * 86_400);
                crate::server::maintenance::roll_up(&**store, TZ, now, forever, forever)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        check(&**store, id, &model, now).await.map_err(|e| format!("after step {step} ({label}): {e}"))?;
    }
    check_rollups(store, &model, now + Duration::hours(2)).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn openvpn_ledgers_equal_the_reference_model_byte_for_byte(ops in proptest::collection::vec(op(), 1..70)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(async move { run(sqlite_store().await, ops).await });
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

proptest! {
    // Each case is a database of its own on the server: fewer cases.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    // The same model on PostgreSQL; passes without running where no server
    // is configured (see `postgres_test_support`).
    #[test]
    fn openvpn_ledgers_equal_the_reference_model_byte_for_byte_on_postgresql(
        ops in proptest::collection::vec(op(), 1..70),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(async move {
            match postgres_store("model_ovpn").await {
                Some(store) => run(store, ops).await,
                None => Ok(()),
            }
        });
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

fn session(user: usize, client_id: u64, address: &str, since: i64, rx: u64, tx: u64) -> Session {
    Session {
        user,
        client_id,
        address: address.to_owned(),
        since,
        counters: Counters::new(rx, tx),
        live: true,
        roamed: false,
        counted: Counters::ZERO,
    }
}

async fn lifetime(store: &dyn Store, id: ServerId, user: &str, at: DateTime<Utc>) -> Counters {
    let clients = store.clients(id, &month_key(at, &TZ)).await.unwrap();
    clients.iter().find(|c| c.identity == user).map(|c| c.total).unwrap_or_default()
}

#[tokio::test]
async fn a_stale_status_file_read_between_management_reads_adds_nothing() {
    for store in test_stores("ovpn_stale_file").await {
        let backend = store.backend();
        let id = add_openvpn_server(&*store, "ovpn").await;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).single().unwrap();
        let since = t0.timestamp() - 600;
        let at = |s: i64| t0 + Duration::seconds(s);
        // First poll carries in; then management sees 500 000 bytes more.
        let carried = management_text(&[session(0, 4, "198.18.7.10:40000", since, 0, 0)], at(0));
        assert!(poll(&*store, id, &carried, at(0)).await.unwrap(), "{backend}");
        let fresh = session(0, 4, "198.18.7.10:40000", since, 200_000, 300_000);
        let grown = management_text(std::slice::from_ref(&fresh), at(30));
        assert!(poll(&*store, id, &grown, at(30)).await.unwrap(), "{backend}");
        assert_eq!(lifetime(&*store, id, "alice", at(30)).await, Counters::new(200_000, 300_000), "{backend}");
        // The management port fails; the status file, written 25 s ago, lags.
        let stale = session(0, 4, "198.18.7.10:40000", since, 150_000, 250_000);
        for (n, text) in
            [status_v1(std::slice::from_ref(&stale), at(35)), status_v2_v3(std::slice::from_ref(&stale), at(35), ',')]
                .iter()
                .enumerate()
        {
            let t = at(60 + 30 * n as i64);
            assert!(poll(&*store, id, text, t).await.unwrap(), "{backend}");
            assert_eq!(
                lifetime(&*store, id, "alice", t).await,
                Counters::new(200_000, 300_000),
                "{backend}: stale read {n}"
            );
        }
        // Management answers again with the session grown by 1 000 + 2 000.
        let later = session(0, 4, "198.18.7.10:40000", since, 201_000, 302_000);
        assert!(poll(&*store, id, &management_text(&[later], at(120)), at(120)).await.unwrap(), "{backend}");
        assert_eq!(lifetime(&*store, id, "alice", at(120)).await, Counters::new(201_000, 302_000), "{backend}");
        let open = store.sessions(&super::SessionFilter { open: true, limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(open.len(), 1, "{backend}: one session throughout: {open:?}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_session_missing_from_one_poll_is_not_counted_again_when_it_reappears() {
    for store in test_stores("ovpn_missing_session").await {
        let backend = store.backend();
        let id = add_openvpn_server(&*store, "ovpn").await;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).single().unwrap();
        let at = |s: i64| t0 + Duration::seconds(s);
        let since = t0.timestamp();
        assert!(poll(&*store, id, &management_text(&[], at(0)), at(0)).await.unwrap(), "{backend}");
        let bob = |rx, tx| session(1, 0, "198.18.7.11:40001", since, rx, tx);
        let seen = management_text(&[bob(10_000, 20_000)], at(30));
        assert!(poll(&*store, id, &seen, at(30)).await.unwrap(), "{backend}");
        // One reply without the session (a file written before it connected).
        assert!(poll(&*store, id, &management_text(&[], at(60)), at(60)).await.unwrap(), "{backend}");
        let again = management_text(&[bob(10_500, 21_000)], at(90));
        assert!(poll(&*store, id, &again, at(90)).await.unwrap(), "{backend}");
        assert_eq!(lifetime(&*store, id, "bob", at(90)).await, Counters::new(10_500, 21_000), "{backend}");
        store.finish().await;
    }
}

#[test]
fn a_bare_client_list_without_its_end_is_refused() {
    let whole = "Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
                 alice,198.18.7.10:40000,100,200,2026-11-20 10:00:00\n\
                 bob,198.18.7.11:40001,300,400,2026-11-20 10:00:00\nEND\n";
    assert_eq!(parse_status(whole).unwrap().sessions.len(), 2);
    let cut = &whole[..whole.find("bob").unwrap()];
    assert!(parse_status(cut).is_err(), "a list cut after alice parsed");
}

#[tokio::test]
async fn open_openvpn_sessions_of_an_older_database_continue_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The first two schemas, with two open OpenVPN sessions keyed the old way:
    // by client id, and (no address, no client id) by a common name holding '@'.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for file in ["0001_init.sql", "0002_server_state.sql"] {
        std::fs::copy(format!("{}/migrations/sqlite/{file}", env!("CARGO_MANIFEST_DIR")), old.join(file)).unwrap();
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&pool).await.unwrap();
    let since = Utc.with_ymd_and_hms(2026, 11, 20, 9, 40, 0).single().unwrap().timestamp();
    for sql in [
        "INSERT INTO servers (id, name, protocol, host, port, ssh_user, ssh_key_path, openvpn_management_port, \
         created_at, last_sample_at, polls_applied) VALUES (1, 'ovpn', 'openvpn', '198.18.0.3', 22, 'root', '/k', \
         7505, 0, 1795170000000, 3)"
            .to_owned(),
        "INSERT INTO clients (id, server_id, identity, first_seen_at, seed_last_sync_at) VALUES \
         (1, 1, 'alice', 0, 0), (2, 1, 'bob@example.org', 0, 0)"
            .to_owned(),
        format!(
            "INSERT INTO connections (id, server_id, client_id, session_key, source, protocol, connected_at, \
             last_seen_at, endpoint, rx, tx, rx_counter, tx_counter, openvpn_client_id) VALUES \
             (7, 1, 1, 'ovpn:1:3', 'cid:3@{since}', 'openvpn', {since}, {since}, '198.18.7.10:40000', 500, 600, 500, 600, 3), \
             (8, 1, 2, 'ovpn:1:x', 'cn:bob@example.org@0', 'openvpn', {since}, {since}, NULL, 5, 6, 5, 6, NULL)"
        ),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let rows: Vec<(String, Option<i64>, bool)> =
        sqlx::query_as("SELECT source, source_since, source_exact FROM connections ORDER BY id")
            .fetch_all(&store.read)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [("alice|198.18.7.10:40000".to_owned(), Some(since), true), ("bob@example.org|".to_owned(), None, false)]
    );
    // The management interface reports alice's session grown by 100 + 200.
    let id = ServerId::new(1);
    let at = DateTime::from_timestamp(1_795_170_030, 0).unwrap();
    let alice = session(0, 3, "198.18.7.10:40000", since, 600, 800);
    assert!(poll(&store, id, &management_text(&[alice], at), at).await.unwrap());
    let open = store.sessions(&super::SessionFilter { open: true, limit: 10, ..Default::default() }).await.unwrap();
    let alice_session = open.iter().find(|s| s.identity == "alice").unwrap();
    assert_eq!((alice_session.id, alice_session.bytes), (7, Counters::new(600, 800)), "the same row, its growth only");
    store.close().await;
}

#[tokio::test]
async fn clients_logging_in_with_a_users_email_or_unique_name_become_that_users_devices() {
    use crate::server::store::UserFields;
    for store in test_stores("ovpn_user_devices").await {
        let backend = store.backend();
        let id = add_openvpn_server(&*store, "users").await;
        let event = crate::server::store::test_support::test_event("create_user");
        let user = |name: &str, email: Option<&str>| UserFields {
            name: name.into(),
            email: email.map(str::to_owned),
            max_connections: 1,
        };
        let bob = store.create_user(&user("Bob", Some("bob@example.org")), &event).await.unwrap();
        // Two users named "alice": her name does not say which.
        store.create_user(&user("alice", None), &event).await.unwrap();
        store.create_user(&user("alice", None), &event).await.unwrap();
        let text = include_str!("../../domain/fixtures/openvpn_status_v2.txt")
            .replacen("1795364967,UNDEF", "1795364967,BOB@example.org", 1)
            .replacen("1795364967,UNDEF", "1795364967,alice", 1);
        assert!(poll(&*store, id, &text, Utc::now()).await.unwrap(), "{backend}");
        let clients = store.clients(id, "").await.unwrap();
        let owner = |cn: &str| clients.iter().find(|c| c.identity == cn).unwrap().user_id;
        assert_eq!(owner("bob"), Some(bob), "{backend}: matched by email, whatever the case");
        assert_eq!(owner("alice"), None, "{backend}: an ambiguous name matches nobody");

        // The admin takes bob's device from him: later polls leave it so.
        store.exec("UPDATE clients SET user_id = NULL WHERE identity = 'bob'", &[]).await;
        assert!(poll(&*store, id, &text, Utc::now() + chrono::Duration::seconds(30)).await.unwrap(), "{backend}");
        let clients = store.clients(id, "").await.unwrap();
        let bobs = clients.iter().find(|c| c.identity == "bob").unwrap().user_id;
        assert_eq!(bobs, None, "{backend}: the admin's choice stays");

        // A user created later, with the email a device logged in with, gets it.
        let carol_text = text.replacen("1795364967,alice", "1795364967,carol@example.org", 1);
        let later = Utc::now() + chrono::Duration::seconds(60);
        assert!(poll(&*store, id, &carol_text, later).await.unwrap(), "{backend}");
        let carol = store.create_user(&user("Carol", Some("carol@example.org")), &event).await.unwrap();
        let clients = store.clients(id, "").await.unwrap();
        let alices = clients.iter().find(|c| c.identity == "alice").unwrap().user_id;
        assert_eq!(alices, Some(carol), "{backend}: claimed at creation");
        store.finish().await;
    }
}
