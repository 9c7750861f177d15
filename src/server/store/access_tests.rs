//! Access changes in the SQLite store: pending until confirmed, listed
//! while pending, and a decision taken on an old reading never overrides a
//! change made since.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::sqlite::SqliteStore;
use super::test_support::{test_event as event, test_server};
use super::{AccessChange, ServerStore, WireguardPoll};
use crate::domain::policy::DisableReason;
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::{ClientId, Protocol};
use crate::server::store::IngestStore;
use chrono::Utc;

async fn store_with_one_peer() -> (tempfile::TempDir, SqliteStore, ClientId, crate::domain::ServerId) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
    let id = store.insert_server(&test_server("wg", Protocol::Wireguard), Utc::now()).await.unwrap();
    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let now = Utc::now();
    let poll = WireguardPoll { protocol: Protocol::Wireguard, at: now, month: "2026-11", dump: &dump, import: false };
    store.apply_wireguard_poll(id, &poll).await.unwrap();
    let client = store.clients(id, "").await.unwrap()[0].id;
    (dir, store, client, id)
}

#[tokio::test]
async fn a_decision_on_an_old_reading_never_overrides_a_newer_change() {
    let (_dir, store, client, _) = store_with_one_peer().await;
    // The admin revokes while a pass still holds the client as active.
    store.set_client_access(client, Some(DisableReason::Manual), &event("revoke")).await.unwrap();
    let stale = AccessChange {
        id: client,
        reason: Some(DisableReason::TrafficLimit),
        expected: Some(None),
        event: event("disable"),
    };
    assert_eq!(store.set_access_many(&[stale]).await.unwrap(), [false]);
    let c = store.client(client, "").await.unwrap().unwrap();
    assert_eq!(c.disabled_reason, Some(DisableReason::Manual), "the admin's revoke stands");
    // A decision on the current reading is made.
    let fresh =
        AccessChange { id: client, reason: None, expected: Some(Some(DisableReason::Manual)), event: event("restore") };
    assert_eq!(store.set_access_many(&[fresh]).await.unwrap(), [true]);
    assert!(!store.client(client, "").await.unwrap().unwrap().disabled);
}

#[tokio::test]
async fn a_pending_change_stays_listed_until_confirmed_even_off_the_host() {
    let (_dir, store, client, server) = store_with_one_peer().await;
    store.set_client_access(client, Some(DisableReason::Manual), &event("revoke")).await.unwrap();
    // The next poll no longer sees the peer; then a restore is queued.
    let empty =
        "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\tcHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZXk=\t51820\toff\n";
    let dump = parse_dump(empty, DumpFlavor::WireGuard).unwrap();
    let poll =
        WireguardPoll { protocol: Protocol::Wireguard, at: Utc::now(), month: "2026-11", dump: &dump, import: false };
    store.apply_wireguard_poll(server, &poll).await.unwrap();
    store.set_client_access(client, None, &event("restore")).await.unwrap();
    let listed = store.clients(server, "").await.unwrap();
    let c = listed.iter().find(|c| c.id == client).expect("a queued restore is listed so the pass applies it");
    assert!(c.pending && !c.disabled && !c.on_host);
    assert!(!store.has_client_config(client).await.unwrap(), "a polled peer has no config");
    store.confirm_access(client, false).await.unwrap();
    assert!(!store.client(client, "").await.unwrap().unwrap().pending);
}

