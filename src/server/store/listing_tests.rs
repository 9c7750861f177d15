//! A page of a server's clients, on both backends: the same clients, with
//! the same live figures, as the full list, filtered, sorted and cut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::{apply_dump, test_server, test_stores};
use super::ClientRecord;
use crate::domain::keys::PublicKey;
use crate::domain::listing::ClientQuery;
use crate::domain::Protocol;
use chrono::{DateTime, TimeDelta, Utc};

/// Peer `i` of a test server: its key, address and bytes.
fn peer(i: u64, scale: u64, at: DateTime<Utc>) -> String {
    let mut key = [9u8; 32];
    key[..8].copy_from_slice(&i.to_le_bytes());
    let key = PublicKey::from_bytes(key).to_base64();
    // Peers 0–2 handshook just now, the others an hour and more ago.
    let seen = if i < 3 { at.timestamp() - 5 } else { at.timestamp() - 4000 };
    let rx = (i * 7 % 10) * scale;
    let tx = (10 - i) * scale;
    format!("{key}\t(none)\t198.18.2.1:{}\t10.8.0.{}/32\t{seen}\t{rx}\t{tx}\toff\n", 30000 + i, 2 + i * 7)
}

fn dump(peers: std::ops::Range<u64>, scale: u64, at: DateTime<Utc>) -> String {
    let own = PublicKey::from_bytes([1; 32]).to_base64();
    let mut text = format!("{own}\t{own}\t51820\toff\n");
    for i in peers {
        text.push_str(&peer(i, scale, at));
    }
    text
}

fn query(text: &str) -> ClientQuery {
    ClientQuery::parse(text.split('&').filter_map(|p| p.split_once('='))).unwrap()
}

fn ids(records: &[ClientRecord]) -> Vec<i64> {
    records.iter().map(|c| c.id.get()).collect()
}

#[tokio::test]
async fn a_page_of_clients_holds_the_full_lists_clients_with_their_live_figures() {
    for store in test_stores("client_page").await {
        let b = store.backend();
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let month = crate::domain::accounting::month_key(t0, &chrono_tz::UTC);
        let server = store.insert_server(&test_server("paged", Protocol::Wireguard), t0).await.unwrap();
        // Eight peers, then a poll in which they all moved bytes and peer 7 is gone.
        for (n, at, scale, import) in [(8, t0, 1000, true), (7, t0 + TimeDelta::seconds(30), 3000, false)] {
            apply_dump(&*store, server, &dump(0..n, scale, at), at, import).await;
        }
        let now = t0 + TimeDelta::seconds(40);
        let all = store.clients(server, &month).await.unwrap();
        assert_eq!(all.len(), 8, "{b}: imported peers stay listed when gone");
        let page = |text: &str| {
            let q = query(text);
            let store = &store;
            let month = &month;
            async move { store.client_page(server, Protocol::Wireguard, month, &q, now).await.unwrap() }
        };

        let first = page("").await;
        assert_eq!(ids(&first.clients), ids(&all), "{b}: by name, as the full list");
        assert_eq!(format!("{:?}", first.clients), format!("{all:?}"), "{b}: the same records, live figures included");
        assert_eq!((first.selection.total, first.selection.matched, first.selection.online), (8, 8, 3), "{b}");

        let by_month = page("sort=month_down&per_page=3&page=2").await;
        let mut expected = all.clone();
        expected.sort_by_key(|c| std::cmp::Reverse(c.month.tx));
        assert_eq!(ids(&by_month.clients), ids(&expected[3..6]), "{b}: month ↓, largest first, second page");
        assert!(by_month.clients.iter().all(|c| c.month.tx > 0), "{b}: this month's bytes counted");
        assert_eq!((by_month.selection.page, by_month.selection.pages), (2, 3), "{b}");

        let searched = page("q=10.8.0.1").await;
        let wanted: Vec<i64> = all
            .iter()
            .filter(|c| c.virtual_ip.as_deref().is_some_and(|ip| ip.contains("10.8.0.1")))
            .map(|c| c.id.get())
            .collect();
        assert_eq!(ids(&searched.clients), wanted, "{b}: 10.8.0.16");
        assert!(!wanted.is_empty(), "{b}");
        assert_eq!(searched.selection.total, 8, "{b}");

        let online = page("status=online&sort=ip").await;
        assert_eq!(online.clients.len(), 3, "{b}");
        let octet = |c: &ClientRecord| -> u8 {
            c.virtual_ip.as_deref().unwrap().split('/').next().unwrap().rsplit('.').next().unwrap().parse().unwrap()
        };
        let octets: Vec<u8> = online.clients.iter().map(octet).collect();
        assert_eq!(octets, vec![2, 9, 16], "{b}: by address, as numbers");

        // The dashboard's count of open sessions and their mean start.
        let filter = super::SessionFilter { server: Some(server), open: true, limit: 100, ..Default::default() };
        let open = store.sessions(&filter).await.unwrap();
        assert!(!open.is_empty(), "{b}");
        let started: i64 = open.iter().map(|s| s.connected_at.timestamp()).sum();
        assert_eq!(store.open_sessions(Some(server)).await.unwrap(), (open.len() as u64, started), "{b}");
        assert_eq!(store.open_sessions(None).await.unwrap(), (open.len() as u64, started), "{b}: the only server");
        let other = crate::domain::ServerId::new(server.get() + 1);
        assert_eq!(store.open_sessions(Some(other)).await.unwrap(), (0, 0), "{b}");

        let past = page("page=40").await;
        assert_eq!((past.selection.page, past.clients.len()), (1, 8), "{b}: past the end is the last page");

        // A user's last seen: the latest session of its devices, deleted ones aside.
        let event = super::test_support::test_event("test");
        let fields = super::UserFields { name: "Dana".into(), email: None, max_connections: 0 };
        let dana = store.create_user(&fields, &event).await.unwrap();
        let device = all.iter().find(|c| open.iter().any(|s| s.client_id == c.id)).unwrap();
        let update = super::ClientUpdate { user_id: Some(dana), ..super::ClientUpdate::of(device) };
        store.update_client(device.id, &update, &event).await.unwrap();
        let session = open.iter().find(|s| s.client_id == device.id).unwrap();
        let user = |users: Vec<super::UserRecord>| users.into_iter().find(|u| u.id == dana).unwrap();
        // An open WireGuard session's row holds its start until it closes
        // (which it does once its handshake is older than the online
        // window, when the user is no longer online): the live figure is
        // at least as new.
        let seen = user(store.users().await.unwrap()).last_seen.unwrap();
        assert!(session.connected_at <= seen && seen <= session.last_seen_at, "{b}: {seen} in {session:?}");
        store.delete_client(device.id, true, &event).await.unwrap();
        assert_eq!(user(store.users().await.unwrap()).last_seen, None, "{b}: a deleted device no longer counts");

        store.finish().await;
    }
}
