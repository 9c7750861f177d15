//! A pass the watch remembers is quiet until something calls for a look:
//! a figure reaching its boundary, a change to a client, a moment in time.
//! Each of those is shown to wake a full pass that then acts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::domain::accounting::month_key;
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::Protocol;
use crate::domain::{HostKeyPin, RemoteCommand};
use crate::server::store::sqlite::SqliteStore;
use crate::server::store::test_support::test_server;
use crate::server::store::{EventFilter, EventStore, IngestStore, PollFigures, ServerStore, WireguardPoll};
use crate::server::transport::fake::DUMP;
use crate::server::transport::{CommandOutput, TransportError, Tunnel};
use async_trait::async_trait;
use chrono::{TimeDelta, TimeZone};

/// A host that keeps the commands it is asked to run and serves a real
/// wg-quick file; every other command succeeds without output.
#[derive(Default)]
struct Host {
    commands: Vec<String>,
}

#[async_trait]
impl HostTransport for Host {
    async fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, TransportError> {
        self.commands.push(command.argv().join(" "));
        let stdout = if command.argv().first().is_some_and(|w| w == "cat") {
            include_str!("../../domain/fixtures/wg0.conf").to_owned()
        } else {
            String::new()
        };
        Ok(CommandOutput { stdout, stderr: String::new(), exit_status: Some(0) })
    }
    async fn run_with_input(&mut self, command: &RemoteCommand, _: &[u8]) -> Result<CommandOutput, TransportError> {
        self.run(command).await
    }
    async fn open_tcp(&mut self, _: &str, _: u16) -> Result<Tunnel, TransportError> {
        Err(TransportError::Ssh("no tunnels here".into()))
    }
    fn host_key(&self) -> Option<&HostKeyPin> {
        None
    }
}

const ACTIVE: &str = "lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=";

struct Bench {
    store: SqliteStore,
    sql: sqlx::SqlitePool,
    record: ServerRecord,
    watch: Watch,
    host: Host,
    _dir: tempfile::TempDir,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

impl Bench {
    async fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("watch.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let id = store.insert_server(&test_server("wg", Protocol::Wireguard), t0()).await.unwrap();
        let sql = sqlx::SqlitePool::connect(&url).await.unwrap();
        let record = store.server(id, t0(), "").await.unwrap().unwrap();
        let mut bench = Bench { store, sql, record, watch: Watch::new(), host: Host::default(), _dir: dir };
        bench.poll(t0(), 0).await;
        bench
    }

    /// Applies the fixture dump at `at`, the active peer having moved
    /// `extra` more bytes received; returns the figures.
    async fn poll(&mut self, at: DateTime<Utc>, extra: u64) -> PollFigures {
        let text = DUMP.replace("\t5572\t5452\t", &format!("\t{}\t5452\t", 5572 + extra));
        let dump = parse_dump(&text, DumpFlavor::WireGuard).unwrap();
        let month = month_key(at, &chrono_tz::UTC);
        let poll =
            WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import: true, fence: None };
        let outcome = self.store.apply_wireguard_poll(self.record.id, &poll).await.unwrap();
        assert!(outcome.applied);
        outcome.figures.unwrap()
    }

    async fn pass(&mut self, now: DateTime<Utc>, figures: Option<&PollFigures>) -> usize {
        let pass = Pass { now, tz: chrono_tz::UTC, wait: Duration::from_secs(5) };
        enforce(&mut self.host, &self.record, &self.store, &mut self.watch, figures, pass).await.unwrap()
    }

    async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.sql).await.unwrap();
    }

    async fn actions(&self) -> Vec<String> {
        let events = self.store.events(&EventFilter { limit: 100, ..Default::default() }).await.unwrap();
        let mut actions: Vec<String> = events
            .iter()
            .filter(|e| e.event.actor == "enforcer")
            .map(|e| format!("{} {}", e.event.action, e.event.reason.clone().unwrap_or_default()))
            .collect();
        actions.sort();
        actions
    }
}

