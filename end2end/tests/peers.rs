//! Revoking and restoring WireGuard peers on a real host: the running
//! interface and its wg-quick file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

fn handshakes_with_the_client(host: &TestHost) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", host.get("TESTHOST_CLIENT_NETNS"), "ping", "-c", "2", "-W", "1", "-i", "0.3"])
        .arg(host.get("TESTHOST_TUNNEL_SERVER_IP"))
        .output()
        .unwrap();
    out.status.success()
}

/// Waits (up to 10 s) for the client's tunnel to carry pings again.
async fn tunnel_comes_back(host: &TestHost) {
    for _ in 0..20 {
        if handshakes_with_the_client(host) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the client's tunnel does not work again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_leaves_the_interface_and_its_file_and_comes_back_exactly_on_restore() {
    let host = TestHost::up(31);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 31").await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
    let client = client_of(&panel, &http, server, &key).await;
    let id = client["id"].as_i64().unwrap();
    let file_before = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(handshakes_with_the_client(&host), "the tunnel works before the revoke");

    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/revoke")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["success"].as_bool(), body["message"].as_str()), (Some(true), Some("Client revoked")));
    assert_eq!(body["client"]["status"], "disabled");
    assert_eq!(body["client"]["disabled_reason"], "manual");
    let dump = host.wg_dump();
    assert!(!dump.contains(&key), "gone from the running interface");
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    let live: Vec<&str> = file.lines().filter(|l| l.starts_with("PublicKey")).collect();
    assert!(!live.iter().any(|l| l.contains(&key)), "no live section in the file: {file}");
    assert!(file.contains(&format!("# tollgate: revoked peer {key}")), "{file}");
    assert!(file.contains(host.get("TESTHOST_IDLE_PUBLIC_KEY")), "the other peer is untouched");
    assert!(!handshakes_with_the_client(&host), "traffic stops");
    // Revoking again is harmless.
    let (status, _) = post_json(&http, &panel.url(&format!("/api/clients/{id}/revoke")), &json!({})).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/restore")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["message"].as_str(), body["client"]["status"].as_str()),
        (Some("Client restored"), Some("active"))
    );
    let dump = host.wg_dump();
    let line = dump.lines().find(|l| l.starts_with(key.as_str())).expect("back on the interface");
    let psk = std::fs::read_to_string(format!(
        "{}/psk",
        std::path::Path::new(host.get("TESTHOST_WG_CONF")).parent().unwrap().display()
    ))
    .unwrap();
    assert_eq!(line.split('\t').nth(1), Some(psk.trim()), "with its preshared key");
    assert_eq!(line.split('\t').nth(3), Some(format!("{}/32", host.get("TESTHOST_TUNNEL_CLIENT_IP")).as_str()));
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(!file.contains("# tollgate: revoked peer"), "{file}");
    let mut sections_before: Vec<&str> = file_before.split("\n\n").collect();
    let mut sections_after: Vec<&str> = file.split("\n\n").map(|s| s.trim_end()).collect();
    sections_before.iter_mut().for_each(|s| *s = s.trim_end());
    sections_before.sort();
    sections_after.sort();
    assert_eq!(sections_after, sections_before, "the same sections as before, the peer's moved to the end");
    tunnel_comes_back(&host).await;

    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}"))).await;
    let actions: Vec<&str> = log["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["restore", "revoke", "revoke"]);
    panel.stop().await;
}

