//! Accounting, sessions, OpenVPN and the monitoring CLI against real hosts
//! (wireguard-go, OpenVPN 2.6 and sshd in network namespaces, see
//! `end2end/testhost.sh`). Needs root. Host numbers 21–29 are this file's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

async fn poll_now(panel: &TestPanel, http: &reqwest::Client, id: i64) -> Value {
    let (status, body) = post_json(http, &panel.url(&format!("/api/servers/{id}/sync-stats")), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn sessions(panel: &TestPanel, http: &reqwest::Client, server: i64, state: &str) -> Vec<Value> {
    let url = panel.url(&format!("/api/sessions?state={state}&server={server}"));
    let (status, body) = get_json(http, &url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

fn open_of<'a>(sessions: &'a [Value], identity: &str) -> Option<&'a Value> {
    sessions.iter().find(|s| s["identity"] == identity && s["disconnected_at"].is_null())
}

fn traffic(v: &Value) -> (u64, u64) {
    (v["bytes_sent"].as_u64().unwrap(), v["bytes_received"].as_u64().unwrap())
}

fn month(client: &Value) -> (u64, u64) {
    traffic(&client["month"])
}

/// Common names in CLIENT_LIST lines of the server's own `status 3`, with their client ids.
fn openvpn_clients(host: &TestHost) -> Vec<(String, u64)> {
    host.script(&["openvpn-status", "3"])
        .lines()
        .filter(|l| l.starts_with("CLIENT_LIST\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_owned(), f[10].parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openvpn_server_shows_both_sessions_growing_and_a_kill_from_the_panel_ends_one() {
    let host = TestHost::up(21);
    host.script(&["openvpn-up", "3"]);
    let mut host = host;
    host.reload_env();
    let panel = TestPanel::start().await;
    let http = panel.login().await;

    let mut body = host.add_request("OpenVPN 21");
    body["protocol"] = json!("openvpn");
    body["interface"] = Value::Null;
    body["management_port"] = json!(host.get("TESTHOST_OPENVPN_MANAGEMENT_PORT").parse::<u16>().unwrap());
    body["status_path"] = json!(host.get("TESTHOST_OPENVPN_STATUS"));
    let id = add(&panel, &http, &body).await;

    // The same server read from its status file alone (status-version 3).
    let mut file_only = host.add_request("OpenVPN 21 (status file)");
    file_only["protocol"] = json!("openvpn");
    file_only["interface"] = Value::Null;
    file_only["status_path"] = json!(host.get("TESTHOST_OPENVPN_STATUS"));
    let file_id = add(&panel, &http, &file_only).await;

    for server in [id, file_id] {
        let open = eventually(WAIT, "both OpenVPN sessions", || async {
            let open = sessions(&panel, &http, server, "open").await;
            (open_of(&open, "alice").is_some() && open_of(&open, "bob").is_some()).then_some(open)
        })
        .await;
        for name in ["alice", "bob"] {
            let s = open_of(&open, name).unwrap();
            assert_eq!(s["protocol"], "openvpn", "{s}");
            let cid = s["openvpn_client_id"].as_u64().unwrap();
            assert_eq!(s["session_key"], format!("ovpn:{server}:{cid}"));
            assert!(s["virtual_ip"].as_str().unwrap().starts_with(&format!("10.78.{}.", host.n)), "{s}");
            assert!(s["endpoint"].as_str().unwrap().starts_with(&format!("198.18.{}.6:", host.n)), "{s}");
        }
    }

    // Traffic from alice shows up in her session and her client row, on both servers.
    let open = sessions(&panel, &http, id, "open").await;
    let alice_before = traffic(open_of(&open, "alice").unwrap());
    host.script(&["openvpn-ping", "alice", "10", "1000"]);
    for server in [id, file_id] {
        eventually(WAIT, "alice's session to grow", || async {
            let open = sessions(&panel, &http, server, "open").await;
            let now = traffic(open_of(&open, "alice")?);
            (now.0 >= alice_before.0 + 10 * 1000 && now.1 >= alice_before.1 + 10 * 1000).then_some(())
        })
        .await;
    }
    let (_, clients) = get_json(&http, &panel.url(&format!("/api/servers/{id}/clients"))).await;
    let alice = clients["clients"].as_array().unwrap().iter().find(|c| c["identity"] == "alice").unwrap().clone();
    assert_eq!(alice["common_name"], "alice");
    assert_eq!(alice["connection"], "online");
    assert!(month(&alice).0 >= 10 * 1000, "{alice}");

    // A page of the list, as the API serves it: a search in any case and the online filter.
    let (status, page) = get_json(&http, &panel.url(&format!("/api/servers/{id}/clients?q=ALI&status=online"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let found: Vec<&str> =
        page["clients"].as_array().unwrap().iter().map(|c| c["identity"].as_str().unwrap()).collect();
    assert_eq!(found, ["alice"], "{page}");
    assert_eq!((page["matched"].as_u64(), page["page"].as_u64(), page["pages"].as_u64()), (Some(1), Some(1), Some(1)));
    assert!(page["online"].as_u64().unwrap() >= 2, "alice and bob: {page}");
    let sent = |c: &serde_json::Value| c["bytes_sent"].as_u64().unwrap();
    assert!(sent(&page["clients"][0]) >= sent(&alice), "live figures, as in the full list: {page}");
    let (status, refused) = get_json(&http, &panel.url(&format!("/api/servers/{id}/clients?sort=size"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // The panel ends alice's session (HALT: her client exits rather than reconnecting).
    let open = sessions(&panel, &http, id, "open").await;
    let alice_session = open_of(&open, "alice").unwrap().clone();
    let alice_cid = alice_session["openvpn_client_id"].as_u64().unwrap();
    assert!(openvpn_clients(&host).contains(&("alice".to_owned(), alice_cid)));
    let url = panel.url(&format!("/api/sessions/{}/disconnect", alice_session["id"]));
    let (status, reply) = post_json(&http, &url, &json!({ "halt": true })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    eventually(WAIT, "alice to leave the server's own status", || async {
        let clients = openvpn_clients(&host);
        (!clients.iter().any(|(name, cid)| name == "alice" || *cid == alice_cid)).then_some(())
    })
    .await;
    assert!(openvpn_clients(&host).iter().any(|(name, _)| name == "bob"), "bob is untouched");

    // The panel closes her session, keeps its bytes and lists it as recently disconnected.
    let ended = eventually(WAIT, "alice's session to end in the panel", || async {
        let recent = sessions(&panel, &http, id, "recent").await;
        recent.into_iter().find(|s| s["id"] == alice_session["id"])
    })
    .await;
    assert!(ended["disconnected_at"].is_string());
    assert!(traffic(&ended).0 >= alice_before.0 + 10 * 1000);
    assert!(open_of(&sessions(&panel, &http, id, "open").await, "bob").is_some());

    // A session that has ended cannot be ended again.
    let (status, _) = post_json(&http, &url, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A plain kill (RESTART): bob reconnects as a new session with a new client id.
    let open = sessions(&panel, &http, id, "open").await;
    let bob_session = open_of(&open, "bob").unwrap().clone();
    let url = panel.url(&format!("/api/sessions/{}/disconnect", bob_session["id"]));
    let (status, reply) = post_json(&http, &url, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let again = eventually(WAIT, "bob to come back as a new session", || async {
        let open = sessions(&panel, &http, id, "open").await;
        open_of(&open, "bob").filter(|s| s["id"] != bob_session["id"]).cloned()
    })
    .await;
    assert_ne!(again["openvpn_client_id"], bob_session["openvpn_client_id"]);
    panel.stop().await;
}

/// Pings until the tunnel answers again (after a restart the client needs a
/// new handshake, which wireguard-go starts after its rekey timeout).
fn ping_until_answered(host: &TestHost) {
    for _ in 0..40 {
        if host.try_script(&["ping", "1", "64"]) {
            return;
        }
    }
    panic!("the tunnel of host {} never answered", host.n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_wireguard_interface_keeps_the_month_total_growing_without_a_jump() {
    let host = TestHost::up(22);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let id = add(&panel, &http, &host.add_request("Host 22")).await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY");

    host.ping(30, 1400);
    poll_now(&panel, &http, id).await;
    let before_restart = month(&client_of(&panel, &http, id, key).await);
    assert!(before_restart.0 >= 30 * 1400, "{before_restart:?}");

    host.script(&["wg-restart"]);
    assert_eq!(host.wg_counters(key), (0, 0), "the restart reset the host's counters");
    // Polled while the counters are zero: the month must not drop.
    poll_now(&panel, &http, id).await;
    assert_eq!(month(&client_of(&panel, &http, id, key).await), before_restart);

    ping_until_answered(&host);
    host.ping(3, 100);
    let host_before = host.wg_counters(key);
    poll_now(&panel, &http, id).await;
    let host_after = host.wg_counters(key);
    let after = month(&client_of(&panel, &http, id, key).await);
    // The month grew by exactly the new counters: nothing dropped, nothing counted twice.
    assert!(
        before_restart.0 + host_before.0 <= after.0 && after.0 <= before_restart.0 + host_after.0,
        "rx: {before_restart:?} + host {host_before:?}..{host_after:?} vs {after:?}"
    );
    assert!(
        before_restart.1 + host_before.1 <= after.1 && after.1 <= before_restart.1 + host_after.1,
        "tx: {before_restart:?} + host {host_before:?}..{host_after:?} vs {after:?}"
    );

    // The server's month moves with its clients'.
    let (_, server) = get_json(&http, &panel.url(&format!("/api/servers/{id}"))).await;
    let server_month = traffic(&server["server"]["month"]);
    assert_eq!(server_month, after, "only one peer has traffic: {server}");
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_restart_between_polls_loses_nothing_and_counts_nothing_twice() {
    let host = TestHost::up(23);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    let id = add(&panel, &http, &host.add_request("Host 23")).await;
    let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY");

    // Lifetime totals carry in the counters found at the first poll, so they
    // track the host's counters exactly as long as the peer is not reset.
    host.ping(5, 1000);
    poll_now(&panel, &http, id).await;
    let first = client_of(&panel, &http, id, key).await;
    let carried = (traffic(&first).0 - month(&first).0, traffic(&first).1 - month(&first).1);

    host.ping(10, 1200);
    let panel = panel.restart().await;
    let http = panel.login().await;
    host.ping(10, 800);
    // The restarted panel polls at start; this poll comes on top.
    let host_before = host.wg_counters(key);
    poll_now(&panel, &http, id).await;
    let host_after = host.wg_counters(key);
    let now = client_of(&panel, &http, id, key).await;
    let total = traffic(&now);
    assert!(host_before.0 <= total.0 && total.0 <= host_after.0, "rx {host_before:?} <= {total:?} <= {host_after:?}");
    assert!(host_before.1 <= total.1 && total.1 <= host_after.1, "tx {host_before:?} <= {total:?} <= {host_after:?}");
    assert_eq!((total.0 - month(&now).0, total.1 - month(&now).1), carried, "the month holds all the rest");

    // Two restarts in a row with no traffic in between change nothing.
    let panel = panel.restart().await;
    let panel = panel.restart().await;
    let http = panel.login().await;
    let host_now = host.wg_counters(key);
    poll_now(&panel, &http, id).await;
    let again = traffic(&client_of(&panel, &http, id, key).await);
    assert!(total.0 <= again.0 && again.0 <= host_now.0.max(total.0), "{total:?} -> {again:?} (host {host_now:?})");
    assert!(total.1 <= again.1 && again.1 <= host_now.1.max(total.1), "{total:?} -> {again:?} (host {host_now:?})");

    // The CLI's usage report reads the same ledger.
    let out = tollgate_cli(&panel, &["usage", "--accumulated", "--json", "--peer", key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["sent"], again.0, "{rows}");
    assert_eq!(rows[0]["received"], again.1, "{rows}");
    panel.stop().await;
}

fn tollgate_cli(panel: &TestPanel, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env("TOLLGATE_SECRETS_KEY_FILE", panel.config.secrets_key_path())
        .args(args)
        .env("DATABASE_URL", &panel.database_url)
        .env("TOLLGATE_SSH_CONNECT_TIMEOUT", "3")
        .env("TOLLGATE_SSH_COMMAND_TIMEOUT", "5")
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run tollgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_finds_peers_added_and_removed_by_hand_and_fix_repairs_both() {
    let host = TestHost::up(24);
    let panel = TestPanel::start_with(manual_polling).await;
    let http = panel.login().await;
    add(&panel, &http, &host.add_request("Host 24")).await;

    let out = tollgate_cli(&panel, &["sync"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Host 24: in sync (2 peers)");

    let iface = host.get("TESTHOST_IFACE").to_owned();
    let private = Command::new("wg").arg("genkey").output().unwrap().stdout;
    let mut pubkey = Command::new("wg")
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(pubkey.stdin.as_mut().unwrap(), &private).unwrap();
    let stranger = String::from_utf8(pubkey.wait_with_output().unwrap().stdout).unwrap().trim().to_owned();
    let stranger_ip = format!("10.77.{}.9/32", host.n);
    host.in_host(&["wg", "set", &iface, "peer", &stranger, "allowed-ips", &stranger_ip]);
    let idle = host.get("TESTHOST_IDLE_PUBLIC_KEY").to_owned();
    host.in_host(&["wg", "set", &iface, "peer", &idle, "remove"]);
    let idle_ips = format!("10.77.{n}.3/32,fd77:{n}::3/128", n = host.n);

    let out = tollgate_cli(&panel, &["sync"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("Host 24: only on the host: {stranger} ({stranger_ip})")), "{text}");
    assert!(text.contains(&format!("Host 24: only in the database: {idle} ({idle_ips})")), "{text}");
    assert!(text.contains("2 difference(s)"), "{text}");

    let out = tollgate_cli(&panel, &["sync", "--fix"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("Host 24: imported {stranger} ({stranger_ip})")), "{text}");
    assert!(
        text.contains(&format!("Host 24: re-added {idle} ({idle_ips}) with `wg set {iface} peer {idle}")),
        "{text}"
    );

    // The host has the removed peer back, with its allowed IPs.
    let dump = host.in_host(&["wg", "show", &iface, "allowed-ips"]);
    let line = dump.lines().find(|l| l.starts_with(&idle)).unwrap_or_else(|| panic!("idle peer missing: {dump}"));
    assert!(line.contains(&format!("10.77.{}.3/32", host.n)) && line.contains(&format!("fd77:{}::3/128", host.n)));

    let out = tollgate_cli(&panel, &["sync"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Host 24: in sync (3 peers)");

    // Errors are clear and exit non-zero.
    let out = tollgate_cli(&panel, &["usage", "--month", "2026-13"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2026-13"), "{}", String::from_utf8_lossy(&out.stderr));
    panel.stop().await;
}
