//! Client policy over the JSON API: `PATCH /api/clients/{id}`, seed 002's
//! single-field endpoints, and the event log. The clients come from a real
//! wireguard-go dump stored as a poll; no host is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate::domain::accounting::month_key;
use tollgate::domain::wg_dump::{parse_dump, DumpFlavor};
use tollgate::domain::{
    CommandPrefix, HostAddress, HostKeyPin, InterfaceName, Protocol, ServerName, SshKeySource, SshUser,
};
use tollgate::server::store::AnyStore;
use tollgate::server::store::{NewServer, WireguardPoll};

const DUMP: &str = include_str!("../../src/domain/fixtures/wg_show_server_dump.txt");
const KEY: &str = "lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=";

/// Adds a WireGuard server with interface wg0 straight into the panel's
/// database and stores one poll of a real dump; returns its id.
async fn server_with_peers(panel: &TestPanel, name: &str) -> i64 {
    let store = AnyStore::open(&panel.database_url).await.unwrap();
    let server = NewServer {
        name: ServerName::parse(name).unwrap(),
        protocol: Protocol::Wireguard,
        host: HostAddress::parse("198.18.250.2").unwrap(),
        port: 22,
        user: SshUser::parse("root").unwrap(),
        key: SshKeySource::File("/nonexistent".into()),
        interface: Some(InterfaceName::parse("wg0").unwrap()),
        command_prefix: CommandPrefix::empty(),
        openvpn: None,
        host_key: HostKeyPin { openssh: "ssh-ed25519 AAAA".into(), fingerprint: "SHA256:x".into() },
        config_path: None,
        client_config_dir: None,
        client_defaults: Default::default(),
    };
    let id = store.insert_server(&server, chrono::Utc::now()).await.unwrap();
    let mut dump = parse_dump(DUMP, DumpFlavor::WireGuard).unwrap();
    let at = chrono::Utc::now();
    // KEY handshook ten seconds ago: online now.
    for peer in dump.peers.iter_mut().filter(|p| p.public_key.to_string() == KEY) {
        peer.latest_handshake = Some(at - chrono::TimeDelta::seconds(10));
    }
    let month = month_key(at, &chrono_tz::Tz::UTC);
    let poll =
        WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import: true, fence: None };
    assert!(store.apply_wireguard_poll(id, &poll).await.unwrap().applied);
    store.close().await;
    id.get()
}

async fn client_id(panel: &TestPanel, http: &reqwest::Client, server: i64) -> i64 {
    client_of(panel, http, server, KEY).await["id"].as_i64().unwrap()
}

