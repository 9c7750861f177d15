//! The event bus: how a change committed on one replica reaches the open
//! pages of every replica. One interface, one implementation per backend:
//! in-process on SQLite (one panel), `LISTEN`/`NOTIFY` on PostgreSQL
//! (`store::postgres::notify`), which also hands each event to this
//! replica's own subscribers at once.
//!
//! Publishing never blocks and never fails the change that caused it: an
//! event that cannot be delivered becomes a [`LiveEvent::Resync`] for the
//! pages that may have missed it, which then refetch once.

use crate::api::live::LiveEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it is told to resync.
pub const BACKLOG: usize = 1024;

/// Publishes live events to every subscriber of every replica.
pub trait EventBus: Send + Sync {
    /// Hands `event` on; returns at once.
    fn publish(&self, event: LiveEvent);

    /// A stream of every event published from now on, on any replica. A
    /// receiver that falls more than [`BACKLOG`] behind gets `Lagged`,
    /// which a page takes as a resync.
    fn subscribe(&self) -> broadcast::Receiver<LiveEvent>;

    /// How many events this replica has handed to its subscribers (its
    /// own, the other replicas', resyncs): what was read from the store at
    /// one generation is current until it changes ([`crate::server::shared`]).
    fn generation(&self) -> u64;
}

/// The bus of one process: a broadcast channel.
pub struct LocalBus {
    sender: broadcast::Sender<LiveEvent>,
    published: AtomicU64,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self { sender: broadcast::Sender::new(BACKLOG), published: AtomicU64::new(0) }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: LiveEvent) {
        // Counted before it is sent: a page that refetches on it reads
        // the new generation.
        self.published.fetch_add(1, Ordering::SeqCst);
        // No subscriber (no page open) is not an error: the event is gone.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    fn generation(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServerId;

    #[tokio::test]
    async fn every_subscriber_gets_every_event_published_after_it_subscribed() {
        let bus = LocalBus::default();
        bus.publish(LiveEvent::Resync); // before anyone listens: dropped
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        let event = LiveEvent::ServerChanged { server: ServerId::new(7) };
        bus.publish(event);
        assert_eq!(a.recv().await.unwrap(), event);
        assert_eq!(b.recv().await.unwrap(), event);
        assert!(a.try_recv().is_err(), "nothing else was published");
        assert_eq!(bus.generation(), 2, "both events count, heard or not");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_so() {
        let bus = LocalBus::default();
        let mut slow = bus.subscribe();
        for n in 0..(BACKLOG as i64 + 5) {
            bus.publish(LiveEvent::ServerChanged { server: ServerId::new(n + 1) });
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(5))));
    }
}
