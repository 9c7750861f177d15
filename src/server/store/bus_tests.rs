//! The event bus of each store: in-process on SQLite; on PostgreSQL across
//! replicas (`LISTEN`/`NOTIFY`), each event once, and a resync when the
//! link to the others was lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::test_stores;
use super::AnyStore;
use crate::api::live::LiveEvent;
use crate::domain::{ClientId, ServerId};
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

async fn next(events: &mut Receiver<LiveEvent>) -> LiveEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event within 5 s").unwrap()
}

/// Publishes `probe` on `from` until `to` hears it (the other side's
/// `LISTEN` may not be in place yet); returns what `to` heard first.
async fn heard_from(
    from: &dyn crate::server::bus::EventBus,
    to: &mut Receiver<LiveEvent>,
    probe: LiveEvent,
) -> LiveEvent {
    for _ in 0..50 {
        from.publish(probe);
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), to.recv()).await {
            return event;
        }
    }
    panic!("{probe:?} never arrived");
}

/// Drops what arrived of the probes, late ones included.
async fn settle(events: &mut Receiver<LiveEvent>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    while events.try_recv().is_ok() {}
}

#[tokio::test]
async fn an_event_reaches_every_replicas_subscribers_once() {
    for store in test_stores("bus_once").await {
        let cancel = CancellationToken::new();
        let a = store.store.bus("replica-a", cancel.clone());
        let mut here = a.subscribe();
        let event = LiveEvent::ClientChanged { server: ServerId::new(1), client: ClientId::new(2) };
        if store.backend() == "postgres" {
            let other = AnyStore::open(store.url()).await.unwrap();
            let b = other.bus("replica-b", cancel.clone());
            let mut there = b.subscribe();
            let probe = LiveEvent::ServerChanged { server: ServerId::new(9) };
            assert_eq!(heard_from(a.as_ref(), &mut there, probe).await, probe);
            settle(&mut there).await;
            settle(&mut here).await;
            a.publish(event);
            assert_eq!(next(&mut there).await, event, "the other replica hears it");
            assert_eq!(next(&mut here).await, event, "this replica's pages hear it at once");
            b.publish(LiveEvent::UserChanged { user: crate::domain::UserId::new(4) });
            // What `here` gets next is b's event: a's own came back from
            // the database and was skipped, not delivered twice.
            let echoed = next(&mut here).await;
            assert_eq!(echoed, LiveEvent::UserChanged { user: crate::domain::UserId::new(4) });
            other.close().await;
        } else {
            a.publish(event);
            assert_eq!(next(&mut here).await, event);
        }
        cancel.cancel();
        store.finish().await;
    }
}

#[tokio::test]
async fn a_replica_whose_listening_connection_dies_resyncs_its_pages_and_hears_again() {
    let Some(store) = super::test_support::postgres_store("bus_reconnect").await else { return };
    let cancel = CancellationToken::new();
    let a = store.store.bus("replica-a", cancel.clone());
    let other = AnyStore::open(store.url()).await.unwrap();
    let b = other.bus("replica-b", cancel.clone());
    let mut there = b.subscribe();
    let probe = LiveEvent::ServerChanged { server: ServerId::new(1) };
    assert_eq!(heard_from(a.as_ref(), &mut there, probe).await, probe);
    settle(&mut there).await;

    // Every listening connection is cut, as a restarted database or a
    // network failure would.
    let killed = store
        .ints("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%') k", &[])
        .await;
    assert!(killed[0][0].unwrap() >= 2, "both replicas listen: {killed:?}");
    let mut resyncs = 0;
    let after = LiveEvent::ServerChanged { server: ServerId::new(2) };
    for _ in 0..50 {
        a.publish(after);
        match tokio::time::timeout(Duration::from_millis(200), there.recv()).await {
            Ok(Ok(LiveEvent::Resync)) => resyncs += 1,
            Ok(Ok(e)) if e == after => break,
            _ => {}
        }
    }
    // Once when the link dropped, and again once it listens: what the
    // others sent in between never reached this replica.
    assert!(resyncs >= 2, "the pages were told they may have missed events ({resyncs} resyncs)");
    assert_eq!(heard_from(a.as_ref(), &mut there, after).await, after, "and events flow again");
    cancel.cancel();
    other.close().await;
    store.finish().await;
}