#[tokio::test]
async fn a_remembered_pass_stays_quiet_until_usage_reaches_the_next_boundary() {
    let mut b = Bench::new().await;
    // The active peer has 11,024 bytes; warn at 80 % of 20,000 = 16,000.
    b.sql(&format!("UPDATE clients SET traffic_limit = 20000 WHERE identity = '{ACTIVE}'")).await;
    assert_eq!(b.pass(t0(), None).await, 0);
    assert_eq!(b.watch.full_passes(), 1);
    for (i, extra) in [1_000u64, 4_000, 4_975].into_iter().enumerate() {
        let at = t0() + TimeDelta::seconds(30 * (i as i64 + 1));
        let figures = b.poll(at, extra).await;
        assert_eq!(b.pass(at, Some(&figures)).await, 0);
        assert_eq!(b.watch.full_passes(), 1, "below the boundary: quiet ({extra} more bytes)");
    }
    assert!(b.actions().await.is_empty());
    // 15,999 → 16,000: the boundary.
    let at = t0() + TimeDelta::seconds(120);
    let figures = b.poll(at, 4_976).await;
    assert_eq!(b.pass(at, Some(&figures)).await, 0);
    assert_eq!(b.watch.full_passes(), 2);
    assert_eq!(b.actions().await, ["warn traffic_limit"]);
    // The warning changed the client: one more full pass, then quiet again.
    b.pass(at + TimeDelta::seconds(1), None).await;
    b.pass(at + TimeDelta::seconds(2), None).await;
    assert_eq!(b.watch.full_passes(), 3);
    // The limit itself: the next boundary.
    let at = t0() + TimeDelta::seconds(150);
    let figures = b.poll(at, 8_976).await;
    assert_eq!(b.pass(at, Some(&figures)).await, 1, "disabled at the limit");
    assert_eq!(b.actions().await, ["disable traffic_limit", "warn traffic_limit"]);
    assert!(b.host.commands.iter().any(|c| c.contains("remove")), "taken off the host: {:?}", b.host.commands);
}

#[tokio::test]
async fn a_change_to_a_client_or_a_poll_not_seen_wakes_a_full_pass() {
    let mut b = Bench::new().await;
    assert_eq!(b.pass(t0(), None).await, 0);
    b.pass(t0() + TimeDelta::seconds(1), None).await;
    assert_eq!(b.watch.full_passes(), 1);
    assert_eq!(b.host.commands, Vec::<String>::new(), "a quiet pass does not reach the host");
    // An admin lowers the limit below the usage: the very next pass acts.
    b.sql(&format!("UPDATE clients SET traffic_limit = 100 WHERE identity = '{ACTIVE}'")).await;
    assert_eq!(b.pass(t0() + TimeDelta::seconds(2), None).await, 1);
    assert_eq!(b.actions().await, ["disable traffic_limit"]);
    // A poll applied by someone else (figures not handed over) is not trusted.
    b.pass(t0() + TimeDelta::seconds(3), None).await;
    let full = b.watch.full_passes();
    b.poll(t0() + TimeDelta::seconds(30), 10).await;
    b.pass(t0() + TimeDelta::seconds(31), None).await;
    assert_eq!(b.watch.full_passes(), full + 1);
}

#[tokio::test]
async fn figures_of_a_poll_followed_by_another_are_not_trusted() {
    let mut b = Bench::new().await;
    b.sql(&format!("UPDATE clients SET traffic_limit = 20000 WHERE identity = '{ACTIVE}'")).await;
    b.pass(t0(), None).await;
    b.pass(t0() + TimeDelta::seconds(1), None).await;
    let full = b.watch.full_passes();
    // The panel's poll, then one applied by another process (a CLI `sync`)
    // before the pass: the client is over its limit in the later one only.
    let ours = b.poll(t0() + TimeDelta::seconds(30), 10).await;
    b.poll(t0() + TimeDelta::seconds(31), 9_000).await;
    assert_eq!(b.pass(t0() + TimeDelta::seconds(32), Some(&ours)).await, 1, "disabled by a full pass");
    assert_eq!(b.watch.full_passes(), full + 1);
}

