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