#[tokio::test]
async fn a_deleted_peers_key_added_again_is_a_new_client_and_the_old_one_keeps_its_history() {
    let (dir, store, client, server) = store_with_one_peer().await;
    let before = store.clients(server, "").await.unwrap();
    let old = before.iter().find(|c| c.id == client).unwrap().clone();
    let server_total = store.server(server, Utc::now(), "").await.unwrap().unwrap().total;
    store.delete_client(client, true, &event("delete")).await.unwrap();
    assert!(store.clients(server, "").await.unwrap().iter().all(|c| c.identity != old.identity));

    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    let line = text.lines().find(|l| l.starts_with(&old.identity)).unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    let poll_with = |peer: Option<String>, seconds: i64| {
        let store = store.clone();
        let text = text.replace(line, peer.as_deref().unwrap_or(""));
        async move {
            let dump = parse_dump(&text, DumpFlavor::WireGuard).unwrap();
            let at = Utc::now() + chrono::Duration::seconds(seconds);
            let poll =
                WireguardPoll { protocol: Protocol::Wireguard, at, month: "2026-11", dump: &dump, import: false };
            store.apply_wireguard_poll(server, &poll).await.unwrap();
        }
    };
    // A reading taken before the delete (the peer still there, 50 bytes
    // more): still the deleted peer, its growth only.
    let rx: u64 = fields[5].parse().unwrap();
    let stale = [&fields[..5], &[(rx + 50).to_string().as_str()], &fields[6..]].concat().join("\t");
    poll_with(Some(stale), 10).await;
    assert!(store.clients(server, "").await.unwrap().iter().all(|c| c.identity != old.identity), "not listed");
    let total = store.server(server, Utc::now(), "").await.unwrap().unwrap().total;
    assert_eq!(total.total(), server_total.total() + 50, "not counted again");
    // Then a poll sees it gone, and the admin adds the same key again by
    // hand: its counters start at zero.
    poll_with(None, 20).await;
    let again = [&fields[..5], &["100", "100"], &fields[7..]].concat().join("\t");
    poll_with(Some(again), 30).await;
    let at = Utc::now() + chrono::Duration::seconds(30);

    let after = store.clients(server, "").await.unwrap();
    let new = after.iter().find(|c| c.identity == old.identity).expect("listed again");
    assert_ne!(new.id, client, "a new client");
    assert_eq!(new.total.total(), 200, "only its own bytes");
    let total = store.server(server, at, "").await.unwrap().unwrap().total;
    assert_eq!(total.total(), server_total.total() + 50 + 200, "nothing lost, nothing counted twice");
    let sql = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
    let (identity, deleted): (String, Option<i64>) =
        sqlx::query_as("SELECT identity, deleted_at FROM clients WHERE id = ?")
            .bind(client.get())
            .fetch_one(&sql)
            .await
            .unwrap();
    assert_eq!(identity, format!("{}#deleted-{}", old.identity, client.get()));
    assert!(deleted.is_some(), "kept, with its history");
}

#[tokio::test]
async fn clients_deleted_before_keys_were_freed_give_theirs_up_when_the_store_opens() {
    let (dir, store, client, server) = store_with_one_peer().await;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let key = store.clients(server, "").await.unwrap().iter().find(|c| c.id == client).unwrap().identity.clone();
    // A delete as it was made before: the row hidden, its key kept.
    let sql = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE clients SET deleted_at = 1 WHERE id = ?").bind(client.get()).execute(&sql).await.unwrap();
    store.close().await;
    let store = super::sqlite::SqliteStore::open(&url).await.unwrap();
    let identity: String = sqlx::query_scalar("SELECT identity FROM clients WHERE id = ?")
        .bind(client.get())
        .fetch_one(&sql)
        .await
        .unwrap();
    assert_eq!(identity, format!("{key}#deleted-{}", client.get()));

    // Its live state was renamed with it: once seen gone, the key added
    // again is a new client.
    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    let line = text.lines().find(|l| l.starts_with(&key)).unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    let again = [&fields[..5], &["100", "100"], &fields[7..]].concat().join("\t");
    for (seconds, peer) in [(10, String::new()), (20, again)] {
        let dump = parse_dump(&text.replace(line, &peer), DumpFlavor::WireGuard).unwrap();
        let at = Utc::now() + chrono::Duration::seconds(seconds);
        let poll = WireguardPoll { protocol: Protocol::Wireguard, at, month: "2026-11", dump: &dump, import: false };
        store.apply_wireguard_poll(server, &poll).await.unwrap();
    }
    let clients = store.clients(server, "").await.unwrap();
    let new = clients.iter().find(|c| c.identity == key).expect("listed again");
    assert_eq!((new.id != client, new.total.total()), (true, 200));
}
