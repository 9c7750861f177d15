//! The database holds the wanted state and each pass brings the host to it:
//! a revoke while the host is down is pending and is carried out when the
//! host answers, a disabled peer re-added by hand is removed again, and a
//! change written but not carried out (the panel stopped in between) is
//! finished by the next pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tollgate::domain::ClientId;
use tollgate::server::store::AnyStore;
use tollgate::server::store::NewEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_while_the_host_is_down_is_pending_and_carried_out_when_it_answers() {
    let host = TestHost::up(39);
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 39").await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
    let id = client_of(&panel, &http, server, &key).await["id"].as_i64().unwrap();

    host.script(&["sshd-stop"]);
    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/revoke")), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["success"].as_bool(), body["pending"].as_bool()), (Some(true), Some(true)));
    assert!(body["message"].as_str().unwrap().starts_with("Client revoked; the host did not answer"), "{body}");
    assert_eq!(
        (body["client"]["status"].as_str(), body["client"]["pending"].as_bool()),
        (Some("disabled"), Some(true))
    );
    assert!(host.wg_dump().contains(&key), "the host was not reachable, so the peer is still there");

    host.script(&["sshd-start"]);
    eventually(Duration::from_secs(30), "the queued revoke is carried out", || async {
        (client_json(&panel, &http, id).await["pending"] == false).then_some(())
    })
    .await;
    assert!(!host.wg_dump().contains(&key), "gone from the running interface");
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(file.contains(&format!("# tollgate: revoked peer {key}")), "and from the file: {file}");
    let c = client_json(&panel, &http, id).await;
    assert_eq!((c["status"].as_str(), c["disabled_reason"].as_str()), (Some("disabled"), Some("manual")));

    // Someone adds the peer back by hand: the next pass removes it again,
    // with an event, and the server counts the drift.
    host.in_host(&["wg", "set", host.get("TESTHOST_IFACE"), "peer", &key, "allowed-ips", "10.250.0.2/32"]);
    assert!(host.wg_dump().contains(&key));
    eventually(Duration::from_secs(20), "the re-added peer is removed again", || async {
        (!host.wg_dump().contains(&key)).then_some(())
    })
    .await;
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}&action=reconcile"))).await;
    let event = &log["events"][0];
    assert_eq!((event["actor"].as_str(), event["reason"].as_str()), (Some("enforcer"), Some("manual")), "{log}");
    let s = server_json(&panel, &http, server).await;
    assert!(s["drift_count"].as_u64().unwrap() >= 1, "{s}");

    // A restore written to the database whose host change never happened
    // (the panel stopped in between): the next pass finishes it, and passes
    // after that change nothing.
    let store = AnyStore::open(&panel.database_url).await.unwrap();
    let event = NewEvent {
        at: chrono::Utc::now(),
        actor: "admin".to_owned(),
        action: "restore".to_owned(),
        reason: None,
        figures: None,
        client_id: Some(ClientId::new(id)),
        user_id: None,
        server_id: None,
        label: "test".to_owned(),
    };
    store.set_client_access(ClientId::new(id), None, &event).await.unwrap();
    let panel = panel.restart().await;
    let http = panel.login().await;
    eventually(Duration::from_secs(30), "the interrupted restore is finished", || async {
        (client_json(&panel, &http, id).await["pending"] == false).then_some(())
    })
    .await;
    assert!(host.wg_dump().contains(&key), "back on the interface");
    assert_eq!(client_json(&panel, &http, id).await["status"], "active");
    let before = server_json(&panel, &http, server).await["drift_count"].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server_json(&panel, &http, server).await["drift_count"], before);
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}"))).await;
    let actions: Vec<&str> = log["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "reconcile").count(), 1, "{actions:?}");
    panel.stop().await;
}