#[tokio::test]
async fn the_watch_wakes_when_the_expiry_window_opens_and_at_the_expiry() {
    let mut b = Bench::new().await;
    // Off the hourly grid of full passes, so only the watch's own moment wakes the pass.
    let expiry = t0() + TimeDelta::days(9) + TimeDelta::minutes(7);
    b.sql(&format!("UPDATE clients SET expiry_date = {} WHERE identity = '{ACTIVE}'", expiry.timestamp())).await;
    b.pass(t0(), None).await;
    // Quiet for an hour at most (a full pass is never further off).
    b.pass(t0() + TRUST - TimeDelta::seconds(1), None).await;
    assert_eq!(b.watch.full_passes(), 1);
    b.pass(t0() + TRUST, None).await;
    assert_eq!(b.watch.full_passes(), 2);
    assert!(b.actions().await.is_empty());
    // The window opens seven days before the expiry: one warning.
    let window = expiry - TimeDelta::days(7);
    let mut at = t0() + TRUST;
    while at + TRUST < window {
        at += TRUST;
        b.pass(at, None).await;
    }
    b.pass(window - TimeDelta::seconds(1), None).await;
    assert!(b.actions().await.is_empty());
    b.pass(window, None).await;
    assert_eq!(b.actions().await, ["warn expiry"]);
    b.pass(expiry, None).await;
    assert_eq!(b.actions().await, ["disable expired", "warn expiry"]);
}

#[tokio::test]
async fn writing_values_back_unchanged_keeps_the_pass_quiet() {
    let mut b = Bench::new().await;
    b.pass(t0(), None).await;
    // As a poll matching OpenVPN usernames to users writes `user_id` back.
    b.sql("UPDATE clients SET user_id = user_id, access = access, traffic_limit = traffic_limit, name = 'x'").await;
    b.pass(t0() + TimeDelta::seconds(1), None).await;
    assert_eq!(b.watch.full_passes(), 1);
    b.sql(&format!("UPDATE clients SET expiry_date = 1 WHERE identity = '{ACTIVE}'")).await;
    assert_eq!(b.pass(t0() + TimeDelta::seconds(2), None).await, 1, "a real change is seen");
}

#[tokio::test]
async fn a_server_that_cannot_block_says_once_that_a_limit_or_expiry_is_not_enforced() {
    use crate::domain::openvpn::parse_status;
    use crate::server::store::OpenvpnPoll;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ovpn.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    // No client_config_dir: nothing refuses a reconnecting client.
    let id = store.insert_server(&test_server("ovpn", Protocol::Openvpn), t0()).await.unwrap();
    let record = store.server(id, t0(), "").await.unwrap().unwrap();
    let status = parse_status(include_str!("../../domain/fixtures/openvpn_status_v2.txt")).unwrap();
    let month = month_key(t0(), &chrono_tz::UTC);
    store.apply_openvpn_poll(id, &OpenvpnPoll { at: t0(), month: &month, status: &status, fence: None }).await.unwrap();
    let sql = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE clients SET traffic_limit = 100 WHERE identity = 'alice'").execute(&sql).await.unwrap();
    sqlx::query("UPDATE clients SET expiry_date = 1 WHERE identity = 'bob'").execute(&sql).await.unwrap();
    let (mut host, mut watch) = (Host::default(), Watch::new());
    for second in 0..3 {
        let pass = Pass { now: t0() + TimeDelta::seconds(second), tz: chrono_tz::UTC, wait: Duration::from_secs(5) };
        assert_eq!(enforce(&mut host, &record, &store, &mut watch, None, pass).await.unwrap(), 0);
    }
    let events = store.events(&EventFilter { limit: 100, ..Default::default() }).await.unwrap();
    let mut said: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.event.actor == "enforcer")
        .map(|e| (e.event.label.clone(), e.event.figures.clone().unwrap_or_default()))
        .collect();
    said.sort();
    assert_eq!(said.len(), 2, "once each: {said:?}");
    assert!(said[0].0 == "alice" && said[0].1.starts_with("usage 7.2 KB of 100 B"), "{said:?}");
    assert!(said[1].0 == "bob" && said[1].1.starts_with("expired at 1970-01-01"), "{said:?}");
    assert!(said.iter().all(|(_, f)| f.ends_with("not blocked: the server has no client_config_dir")));
    assert!(host.commands.is_empty());
}
