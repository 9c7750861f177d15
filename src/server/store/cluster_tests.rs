//! Leases on both backends: replicas share the servers fairly, a lapsed
//! lease is taken under a higher fence, a poll written under the old fence
//! is refused, and a job runs on one replica at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::{test_server, test_stores};
use super::{Fence, LeaseOwner, Replica, StoreError, WireguardPoll};
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::Protocol;
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(30);

fn replica(id: &str) -> Replica {
    Replica { id: id.into(), name: format!("test:{id}"), address: None }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn poll(at: DateTime<Utc>, fence: Option<&Fence>) -> (crate::domain::wg_dump::WgDump, DateTime<Utc>, Option<Fence>) {
    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    (parse_dump(text, DumpFlavor::WireGuard).unwrap(), at, fence.cloned())
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_under_a_higher_fence_and_the_old_owners_poll_is_refused() {
    for store in test_stores("cluster_fence").await {
        let b = store.backend();
        let mut servers = Vec::new();
        for name in ["one", "two", "three"] {
            servers.push(store.insert_server(&test_server(name, Protocol::Wireguard), Utc::now()).await.unwrap());
        }
        let (a, c) = (replica("a"), Replica { address: Some("http://10.0.0.3:3000".into()), ..replica("c") });
        assert_eq!(store.lease_owner(servers[0], at(0)).await.unwrap(), None, "{b}: no lease yet");
        let first = store.lease_round(&a, at(0), TTL).await.unwrap();
        assert_eq!(
            first.held.iter().map(|(s, f)| (*s, *f)).collect::<Vec<_>>(),
            servers.iter().map(|s| (*s, 1)).collect::<Vec<_>>(),
            "{b}"
        );
        // c arrives: nothing free yet; a then gives up its excess, c takes it.
        assert!(store.lease_round(&c, at(1), TTL).await.unwrap().held.is_empty(), "{b}");
        let a_round = store.lease_round(&a, at(2), TTL).await.unwrap();
        assert_eq!((a_round.held.len(), a_round.released.clone()), (2, vec![servers[2]]), "{b}");
        let c_round = store.lease_round(&c, at(3), TTL).await.unwrap();
        assert_eq!(c_round.held, [(servers[2], 2)], "{b}");
        // Who to ask to change a host: the lease's owner, where it is reached.
        let owner = |replica: &str, address: Option<&str>| {
            Some(LeaseOwner { replica: replica.into(), address: address.map(Into::into) })
        };
        assert_eq!(store.lease_owner(servers[2], at(4)).await.unwrap(), owner("c", Some("http://10.0.0.3:3000")));
        assert_eq!(store.lease_owner(servers[0], at(4)).await.unwrap(), owner("a", None), "{b}");
        assert_eq!(store.lease_owner(servers[0], at(33)).await.unwrap(), None, "{b}: a's lease lapsed");

        // a stalls past its lease (c renews its own); c takes a's servers
        // under new fences.
        assert_eq!(store.lease_round(&c, at(20), TTL).await.unwrap().held, [(servers[2], 2)], "{b}");
        let stale = Fence { owner: "a".into(), number: 1 };
        let c_round = store.lease_round(&c, at(40), TTL).await.unwrap();
        assert_eq!(c_round.held, [(servers[0], 2), (servers[1], 2), (servers[2], 2)], "{b}");
        let (dump, when, fence) = poll(at(41), Some(&stale));
        let p = WireguardPoll {
            protocol: Protocol::Wireguard,
            at: when,
            month: "2026-09",
            dump: &dump,
            import: false,
            fence: fence.as_ref(),
        };
        let refused = store.apply_wireguard_poll(servers[0], &p).await.unwrap_err();
        assert!(matches!(refused, StoreError::LeaseLost(_)), "{b}: {refused}");
        assert!(store.clients(servers[0], "").await.unwrap().is_empty(), "{b}: nothing of it was stored");
        // The new owner's poll is applied.
        let current = Fence { owner: "c".into(), number: 2 };
        let p = WireguardPoll { fence: Some(&current), ..p };
        assert!(store.apply_wireguard_poll(servers[0], &p).await.unwrap().applied, "{b}");

        // a leaves; its heartbeat row goes. c leaves; its leases lapse at once.
        store.leave("a", at(42)).await.unwrap();
        let ids: Vec<String> = store.cluster().await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["c"], "{b}");
        store.leave("c", at(43)).await.unwrap();
        let a_back = store.lease_round(&a, at(44), TTL).await.unwrap();
        assert_eq!(a_back.held.iter().map(|(_, f)| *f).collect::<Vec<_>>(), [3, 3, 3], "{b}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_job_runs_on_one_replica_until_its_claim_lapses() {
    for store in test_stores("cluster_job").await {
        let b = store.backend();
        assert!(store.claim_job("maintenance", "a", at(0), TTL).await.unwrap(), "{b}");
        assert!(!store.claim_job("maintenance", "c", at(10), TTL).await.unwrap(), "{b}: a holds it");
        assert!(store.claim_job("maintenance", "a", at(20), TTL).await.unwrap(), "{b}: a renews it");
        assert!(!store.claim_job("maintenance", "c", at(49), TTL).await.unwrap(), "{b}: renewed until 50");
        assert!(store.claim_job("maintenance", "c", at(50), TTL).await.unwrap(), "{b}: lapsed, c takes it");
        assert!(!store.claim_job("maintenance", "a", at(51), TTL).await.unwrap(), "{b}");
        store.leave("c", at(52)).await.unwrap();
        assert!(store.claim_job("maintenance", "a", at(53), TTL).await.unwrap(), "{b}: c gave it up leaving");
        store.finish().await;
    }
}
