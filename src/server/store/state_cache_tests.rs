//! A big server's state kept in memory between polls, on both backends:
//! the figures are those of a state read back from the row, and a write
//! by another process (a replica after a takeover, the CLI) is noticed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::state_cache::MIN_CLIENTS;
use super::test_support::{apply_dump, test_server, test_stores};
use super::AnyStore;
use crate::domain::keys::PublicKey;
use crate::domain::Protocol;
use chrono::{DateTime, TimeDelta, Utc};

/// A dump of `n` peers, each having received and sent `bytes`.
fn dump(n: usize, bytes: u64, at: DateTime<Utc>) -> String {
    let own = PublicKey::from_bytes([1; 32]).to_base64();
    let mut text = format!("{own}\t{own}\t51820\toff\n");
    for i in 0..n {
        let mut key = [7u8; 32];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = PublicKey::from_bytes(key).to_base64();
        let (a, b) = (i / 250, i % 250 + 1);
        let seen = at.timestamp() - 5;
        text.push_str(&format!(
            "{key}\t(none)\t198.18.1.1:{}\t10.9.{a}.{b}/32\t{seen}\t{bytes}\t{bytes}\toff\n",
            20000 + i
        ));
    }
    text
}

async fn poll(store: &AnyStore, server: crate::domain::ServerId, bytes: u64, at: DateTime<Utc>) {
    apply_dump(store.as_store(), server, &dump(MIN_CLIENTS, bytes, at), at, true).await;
}

fn hits(store: &AnyStore) -> u64 {
    match store {
        AnyStore::Sqlite(s) => s.states.hits(),
        AnyStore::Postgres(s) => s.states.hits(),
    }
}

#[tokio::test]
async fn a_state_row_rewritten_without_a_new_stamp_loses_its_stamp() {
    for store in test_stores("state_stamp_guard").await {
        let b = store.backend();
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let server = store.insert_server(&test_server("big", Protocol::Wireguard), t0).await.unwrap();
        poll(&store.store, server, 1000, t0).await;
        let stamp = |rows: Vec<Vec<Option<i64>>>| rows[0][0].unwrap();
        let sql = "SELECT stamp FROM server_state WHERE server_id = $1";
        assert_ne!(stamp(store.ints(sql, &[server.get()]).await), 0, "{b}");
        // As a panel from before stamps writes it.
        store
            .exec(
                "UPDATE server_state SET data = data, clients_version = clients_version WHERE server_id = $1",
                &[server.get()],
            )
            .await;
        assert_eq!(stamp(store.ints(sql, &[server.get()]).await), 0, "{b}: nothing kept can match it now");
        // The next poll reads the row (no hit) and stamps it again.
        poll(&store.store, server, 1100, t0 + TimeDelta::seconds(30)).await;
        assert_eq!(hits(&store.store), 0, "{b}");
        assert_ne!(stamp(store.ints(sql, &[server.get()]).await), 0, "{b}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_kept_state_counts_as_the_stored_one_and_another_processs_write_is_noticed() {
    for store in test_stores("state_cache").await {
        let b = store.backend();
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let server = store.insert_server(&test_server("big", Protocol::Wireguard), t0).await.unwrap();
        // First poll: counters carried in; then this process polls again,
        // from the state it kept.
        poll(&store.store, server, 1000, at(0)).await;
        poll(&store.store, server, 1100, at(30)).await;
        assert_eq!(hits(&store.store), 1, "{b}: the second poll took the state it kept");
        // Another process polls in between (its own memory, its own stamp).
        let other = AnyStore::open(store.url()).await.unwrap();
        poll(&other, server, 1300, at(60)).await;
        other.close().await;
        // This process must not count from what it kept (1,100): the row
        // moved on to 1,300.
        poll(&store.store, server, 1600, at(90)).await;
        let clients = store.clients(server, "").await.unwrap();
        assert_eq!(clients.len(), MIN_CLIENTS, "{b}");
        assert!(clients.iter().all(|c| c.total.rx == 1600 && c.total.tx == 1600), "{b}: every byte once");
        let month = crate::domain::accounting::month_key(t0, &chrono_tz::UTC);
        let usage = store.clients(server, &month).await.unwrap();
        assert!(usage.iter().all(|c| c.month.rx == 600), "{b}: the month counts what moved after the first poll");
        // The server's ledger adds each poll's new bytes: counted from a
        // stale state, the last poll would add 500 a client, not 300.
        let record = store.server(server, at(90), &month).await.unwrap().unwrap();
        assert_eq!(record.month.rx, 600 * MIN_CLIENTS as u64, "{b}");
        store.finish().await;
    }
}