async fn patch(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> StatusCode {
    http.patch(url).json(body).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_its_limit_or_expiry_is_taken_off_its_host_by_the_next_poll() {
    let host = TestHost::up(32);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 32").await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
    let id = client_of(&panel, &http, server, &key).await["id"].as_i64().unwrap();
    let client_url = panel.url(&format!("/api/clients/{id}"));
    let sync = panel.url(&format!("/api/servers/{server}/sync-stats"));
    host.ping(3, 500);

    // A limit below what the client has used: the next poll takes it off.
    assert_eq!(patch(&http, &client_url, &json!({"traffic_limit": 1000})).await, StatusCode::OK);
    let (status, body) = post_json(&http, &sync, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let client = client_of(&panel, &http, server, &key).await;
    assert_eq!(
        (client["status"].as_str(), client["disabled_reason"].as_str()),
        (Some("disabled"), Some("traffic_limit"))
    );
    let dump = host.wg_dump();
    assert!(!dump.contains(&key), "gone from the running interface");
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(file.contains(&format!("# tollgate: revoked peer {key}")), "and from the file: {file}");
    assert!(!handshakes_with_the_client(&host), "traffic stops");
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}&action=disable"))).await;
    let event = &log["events"][0];
    assert_eq!((event["actor"].as_str(), event["reason"].as_str()), (Some("enforcer"), Some("traffic_limit")));
    assert!(event["figures"].as_str().unwrap().ends_with("of 1000 B"), "{event}");

    // Restoring while still over the limit is refused; raising it lets it back.
    let restore = panel.url(&format!("/api/clients/{id}/restore"));
    let (status, body) = post_json(&http, &restore, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("traffic limit"), "{body}");
    assert_eq!(patch(&http, &client_url, &json!({"traffic_limit": null})).await, StatusCode::OK);
    let (status, body) = post_json(&http, &restore, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tunnel_comes_back(&host).await;
    let (status, _) = post_json(&http, &sync, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client_of(&panel, &http, server, &key).await["status"], "active", "no limit: it stays");

    // An expiry date in the past: disabled as expired, and not restored until it moves.
    assert_eq!(patch(&http, &client_url, &json!({"expiry_date": "2020-01-01T00:00:00Z"})).await, StatusCode::OK);
    let (status, _) = post_json(&http, &sync, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client_of(&panel, &http, server, &key).await["disabled_reason"], "expired");
    assert!(!host.wg_dump().contains(&key));
    let (status, body) = post_json(&http, &restore, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("expiry date"), "{body}");
    assert_eq!(patch(&http, &client_url, &json!({"expiry_date": "2099-01-01T00:00:00Z"})).await, StatusCode::OK);
    let (status, body) = post_json(&http, &restore, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(host.wg_dump().contains(&key));
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_threshold_or_near_expiry_is_warned_once() {
    let host = TestHost::up(33);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 33").await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
    let sync = panel.url(&format!("/api/servers/{server}/sync-stats"));
    host.ping(3, 500);
    assert_eq!(post_json(&http, &sync, &json!({})).await.0, StatusCode::OK);
    let client = client_of(&panel, &http, server, &key).await;
    let id = client["id"].as_i64().unwrap();
    let used = client["bytes_sent"].as_u64().unwrap() + client["bytes_received"].as_u64().unwrap();
    // 82 % of the limit used: past the 80 % threshold, below the limit.
    let limit = used * 100 / 82;
    let in_3_days = (chrono::Utc::now() + chrono::TimeDelta::days(3)).to_rfc3339();
    let body = json!({"traffic_limit": limit, "expiry_date": in_3_days});
    assert_eq!(patch(&http, &panel.url(&format!("/api/clients/{id}")), &body).await, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(post_json(&http, &sync, &json!({})).await.0, StatusCode::OK);
    }
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}&action=warn"))).await;
    let mut warnings: Vec<(String, String)> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["reason"].as_str().unwrap().to_owned(), e["figures"].as_str().unwrap().to_owned()))
        .collect();
    warnings.sort();
    assert_eq!(warnings.len(), 2, "one of each over three polls: {log}");
    assert_eq!(warnings[0].0, "expiry");
    assert!(warnings[0].1.starts_with("expires in 3 days"), "{warnings:?}");
    assert_eq!(warnings[1].0, "traffic_limit");
    assert!(warnings[1].1.ends_with("(82 %)") || warnings[1].1.ends_with("(83 %)"), "{warnings:?}");
    assert_eq!(client_of(&panel, &http, server, &key).await["status"], "active", "a warning is not a disable");

    // Seed 000's sync endpoints: per client, and the server under /servers/.
    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = &body["stats"];
    assert!(["sent", "received", "total", "last_seen"].iter().all(|k| stats[k].is_string()), "{body}");
    assert_eq!(stats["last_seen"], "Online", "{body}");
    let (status, body) = post_json(&http, &panel.url(&format!("/servers/{server}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["success"].as_bool(), body["synced"].as_u64()), (Some(true), Some(2)), "{body}");
    panel.stop().await;
}

/// Adds the host's OpenVPN server (management port, client-config-dir).
/// Whether the OpenVPN server lists a live session of `name`.
fn openvpn_lists(host: &TestHost, name: &str) -> bool {
    host.script(&["openvpn-status", "3"]).lines().any(|l| l.starts_with(&format!("CLIENT_LIST\t{name}\t")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_openvpn_client_is_cut_off_and_refused_until_restored() {
    let mut host = TestHost::up(34);
    host.script(&["openvpn-up", "3"]);
    host.reload_env();
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_openvpn(&panel, &http, &host, "OpenVPN 34").await;
    let (_, clients) = get_json(&http, &panel.url(&format!("/api/servers/{server}/clients"))).await;
    let alice = clients["clients"].as_array().unwrap().iter().find(|c| c["common_name"] == "alice").unwrap().clone();
    let id = alice["id"].as_i64().unwrap();
    assert!(openvpn_lists(&host, "alice") && openvpn_lists(&host, "bob"));

    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/revoke")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["message"].as_str(), body["client"]["disabled_reason"].as_str()),
        (Some("Client revoked"), Some("manual"))
    );
    let ccd = format!("{}/alice", host.get("TESTHOST_OPENVPN_CCD"));
    assert_eq!(std::fs::read_to_string(&ccd).unwrap(), "disable\n");
    // Her tunnel is cut, and her client, which keeps retrying, is refused.
    for _ in 0..2 {
        assert!(!host.try_script(&["openvpn-ping", "alice", "2"]), "alice's tunnel still carries traffic");
    }
    let dir = std::path::Path::new(host.get("TESTHOST_OPENVPN_CCD")).parent().unwrap().to_path_buf();
    let refused = || {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        log.lines().any(|l| l.contains("alice/") && l.contains("rejected due to 'disable' directive"))
    };
    let mut seen = false;
    for _ in 0..40 {
        if refused() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(seen, "alice's client tried again and was refused");
    assert!(openvpn_lists(&host, "bob"), "bob is untouched");

    let (status, body) = post_json(&http, &panel.url(&format!("/api/clients/{id}/restore")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(std::fs::read_to_string(&ccd).unwrap(), "", "the block is lifted");
    host.script(&["openvpn-client", "alice"]);
    let mut back = false;
    for _ in 0..40 {
        if openvpn_lists(&host, "alice") {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back, "alice connects again");

    // The enforcer blocks OpenVPN clients the same way: bob's expiry passed.
    let bob = clients["clients"].as_array().unwrap().iter().find(|c| c["common_name"] == "bob").unwrap().clone();
    let bob_url = panel.url(&format!("/api/clients/{}", bob["id"]));
    assert_eq!(patch(&http, &bob_url, &json!({"expiry_date": "2020-01-01T00:00:00Z"})).await, StatusCode::OK);
    let (status, body) = post_json(&http, &panel.url(&format!("/api/servers/{server}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, bob) = get_json(&http, &bob_url).await;
    assert_eq!(bob["client"]["disabled_reason"], "expired", "{bob}");
    let ccd = format!("{}/bob", host.get("TESTHOST_OPENVPN_CCD"));
    assert_eq!(std::fs::read_to_string(&ccd).unwrap(), "disable\n");
    eventually(Duration::from_secs(10), "bob's session is ended", || async {
        (!openvpn_lists(&host, "bob")).then_some(())
    })
    .await;
    assert!(openvpn_lists(&host, "alice"), "alice is untouched");
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_device_limit_loses_the_older_device_across_servers_and_it_stays_out() {
    let older = TestHost::up(35);
    older.ping(2, 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let newer = TestHost::up(36);
    newer.ping(2, 100);
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let first = add_with_config_file(&panel, &http, &older, "Older").await;
    let second = add_with_config_file(&panel, &http, &newer, "Newer").await;
    let (_, user) = post_json(&http, &panel.url("/api/users"), &json!({"name": "Alice", "max_connections": 1})).await;
    let user = user["user"]["id"].as_i64().unwrap();
    let mut devices = Vec::new();
    for (server, host) in [(first, &older), (second, &newer)] {
        let id = client_of(&panel, &http, server, host.get("TESTHOST_CLIENT_PUBLIC_KEY")).await["id"].as_i64().unwrap();
        assert_eq!(
            patch(&http, &panel.url(&format!("/api/clients/{id}")), &json!({"user_id": user})).await,
            StatusCode::OK
        );
        devices.push((server, host, id));
    }
    let status = |server: i64, host: &TestHost| {
        let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
        let (panel, http) = (&panel, &http);
        async move {
            let c = client_of(panel, http, server, &key).await;
            (c["status"].as_str().unwrap().to_owned(), c["disabled_reason"].as_str().map(str::to_owned))
        }
    };
    eventually(Duration::from_secs(20), "the older device to be disabled on its host", || async {
        let c = client_of(&panel, &http, first, older.get("TESTHOST_CLIENT_PUBLIC_KEY")).await;
        (c["disabled_reason"] == "device_limit" && c["pending"] == false).then_some(())
    })
    .await;
    assert!(!older.wg_dump().contains(older.get("TESTHOST_CLIENT_PUBLIC_KEY")));
    // Three poll intervals (1 s each) and more: exactly one device stays on.
    for _ in 0..8 {
        assert_eq!(status(second, &newer).await.0, "active", "the newer device keeps its place");
        assert_eq!(status(first, &older).await.1.as_deref(), Some("device_limit"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, can) = get_json(&http, &panel.url(&format!("/api/users/{user}/can-connect"))).await;
    assert_eq!((can["active"].as_u64(), can["can_connect"].as_bool()), (Some(1), Some(false)), "{can}");
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={}&action=disable", devices[0].2))).await;
    assert_eq!(log["events"][0]["reason"], "device_limit");
    assert_eq!(log["events"][0]["figures"], "2/1 devices");

    // Room for two: the older device comes back.
    assert_eq!(
        patch(&http, &panel.url(&format!("/api/users/{user}")), &json!({"max_connections": 2})).await,
        StatusCode::OK
    );
    eventually(Duration::from_secs(20), "the older device to be let back on its host", || async {
        let c = client_of(&panel, &http, first, older.get("TESTHOST_CLIENT_PUBLIC_KEY")).await;
        (c["status"] == "active" && c["pending"] == false).then_some(())
    })
    .await;
    assert!(older.wg_dump().contains(older.get("TESTHOST_CLIENT_PUBLIC_KEY")));
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_two_openvpn_devices_and_a_limit_of_one_keeps_exactly_one() {
    let mut host = TestHost::up(37);
    host.script(&["openvpn-up", "3"]);
    host.reload_env();
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let server = add_openvpn(&panel, &http, &host, "OpenVPN 37").await;
    let (_, user) = post_json(&http, &panel.url("/api/users"), &json!({"name": "Alice", "max_connections": 1})).await;
    let user = user["user"]["id"].as_i64().unwrap();
    let (_, clients) = get_json(&http, &panel.url(&format!("/api/servers/{server}/clients"))).await;
    for c in clients["clients"].as_array().unwrap() {
        let url = panel.url(&format!("/api/clients/{}", c["id"]));
        assert_eq!(patch(&http, &url, &json!({"user_id": user})).await, StatusCode::OK);
    }
    let reasons = || async {
        let (_, clients) = get_json(&http, &panel.url(&format!("/api/servers/{server}/clients"))).await;
        let mut r: Vec<(String, Option<String>)> = clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["common_name"].as_str().unwrap().to_owned(), c["disabled_reason"].as_str().map(str::to_owned)))
            .collect();
        r.sort();
        r
    };
    let settled = eventually(Duration::from_secs(20), "one device disabled", || async {
        let r = reasons().await;
        (r.iter().filter(|(_, reason)| reason.as_deref() == Some("device_limit")).count() == 1).then_some(r)
    })
    .await;
    let kicked = settled.iter().find(|(_, r)| r.is_some()).unwrap().0.clone();
    let kept = settled.iter().find(|(_, r)| r.is_none()).unwrap().0.clone();
    // Three poll intervals and more: the kicked device's retries do not push the other out.
    for _ in 0..8 {
        assert_eq!(reasons().await, settled);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(openvpn_lists(&host, &kept), "{kept} stays connected");
    assert!(!host.try_script(&["openvpn-ping", &kicked, "2"]), "{kicked}'s tunnel is cut");
    let (_, can) = get_json(&http, &panel.url(&format!("/api/users/{user}/can-connect"))).await;
    assert_eq!((can["active"].as_u64(), can["max"].as_u64()), (Some(1), Some(1)), "{can}");
    panel.stop().await;
}
