//! Access changes in the store (SQLite, and PostgreSQL when configured):
//! pending until confirmed, listed while pending, and a decision taken on an
//! old reading never overrides a change made since.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::{test_event as event, test_server, test_stores};
use super::{AccessChange, Store, WireguardPoll};
use crate::domain::policy::DisableReason;
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::{ClientId, Protocol, ServerId};
use chrono::Utc;

/// A WireGuard server on `store` whose first poll found the fixture's
/// peers; the first client listed.
async fn with_one_peer(store: &dyn Store) -> (ClientId, ServerId) {
    let id = store.insert_server(&test_server("wg", Protocol::Wireguard), Utc::now()).await.unwrap();
    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let now = Utc::now();
    let poll = WireguardPoll {
        protocol: Protocol::Wireguard,
        at: now,
        month: "2026-11",
        dump: &dump,
        import: false,
        fence: None,
    };
    store.apply_wireguard_poll(id, &poll).await.unwrap();
    let client = store.clients(id, "").await.unwrap()[0].id;
    (client, id)
}

/// Polls the fixture with `line` replaced by `peer` (none: left out),
/// `seconds` from now.
async fn poll_with(store: &dyn Store, server: ServerId, line: &str, peer: Option<String>, seconds: i64) {
    let text =
        include_str!("../../domain/fixtures/wg_show_server_dump.txt").replace(line, peer.as_deref().unwrap_or(""));
    let dump = parse_dump(&text, DumpFlavor::WireGuard).unwrap();
    let at = Utc::now() + chrono::Duration::seconds(seconds);
    let poll =
        WireguardPoll { protocol: Protocol::Wireguard, at, month: "2026-11", dump: &dump, import: false, fence: None };
    store.apply_wireguard_poll(server, &poll).await.unwrap();
}

