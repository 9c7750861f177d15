//! The panel against real WireGuard hosts (wireguard-go + sshd in network
//! namespaces, see `end2end/testhost.sh`). Needs root. Each test uses its own
//! host numbers, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_polls_a_real_host_and_stores_what_wg_show_reports() {
    let host = TestHost::up(11);
    host.ping(5, 1000);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;

    let (status, added) = post_json(&http, &panel.url("/api/servers"), &host.add_request("Host 11")).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["success"], true);
    assert_eq!(added["host_key_fingerprint"], host.get("TESTHOST_HOST_KEY_FINGERPRINT"));
    let id = added["id"].as_i64().unwrap();

    let client_key = host.get("TESTHOST_CLIENT_PUBLIC_KEY");
    let first = client_of(&panel, &http, id, client_key).await;
    assert_eq!(first["connection"], "online");
    assert_eq!(first["stats"]["is_online"], true);
    assert_eq!(first["stats"]["last_seen"], "Online");
    assert_eq!(first["status"], "active");
    assert_eq!(first["client_ip"], host.get("TESTHOST_TUNNEL_CLIENT_IP"));
    assert!(first["endpoint"].as_str().unwrap().starts_with(&format!("198.18.{}.6:", host.n)));
    assert!(first["last_handshake"].is_string());
    let first_sent = first["bytes_sent"].as_u64().unwrap();
    assert!(first_sent > 5 * 1000, "five 1000-byte pings went up: {first}");

    let idle = client_of(&panel, &http, id, host.get("TESTHOST_IDLE_PUBLIC_KEY")).await;
    assert_eq!(idle["connection"], "never_connected");
    assert_eq!(idle["stats"]["last_seen"], "Never connected");
    assert_eq!((idle["bytes_sent"].as_u64(), idle["bytes_received"].as_u64()), (Some(0), Some(0)));
    assert!(idle["last_handshake"].is_null());
    assert_eq!(idle["allowed_ips"], json!([format!("10.77.{}.3/32", host.n), format!("fd77:{}::3/128", host.n)]));

    host.ping(10, 1200);
    let before = host.wg_counters(client_key);
    let (status, synced) = post_json(&http, &panel.url(&format!("/api/servers/{id}/sync-stats")), &json!({})).await;
    let after = host.wg_counters(client_key);
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(synced["synced"], 2);

    let now = client_of(&panel, &http, id, client_key).await;
    let stored = (now["bytes_sent"].as_u64().unwrap(), now["bytes_received"].as_u64().unwrap());
    assert!(before.0 <= stored.0 && stored.0 <= after.0, "rx {before:?} <= {stored:?} <= {after:?}");
    assert!(before.1 <= stored.1 && stored.1 <= after.1, "tx {before:?} <= {stored:?} <= {after:?}");
    assert!(stored.0 >= first_sent + 10 * 1200, "ten more 1200-byte pings: {first_sent} -> {}", stored.0);

    let (_, dash) = get_json(&http, &panel.url("/api/dashboard")).await;
    assert_eq!(dash["dashboard"]["online"], 1);
    assert_eq!(dash["dashboard"]["clients"], 2);

    let server = server_json(&panel, &http, id).await;
    assert_eq!(server["health"], "ok");
    assert_eq!(server["online"], 1);
    assert!(server["last_error"].is_null());
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_page_is_rendered_completely_on_the_server() {
    let host = TestHost::up(18);
    host.ping(2, 100);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let id = add(&panel, &http, &host.add_request("Host 18")).await;

    let res = http.get(panel.url(&format!("/servers/{id}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert_eq!(html.matches("data-testid=\"client-row\"").count(), 2, "{html}");
    assert!(html.contains(host.get("TESTHOST_CLIENT_PUBLIC_KEY")));
    assert!(html.contains(">Online<"));
    assert!(html.contains(host.get("TESTHOST_HOST_KEY_FINGERPRINT")));

    let anonymous = panel.client();
    let res = anonymous.get(panel.url(&format!("/servers/{id}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_before_logging_in() {
    let mut host = TestHost::up(12);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let pinned = host.get("TESTHOST_HOST_KEY_FINGERPRINT").to_owned();
    let id = add(&panel, &http, &host.add_request("Host 12")).await;

    host.script(&["rekey"]);
    host.reload_env();
    let logins_before = host.sshd_log().matches("Accepted publickey").count();
    let (status, body) = post_json(&http, &panel.url(&format!("/api/servers/{id}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("host key changed"), "{message}");
    assert!(message.contains(&pinned), "names the pinned key: {message}");
    assert!(message.contains(host.get("TESTHOST_HOST_KEY_FINGERPRINT")), "names the offered key: {message}");

    let server = server_json(&panel, &http, id).await;
    assert_eq!(server["health"], "error");
    assert!(server["last_error"].as_str().unwrap().contains("host key changed"));
    assert_eq!(server["host_key_fingerprint"], pinned, "the pin is kept");
    assert_eq!(host.sshd_log().matches("Accepted publickey").count(), logins_before, "never authenticated");

    // An admin who states the fingerprint up front is held to it.
    let mut body = host.add_request("Host 12 again");
    body["host_key_fingerprint"] = json!(pinned);
    let (status, refused) = post_json(&http, &panel.url("/api/servers"), &body).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
    body["host_key_fingerprint"] = json!(host.get("TESTHOST_HOST_KEY_FINGERPRINT"));
    add(&panel, &http, &body).await;
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_sshd_is_stopped_shows_an_error_while_another_keeps_being_polled() {
    let down = TestHost::up(13);
    let up = TestHost::up(14);
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let down_id = add(&panel, &http, &down.add_request("Host 13")).await;
    let up_id = add(&panel, &http, &up.add_request("Host 14")).await;

    down.script(&["sshd-stop"]);
    let error = eventually(WAIT, "host 13 to show an error", || async {
        let s = server_json(&panel, &http, down_id).await;
        (s["health"] == "error").then(|| s["last_error"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(error.contains("could not connect") && error.contains("refused"), "{error}");

    // Meanwhile host 14 goes on being polled and its traffic shows up.
    let key = up.get("TESTHOST_CLIENT_PUBLIC_KEY");
    let before = client_of(&panel, &http, up_id, key).await["bytes_sent"].as_u64().unwrap();
    up.ping(5, 1000);
    eventually(WAIT, "host 14's new traffic", || async {
        let sent = client_of(&panel, &http, up_id, key).await["bytes_sent"].as_u64().unwrap();
        (sent >= before + 5000).then_some(())
    })
    .await;
    let s = server_json(&panel, &http, up_id).await;
    assert_eq!(s["health"], "ok", "{s}");
    assert_eq!(server_json(&panel, &http, down_id).await["health"], "error");

    // Host 13 recovers by itself once sshd is back.
    down.script(&["sshd-start"]);
    eventually(WAIT, "host 13 to recover", || async {
        (server_json(&panel, &http, down_id).await["health"] == "ok").then_some(())
    })
    .await;
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_times_out_without_holding_up_another_or_shutdown() {
    let hung = TestHost::up(15);
    let fine = TestHost::up(16);
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let hung_id = add(&panel, &http, &hung.add_request("Host 15")).await;
    let fine_id = add(&panel, &http, &fine.add_request("Host 16")).await;

    hung.script(&["sshd-freeze"]);
    let error = eventually(WAIT, "host 15 to time out", || async {
        let s = server_json(&panel, &http, hung_id).await;
        s["last_error"].as_str().filter(|e| e.contains("timed out")).map(str::to_owned)
    })
    .await;
    assert!(error.contains("timed out after"), "{error}");

    // While host 15 hangs, host 16 completes polls.
    let first = server_json(&panel, &http, fine_id).await["last_success_at"].as_str().unwrap().to_owned();
    eventually(WAIT, "host 16 to be polled again", || async {
        let s = server_json(&panel, &http, fine_id).await;
        (s["last_success_at"].as_str().unwrap() > first.as_str()).then_some(())
    })
    .await;

    // Shutdown does not wait for the hung host beyond the grace period (5 s).
    let took = panel.stop().await;
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    hung.script(&["sshd-thaw"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_interface_is_not_added() {
    let host = TestHost::up(17);
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let mut body = host.add_request("Host 17");
    body["interface"] = json!("wg-missing");
    let (status, refused) = post_json(&http, &panel.url("/api/servers"), &body).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("wg-missing") && message.contains("Unable to access interface"), "{message}");

    let mut body = host.add_request("Host 17");
    body["private_key_path"] = json!(format!("{}/17/no-such-key", testhost_dir().display()));
    let (status, refused) = post_json(&http, &panel.url("/api/servers"), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a bad key file is the request's fault: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("private_key_path"), "{refused}");

    let (_, list) = get_json(&http, &panel.url("/api/servers")).await;
    assert_eq!(list["servers"], json!([]), "nothing stored");
    panel.stop().await;
}
