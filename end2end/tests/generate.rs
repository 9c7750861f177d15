//! Generating WireGuard peers on a real host: the config the panel returns
//! brings up a real client that handshakes and moves bytes; concurrent
//! requests get distinct addresses; names are stored as text and never
//! reach a shell; the config is kept only sealed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tollgate::server::store::AnyStore;
use tollgate::server::store::UsageQuery;

async fn generate(panel: &TestPanel, http: &reqwest::Client, server: i64, body: &Value) -> (StatusCode, Value) {
    post_json(http, &panel.url(&format!("/api/servers/{server}/clients")), body).await
}

fn line<'a>(config: &'a str, key: &str) -> &'a str {
    config.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))).unwrap_or_else(|| panic!("{key} in {config}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_peer_brings_up_a_real_client_that_moves_bytes() {
    let host = TestHost::up(41);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let server = add_with_config_file(&panel, &http, &host, "Host 41").await;

    let hostile = "Laptop \"x\"; $(reboot) `id`\nsecond line";
    let (status, made) = generate(&panel, &http, server, &json!({"name": hostile, "email": "a@b.io"})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["message"], "Peer generated");
    let config = made["config"].as_str().unwrap().to_owned();
    let client = &made["client"];
    let id = client["id"].as_i64().unwrap();
    let key = client["public_key"].as_str().unwrap().to_owned();
    // .1 is the server, .2 and .3 the test host's peers.
    assert_eq!(line(&config, "Address"), "10.77.41.4/32");
    assert_eq!(line(&config, "PublicKey"), host.get("TESTHOST_SERVER_PUBLIC_KEY"));
    assert_eq!(line(&config, "Endpoint"), "198.18.41.2:51820", "the SSH host and the interface's port");
    assert!(made["qr_svg"].as_str().unwrap().contains("<svg"), "{made}");
    assert_eq!((client["name"].as_str(), client["email"].as_str()), (Some(hostile), Some("a@b.io")));

    // On the host: in the running interface with its preshared key, and in
    // the file with a one-line comment.
    let peer = host.wg_dump().lines().find(|l| l.starts_with(&key)).map(str::to_owned).expect("on the interface");
    let fields: Vec<&str> = peer.split('\t').collect();
    assert_eq!((fields[1], fields[3]), (line(&config, "PresharedKey"), "10.77.41.4/32"), "{peer}");
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(file.contains(&format!("PublicKey = {key}")), "{file}");
    assert!(file.contains("# Laptop \"x\"; $(reboot) `id` second line\n[Peer]"), "{file}");

    // A hostile note is stored and shown as text, and never reaches the host.
    let note = "Bob's <b>\"laptop\"</b></textarea><i>; $(rm -rf /) `id`\nreturn by 2027";
    let res = http.patch(panel.url(&format!("/api/clients/{id}"))).json(&json!({"note": note})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["client"]["note"], note);
    assert_eq!(std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap(), file, "the host's file is untouched");
    let page = http.get(panel.url(&format!("/clients/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("return by 2027"), "the note is on the client page");
    let around: Vec<&str> = page.match_indices("laptop").map(|(i, _)| &page[i.saturating_sub(40)..i + 20]).collect();
    assert!(page.contains("&lt;b&gt;") && !page.contains("<b>\"laptop"), "as text, not markup: {around:?}");
    assert!(!page.contains("</textarea><i>"), "the note cannot end the form's textarea: {around:?}");

    // A real client from that config handshakes and moves bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.conf");
    std::fs::write(&path, &config).unwrap();
    host.script(&["conf-client", path.to_str().unwrap()]);
    eventually(Duration::from_secs(15), "the generated client's tunnel works", || async {
        host.try_script(&["conf-ping", "2"]).then_some(())
    })
    .await;
    let (status, _) = post_json(&http, &panel.url(&format!("/api/servers/{server}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let c = client_json(&panel, &http, id).await;
    assert!(c["bytes_sent"].as_u64().unwrap() > 0 && c["last_handshake"].is_string(), "{c}");

    // The config can be fetched again (never cached), and is stored sealed.
    let res = http.get(panel.url(&format!("/api/clients/{id}/config"))).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.text().await.unwrap(), config);
    let res = http.get(panel.url(&format!("/api/clients/{id}/qr.svg"))).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let private_key = line(&config, "PrivateKey");
    if !on_postgres() {
        let db = panel.database_url.trim_start_matches("sqlite://").to_owned();
        let raw = std::fs::read(&db).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(private_key), "the private key is not in the database file");
    }
    let (status, _) = get_json(&http, &panel.url(&format!("/api/clients/{}/config", 999_999))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: gone from the interface and the file, its usage kept.
    let res = http.delete(panel.url(&format!("/api/clients/{id}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "Client deleted");
    assert!(!host.wg_dump().contains(&key), "off the interface");
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    assert!(!file.contains(&key) && !file.contains("reboot"), "no trace in the file: {file}");
    let (status, _) = get_json(&http, &panel.url(&format!("/api/clients/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let store = AnyStore::open(&panel.database_url).await.unwrap();
    let usage = |identity: String| {
        let store = store.clone();
        async move {
            let query = UsageQuery { accumulated: true, identity: Some(identity), ..Default::default() };
            store.usage(&query).await.unwrap().iter().map(|r| r.bytes.rx + r.bytes.tx).sum::<u64>()
        }
    };
    assert!(usage(key.clone()).await > 0, "the usage history stays");
    let (_, log) = get_json(&http, &panel.url(&format!("/api/events?client={id}&action=delete"))).await;
    assert_eq!(log["events"][0]["figures"], "usage history kept", "{log}");

    // Deleted with its history: nothing of it is left.
    let (_, other) = generate(&panel, &http, server, &json!({"name": "Phone"})).await;
    let (other_id, other_key) = (other["client"]["id"].as_i64().unwrap(), other["client"]["public_key"].clone());
    let res =
        http.delete(panel.url(&format!("/api/clients/{other_id}?keep_usage_history=false"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!host.wg_dump().contains(other_key.as_str().unwrap()));
    let res = http.delete(panel.url(&format!("/api/clients/{other_id}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "deleting twice");
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_generations_get_fifty_distinct_addresses() {
    let host = TestHost::up(42);
    let panel = TestPanel::start_with(manual_polling).await;
    // The 50 requests are served one after another by the server's task.
    let http = panel.login_with(Duration::from_secs(180)).await;
    let server = add_with_config_file(&panel, &http, &host, "Host 42").await;
    let url = panel.url(&format!("/api/servers/{server}/clients"));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { post_json(&http, &url, &json!({"name": format!("device {i}")})).await })
        })
        .collect();
    let mut addresses = BTreeSet::new();
    let mut keys = Vec::new();
    for task in tasks {
        let (status, made) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{made}");
        addresses.insert(line(made["config"].as_str().unwrap(), "Address").to_owned());
        keys.push(made["client"]["public_key"].as_str().unwrap().to_owned());
    }
    assert_eq!(addresses.len(), 50, "{addresses:?}");
    let dump = host.wg_dump();
    let file = std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap();
    for key in &keys {
        assert!(dump.contains(key.as_str()) && file.contains(key.as_str()), "{key} on the host and in its file");
    }
    // Bad requests name the field and change nothing.
    let (status, body) = generate(&panel, &http, server, &json!({"name": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().starts_with("name:"), "{body}");
    assert_eq!(std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap(), file);
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_generates_limits_revokes_restores_and_deletes_a_peer_on_its_host() {
    let host = TestHost::up(43);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    add_with_config_file(&panel, &http, &host, "Host 43").await;
    let url = panel.database_url.clone();

    let (ok, out) = tollgate(&["generate-peer", "Laptop", "lee@example.org"], &url, "");
    assert!(ok, "{out}");
    assert!(out.starts_with("[Interface]\nPrivateKey = ") && out.contains("Address = 10.77.43.4/32"), "{out}");
    assert!(out.contains("generated Laptop on Host 43 (198.18.43.2): address 10.77.43.4/32"), "{out}");
    let key =
        host.wg_dump().lines().find(|l| l.contains("10.77.43.4/32")).unwrap().split('\t').next().unwrap().to_owned();

    let (ok, out) = tollgate(&["limit", "lee@example.org", "10GB", "--monthly", "31"], &url, "");
    assert!(ok && out.contains("on Host 43") && out.contains("10737418240"), "{out}");
    let (ok, out) = tollgate(&["revoke", "lee@example.org"], &url, "");
    assert!(ok && out.contains("revoked #") && out.contains("on Host 43 (198.18.43.2)"), "{out}");
    assert!(!host.wg_dump().contains(&key));
    let (ok, out) = tollgate(&["restore", &key], &url, "");
    assert!(ok && out.contains("restored #"), "{out}");
    assert!(host.wg_dump().contains(&key));
    let (ok, out) = tollgate(&["expire", &key, "2020-01-01T00:00:00Z"], &url, "");
    assert!(ok, "{out}");
    let (ok, out) = tollgate(&["restore", &key], &url, "");
    assert!(!ok && out.contains("expiry date has passed"), "{out}");
    let (ok, out) = tollgate(&["update-peer", &key, "--name", "Work laptop"], &url, "");
    assert!(ok && out.contains("\"Work laptop\""), "{out}");

    let (ok, out) = tollgate(&["delete-peer", "lee@example.org"], &url, "");
    assert!(ok && out.contains("deleted #") && out.contains("usage history removed"), "{out}");
    assert!(!host.wg_dump().contains(&key));
    assert!(!std::fs::read_to_string(host.get("TESTHOST_WG_CONF")).unwrap().contains(&key));
    let (ok, out) = tollgate(&["revoke", "lee@example.org"], &url, "");
    assert!(!ok && out.contains("no client is"), "{out}");
    let (_, log) = get_json(&http, &panel.url("/api/events?action=generate")).await;
    assert_eq!(log["events"][0]["actor"], "cli", "{log}");
    panel.stop().await;
}