#[tokio::test]
async fn a_decision_on_an_old_reading_never_overrides_a_newer_change() {
    for store in test_stores("access_old_reading").await {
        let backend = store.backend();
        let (client, _) = with_one_peer(&*store).await;
        // The admin revokes while a pass still holds the client as active.
        store.set_client_access(client, Some(DisableReason::Manual), &event("revoke")).await.unwrap();
        let stale = AccessChange {
            id: client,
            reason: Some(DisableReason::TrafficLimit),
            expected: Some(None),
            event: event("disable"),
        };
        assert_eq!(store.set_access_many(&[stale]).await.unwrap(), [false], "{backend}");
        let c = store.client(client, "").await.unwrap().unwrap();
        assert_eq!(c.disabled_reason, Some(DisableReason::Manual), "{backend}: the admin's revoke stands");
        // A decision on the current reading is made.
        let fresh = AccessChange {
            id: client,
            reason: None,
            expected: Some(Some(DisableReason::Manual)),
            event: event("restore"),
        };
        assert_eq!(store.set_access_many(&[fresh]).await.unwrap(), [true], "{backend}");
        assert!(!store.client(client, "").await.unwrap().unwrap().disabled, "{backend}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_pending_change_stays_listed_until_confirmed_even_off_the_host() {
    for store in test_stores("access_pending").await {
        let backend = store.backend();
        let (client, server) = with_one_peer(&*store).await;
        store.set_client_access(client, Some(DisableReason::Manual), &event("revoke")).await.unwrap();
        // The next poll no longer sees the peer; then a restore is queued.
        let empty =
            "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\tcHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZXk=\t51820\toff\n";
        let dump = parse_dump(empty, DumpFlavor::WireGuard).unwrap();
        let poll = WireguardPoll {
            protocol: Protocol::Wireguard,
            at: Utc::now(),
            month: "2026-11",
            dump: &dump,
            import: false,
            fence: None,
        };
        store.apply_wireguard_poll(server, &poll).await.unwrap();
        store.set_client_access(client, None, &event("restore")).await.unwrap();
        let listed = store.clients(server, "").await.unwrap();
        let c = listed
            .iter()
            .find(|c| c.id == client)
            .unwrap_or_else(|| panic!("{backend}: a queued restore is listed so the pass applies it"));
        assert!(c.pending && !c.disabled && !c.on_host, "{backend}");
        assert!(!store.has_client_config(client).await.unwrap(), "{backend}: a polled peer has no config");
        store.confirm_access(client, false).await.unwrap();
        assert!(!store.client(client, "").await.unwrap().unwrap().pending, "{backend}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_deleted_peers_key_added_again_is_a_new_client_and_the_old_one_keeps_its_history() {
    for store in test_stores("access_deleted_key").await {
        let backend = store.backend();
        let (client, server) = with_one_peer(&*store).await;
        let before = store.clients(server, "").await.unwrap();
        let old = before.iter().find(|c| c.id == client).unwrap().clone();
        let server_total = store.server(server, Utc::now(), "").await.unwrap().unwrap().total;
        store.delete_client(client, true, &event("delete")).await.unwrap();
        assert!(store.clients(server, "").await.unwrap().iter().all(|c| c.identity != old.identity), "{backend}");

        let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
        let line = text.lines().find(|l| l.starts_with(&old.identity)).unwrap();
        let fields: Vec<&str> = line.split('\t').collect();
        // A reading taken before the delete (the peer still there, 50 bytes
        // more): still the deleted peer, its growth only.
        let rx: u64 = fields[5].parse().unwrap();
        let stale = [&fields[..5], &[(rx + 50).to_string().as_str()], &fields[6..]].concat().join("\t");
        poll_with(&*store, server, line, Some(stale), 10).await;
        let listed = store.clients(server, "").await.unwrap();
        assert!(listed.iter().all(|c| c.identity != old.identity), "{backend}: not listed");
        let total = store.server(server, Utc::now(), "").await.unwrap().unwrap().total;
        assert_eq!(total.total(), server_total.total() + 50, "{backend}: not counted again");
        // Then a poll sees it gone, and the admin adds the same key again by
        // hand: its counters start at zero.
        poll_with(&*store, server, line, None, 20).await;
        let again = [&fields[..5], &["100", "100"], &fields[7..]].concat().join("\t");
        poll_with(&*store, server, line, Some(again), 30).await;
        let at = Utc::now() + chrono::Duration::seconds(30);

        let after = store.clients(server, "").await.unwrap();
        let new =
            after.iter().find(|c| c.identity == old.identity).unwrap_or_else(|| panic!("{backend}: listed again"));
        assert_ne!(new.id, client, "{backend}: a new client");
        assert_eq!(new.total.total(), 200, "{backend}: only its own bytes");
        let total = store.server(server, at, "").await.unwrap().unwrap().total;
        assert_eq!(total.total(), server_total.total() + 50 + 200, "{backend}: nothing lost, nothing counted twice");
        let identity = store.texts("SELECT identity FROM clients WHERE id = $1", &[client.get()]).await;
        let deleted = store.ints("SELECT deleted_at FROM clients WHERE id = $1", &[client.get()]).await;
        let marked = format!("{}#deleted-{}", old.identity, client.get());
        assert_eq!(identity[0][0].clone().unwrap(), marked, "{backend}");
        assert!(deleted[0][0].is_some(), "{backend}: kept, with its history");
        store.finish().await;
    }
}

#[tokio::test]
async fn clients_deleted_before_keys_were_freed_give_theirs_up_when_the_store_opens() {
    for mut store in test_stores("access_old_delete").await {
        let backend = store.backend();
        let (client, server) = with_one_peer(&*store).await;
        let key = store.clients(server, "").await.unwrap().iter().find(|c| c.id == client).unwrap().identity.clone();
        // A delete as it was made before: the row hidden, its key kept.
        store.exec("UPDATE clients SET deleted_at = 1 WHERE id = $1", &[client.get()]).await;
        store.reopen().await;
        let identity = store.texts("SELECT identity FROM clients WHERE id = $1", &[client.get()]).await;
        assert_eq!(identity[0][0].clone().unwrap(), format!("{key}#deleted-{}", client.get()), "{backend}");

        // Its live state was renamed with it: once seen gone, the key added
        // again is a new client.
        let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
        let line = text.lines().find(|l| l.starts_with(&key)).unwrap();
        let fields: Vec<&str> = line.split('\t').collect();
        let again = [&fields[..5], &["100", "100"], &fields[7..]].concat().join("\t");
        for (seconds, peer) in [(10, None), (20, Some(again))] {
            poll_with(&*store, server, line, peer, seconds).await;
        }
        let clients = store.clients(server, "").await.unwrap();
        let new = clients.iter().find(|c| c.identity == key).unwrap_or_else(|| panic!("{backend}: listed again"));
        assert_eq!((new.id != client, new.total.total()), (true, 200), "{backend}");
        store.finish().await;
    }
}
