//! Monthly limit periods on a real host, with the enforcer's clock set by
//! the test: a reset on day 31 in February and resets missed while the
//! panel was down each happen exactly once, and they bring back only the
//! clients disabled for their traffic limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tollgate::domain::{ClientId, ServerId};
use tollgate::server::enforce::{enforce, Pass as PassAt, Watch};
use tollgate::server::poll::{poll_server, PollLimits};
use tollgate::server::poller::transport_for;
use tollgate::server::store::AnyStore;
use tollgate::server::store::{EventFilter, PollFigures, ServerRecord};
use tollgate::server::transport::ssh::SshTimeouts;
use tollgate::server::transport::HostTransport;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// The enforcer's side of the test: the panel's database, the host, and
/// what the enforcer remembers between passes (so every pass below is one
/// the watch had to wake for).
struct Pass {
    store: AnyStore,
    record: ServerRecord,
    transport: Box<dyn HostTransport>,
    watch: Watch,
}

impl Pass {
    async fn open(panel: &TestPanel, server: i64) -> Pass {
        let store = AnyStore::open(&panel.database_url).await.unwrap();
        let now = Utc::now();
        let record = store.server(ServerId::new(server), now, "").await.unwrap().unwrap();
        let timeouts = SshTimeouts {
            connect: Duration::from_secs(5),
            authenticate: Duration::from_secs(5),
            command: Duration::from_secs(5),
        };
        let transport = transport_for(&record, timeouts);
        Pass { store, record, transport, watch: Watch::new() }
    }

    async fn poll(&mut self) -> Option<PollFigures> {
        let limits =
            PollLimits { call: Duration::from_secs(5), deadline: Duration::from_secs(30), timezone: chrono_tz::UTC };
        poll_server(self.transport.as_mut(), &mut self.record, &*self.store, limits, None).await.unwrap().figures
    }

    /// A poll, then a pass at `now`, as the panel runs them.
    async fn enforce(&mut self, now: DateTime<Utc>) -> usize {
        let figures = self.poll().await;
        let pass = PassAt { now, tz: chrono_tz::UTC, wait: Duration::from_secs(5) };
        enforce(self.transport.as_mut(), &self.record, &*self.store, &mut self.watch, figures.as_ref(), pass)
            .await
            .unwrap()
    }

    async fn actions(&self, client: i64) -> Vec<String> {
        let filter = EventFilter { client: Some(ClientId::new(client)), limit: 100, ..Default::default() };
        let mut events = self.store.events(&filter).await.unwrap();
        events.sort_by_key(|e| e.id);
        events.iter().map(|e| format!("{} {}", e.event.action, e.event.reason.clone().unwrap_or_default())).collect()
    }

    async fn access(&self, client: i64) -> (bool, Option<String>) {
        let c = self.store.client(ClientId::new(client), "").await.unwrap().unwrap();
        (c.disabled, c.disabled_reason.map(|r| r.as_str().to_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_resets_happen_once_each_also_when_missed_and_lift_only_traffic_limit_disables() {
    let host = TestHost::up(38);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 38").await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
    let idle_key = host.get("TESTHOST_IDLE_PUBLIC_KEY").to_owned();
    let client = client_of(&panel, &http, server, &key).await["id"].as_i64().unwrap();
    let idle = client_of(&panel, &http, server, &idle_key).await["id"].as_i64().unwrap();
    // Both on a 1000-byte monthly limit that resets on the 31st; the idle
    // peer is also revoked by hand, which no reset may undo.
    let policy = json!({"traffic_limit": 1000, "limit_period": "monthly", "reset_day": 31});
    for id in [client, idle] {
        let res = http.patch(panel.url(&format!("/api/clients/{id}"))).json(&policy).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let (status, _) = post_json(&http, &panel.url(&format!("/api/clients/{idle}/revoke")), &json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // The panel polls this server only on request (and is asked nothing
    // more): every poll and pass below is the test's, at its chosen time.
    let mut pass = Pass::open(&panel, server).await;
    // 31 January: the first period begins; nothing used in it yet.
    assert_eq!(pass.enforce(at(2026, 1, 31, 12, 0)).await, 0);
    // Traffic past the limit: disabled on 27 February, off the host.
    host.ping(4, 500);
    assert_eq!(pass.enforce(at(2026, 2, 27, 23, 59)).await, 1);
    assert_eq!(pass.access(client).await, (true, Some("traffic_limit".to_owned())));
    assert!(!host.wg_dump().contains(&key));

    // 28 February 00:00 is the reset (31 clamped): back on the host; the
    // manual revoke stays.
    assert_eq!(pass.enforce(at(2026, 2, 28, 0, 0)).await, 1);
    assert_eq!(pass.access(client).await, (false, None));
    assert!(host.wg_dump().contains(&key));
    assert_eq!(pass.access(idle).await, (true, Some("manual".to_owned())));
    assert!(!host.wg_dump().contains(&idle_key));
    // The same moment again, and later in the period: nothing more.
    assert_eq!(pass.enforce(at(2026, 2, 28, 0, 0)).await, 0);
    assert_eq!(pass.enforce(at(2026, 3, 20, 0, 0)).await, 0);
    assert_eq!(
        pass.actions(client).await,
        ["update ", "disable traffic_limit", "reset monthly", "enable traffic_limit"]
    );
    assert_eq!(pass.actions(idle).await, ["update ", "revoke manual", "reset monthly"]);

    // The restored tunnel carries traffic again (after a new handshake).
    eventually(Duration::from_secs(10), "the tunnel works again", || async {
        host.try_script(&["ping", "38", "1", "100"]).then_some(())
    })
    .await;
    // Over the limit again in March; then the panel is down over the 31
    // March and 30 April resets and comes back on 10 May: one reset.
    host.ping(4, 500);
    assert_eq!(pass.enforce(at(2026, 3, 25, 0, 0)).await, 1);
    assert!(!host.wg_dump().contains(&key));
    assert_eq!(pass.enforce(at(2026, 5, 10, 8, 0)).await, 1);
    assert_eq!(pass.enforce(at(2026, 5, 10, 8, 1)).await, 0);
    assert!(host.wg_dump().contains(&key));
    let actions = pass.actions(client).await;
    assert_eq!(actions[4..], ["disable traffic_limit", "reset monthly", "enable traffic_limit"]);
    assert_eq!(pass.actions(idle).await, ["update ", "revoke manual", "reset monthly", "reset monthly"]);
    assert_eq!(pass.access(idle).await, (true, Some("manual".to_owned())));
    panel.stop().await;
}