async fn patch(http: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let res = http.patch(url).json(body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_client_policy_is_set_read_back_and_logged_and_bad_input_changes_nothing() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let server = server_with_peers(&panel, "Frankfurt").await;
    let id = client_id(&panel, &http, server).await;
    let url = panel.url(&format!("/api/clients/{id}"));

    let (status, body) = patch(
        &http,
        &url,
        &json!({
            "name": "Alice's phone\"; $(reboot)\n", "email": "alice@example.org", "note": " <b>Bob</b>;\n$(id) ",
            "traffic_limit": 10_737_418_240u64, "traffic_warn_threshold": 90,
            "limit_period": "monthly", "reset_day": 31, "expiry_date": "2026-12-31T23:59:59Z",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = &body["client"];
    assert_eq!(c["name"], "Alice's phone\"; $(reboot)", "hostile text is stored as text");
    assert_eq!(c["email"], "alice@example.org");
    assert_eq!(c["note"], "<b>Bob</b>;\n$(id)", "a note is text, trimmed");
    assert_eq!(c["traffic_limit"], 10_737_418_240u64);
    assert_eq!((c["traffic_warn_threshold"].as_u64(), c["limit_period"].as_str()), (Some(90), Some("monthly")));
    assert_eq!(c["reset_day"], 31);
    assert_eq!(c["expiry_date"], "2026-12-31T23:59:59Z");
    let (_, fresh) = get_json(&http, &url).await;
    assert_eq!(fresh["client"], *c, "GET shows what PATCH returned");

    // One bad field: a 422 naming it, and the good field beside it is not applied.
    for (bad, field) in [
        (json!({"traffic_limit": 5, "reset_day": 40}), "reset_day"),
        (json!({"traffic_limit": 5, "quota": 1}), "quota"),
        (json!({"traffic_limit": 5, "user_id": 999}), "user_id"),
        (json!({"traffic_limit": 5, "expiry_date": "soon"}), "expiry_date"),
    ] {
        let (status, body) = patch(&http, &url, &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with(field), "{body}");
    }
    let (_, after) = get_json(&http, &url).await;
    assert_eq!(after["client"]["traffic_limit"], 10_737_418_240u64, "nothing half-applied");

    let (status, body) = patch(&http, &url, &json!({"traffic_limit": null, "limit_period": "lifetime"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["client"]["traffic_limit"].clone(), body["client"]["reset_day"].clone()),
        (Value::Null, Value::Null)
    );

    let (status, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "one event per applied change, none for refused ones: {log}");
    assert_eq!((events[0]["actor"].as_str(), events[0]["action"].as_str()), (Some(ADMIN), Some("update")));
    assert_eq!(events[0]["figures"], "traffic_limit 10 GB → none; limit_period monthly from day 31 → lifetime");
    assert!(events[1]["figures"].as_str().unwrap().contains("traffic_limit none → 10 GB"), "{log}");
    assert_eq!(events[0]["server_id"], server);
    let (_, none) = get_json(&http, &panel.url("/api/events?action=revoke")).await;
    assert_eq!(none["events"], json!([]));
    let (status, _) = patch(&http, &panel.url("/api/clients/999"), &json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel.stop().await;
}

#[tokio::test]
async fn seed_002_endpoints_find_the_peer_by_key_and_interface_and_refuse_ambiguity() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let first = server_with_peers(&panel, "One").await;
    let limit = panel.url("/api/updatePeerTrafficLimit/wg0");
    let (status, body) = post_json(&http, &limit, &json!({"id": KEY, "traffic_limit": 10_737_418_240u64})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["success"].as_bool(), body["message"].as_str()), (Some(true), Some("Traffic limit updated")));
    assert_eq!(body["client"]["traffic_limit"], 10_737_418_240u64);

    let expiry = panel.url("/api/updatePeerExpiryDate/wg0");
    let (status, body) = post_json(&http, &expiry, &json!({"id": KEY, "expiry_date": "2027-01-31T12:00:00"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client"]["expiry_date"], "2027-01-31T12:00:00Z", "a naive date is in the panel's zone (UTC)");
    let (_, body) = post_json(&http, &expiry, &json!({"id": KEY, "expiry_date": null})).await;
    assert_eq!(body["client"]["expiry_date"], Value::Null);
    let threshold = panel.url("/api/updatePeerTrafficWarningThreshold/wg0");
    let (_, body) = post_json(&http, &threshold, &json!({"id": KEY, "threshold": 95})).await;
    assert_eq!(body["client"]["traffic_warn_threshold"], 95);
    let (status, _) = post_json(&http, &threshold, &json!({"id": KEY, "threshold": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        post_json(&http, &panel.url("/api/updatePeerTrafficLimit/wg9"), &json!({"id": KEY, "traffic_limit": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such peer on that interface");

    // The same key on a second server's wg0: the request must say which.
    let second = server_with_peers(&panel, "Two").await;
    let (status, body) = post_json(&http, &limit, &json!({"id": KEY, "traffic_limit": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("?server="), "{body}");
    let (status, body) =
        post_json(&http, &format!("{limit}?server={second}"), &json!({"id": KEY, "traffic_limit": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client"]["server_id"], second);
    let untouched = client_of(&panel, &http, first, KEY).await;
    assert_eq!(untouched["traffic_limit"], 10_737_418_240u64);
    panel.stop().await;
}

#[tokio::test]
async fn users_own_clients_and_can_connect_counts_their_live_devices() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let server = server_with_peers(&panel, "Amsterdam").await;
    let device = client_id(&panel, &http, server).await;

    let (status, body) = post_json(
        &http,
        &panel.url("/api/users"),
        &json!({"name": "Alice", "email": "alice@example.org", "max_connections": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = body["user"]["id"].as_i64().unwrap();
    let (status, body) =
        post_json(&http, &panel.url("/api/users"), &json!({"name": "Other", "email": "ALICE@example.org"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "emails are unique, whatever their case: {body}");
    let (status, body) = post_json(&http, &panel.url("/api/users"), &json!({"email": "x@example.org"})).await;
    assert_eq!((status, body["error"].as_str().unwrap().starts_with("name")), (StatusCode::UNPROCESSABLE_ENTITY, true));

    let (status, _) = patch(&http, &panel.url(&format!("/api/clients/{device}")), &json!({"user_id": user})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = get_json(&http, &panel.url(&format!("/api/users/{user}"))).await;
    assert_eq!(body["user"]["clients"], json!([device]));
    assert_eq!(body["user"]["active"], 1, "the device handshook ten seconds ago");

    let can = panel.url(&format!("/api/users/{user}/can-connect"));
    let (status, body) = get_json(&http, &can).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true, "can_connect": false, "active": 1, "max": 1}));
    let (_, _) = patch(&http, &panel.url(&format!("/api/users/{user}")), &json!({"max_connections": 2})).await;
    let (_, body) = get_json(&http, &can).await;
    assert_eq!(body, json!({"success": true, "can_connect": true, "active": 1, "max": 2}));

    let res = http.delete(panel.url(&format!("/api/users/{user}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = get_json(&http, &can).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let device_now = client_of(&panel, &http, server, KEY).await;
    assert_eq!(device_now["user_id"], Value::Null, "the device stays, without an owner");
    let (_, log) = get_json(&http, &panel.url("/api/events?limit=10")).await;
    let actions: Vec<&str> = log["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete_user", "update_user", "update", "create_user"]);
    panel.stop().await;
}
