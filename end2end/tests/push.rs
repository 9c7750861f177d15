//! Servers push their status (seed 004): authenticated with the server's
//! token, applied like a poll (a repeated push adds nothing), and followed
//! at once by an enforcement pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn push(panel: &TestPanel, server: i64, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(panel.url(&format!("/api/vpn-servers/{server}/events")))
        .header("content-type", "text/plain")
        .body(body.to_owned());
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let res = request.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn bytes(clients: &Value, name: &str) -> u64 {
    let c = clients["clients"].as_array().unwrap().iter().find(|c| c["common_name"] == name).unwrap();
    c["bytes_sent"].as_u64().unwrap() + c["bytes_received"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_status_is_applied_like_a_poll_and_enforced_at_once() {
    let mut host = TestHost::up(44);
    host.script(&["openvpn-up", "3"]);
    host.reload_env();
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_openvpn(&panel, &http, &host, "OpenVPN 44").await;
    let (status, made) = post_json(&http, &panel.url(&format!("/api/servers/{server}/push-token")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();

    host.script(&["openvpn-ping", "alice", "5", "500"]);
    let status_text = host.script(&["openvpn-status", "2"]);
    assert_eq!(push(&panel, server, None, &status_text).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(push(&panel, server, Some("not-the-token"), &status_text).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = push(&panel, server, Some(&token), "garbage\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("OpenVPN status"), "{body}");

    let (status, body) = push(&panel, server, Some(&token), &status_text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["applied"].as_bool(), body["sources"].as_u64()), (Some(true), Some(2)), "{body}");
    let url = panel.url(&format!("/api/servers/{server}/clients"));
    let (_, clients) = get_json(&http, &url).await;
    let alice = bytes(&clients, "alice");
    assert!(alice > 5 * 500, "alice's pings are counted: {alice}");
    // The same status again adds nothing.
    let (status, _) = push(&panel, server, Some(&token), &status_text).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes(&get_json(&http, &url).await.1, "alice"), alice);

    // Bob's expiry has passed: the push is followed by a pass that blocks him.
    let bob = clients["clients"].as_array().unwrap().iter().find(|c| c["common_name"] == "bob").unwrap()["id"].clone();
    let res = http
        .patch(panel.url(&format!("/api/clients/{bob}")))
        .json(&json!({"expiry_date": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = push(&panel, server, Some(&token), &host.script(&["openvpn-status", "3"])).await;
    assert_eq!(status, StatusCode::OK);
    let bob_now = client_json(&panel, &http, bob.as_i64().unwrap()).await;
    assert_eq!((bob_now["disabled_reason"].as_str(), bob_now["pending"].as_bool()), (Some("expired"), Some(false)));
    let ccd = format!("{}/bob", host.get("TESTHOST_OPENVPN_CCD"));
    assert_eq!(std::fs::read_to_string(&ccd).unwrap(), "disable\n");

    // A new token from the CLI replaces the old one.
    let (ok, out) = tollgate(&["push-token", "OpenVPN 44"], &panel.database_url, "");
    assert!(ok, "{out}");
    let new_token = out.trim().to_owned();
    let text = host.script(&["openvpn-status", "1"]);
    assert_eq!(push(&panel, server, Some(&token), &text).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(push(&panel, server, Some(&new_token), &text).await.0, StatusCode::OK);
    panel.stop().await;
}
