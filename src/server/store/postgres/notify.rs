//! The event bus on PostgreSQL: events are sent with `NOTIFY` on one
//! channel and every replica `LISTEN`s to it. A replica hands its own
//! events to its own subscribers at once and skips them when they come
//! back from the database.
//!
//! Events wait in a bounded queue for a sender task, which sends them in
//! batches (one `pg_notify` per batch, well under PostgreSQL's 8,000-byte
//! payload limit). If the queue overflows, or the listening connection is
//! lost and re-established, the pages that may have missed something are
//! told to resync. Every replica also sends an empty notification every
//! [`HEARTBEAT`]: a listener that hears nothing for [`SILENCE`] (its own
//! heartbeats come back too) takes its connection for dead — a half-open
//! TCP link after a failover would otherwise go unnoticed — and
//! reconnects.

use super::PostgresStore;
use crate::api::live::LiveEvent;
use crate::server::bus::{EventBus, LocalBus};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The channel every replica listens on.
pub const CHANNEL: &str = "tollgate_live";

/// Events in one notification: at most ~120 bytes each as JSON, so under
/// 4 KB, well below PostgreSQL's 8,000-byte payload limit.
const BATCH: usize = 32;

/// Each replica sends a notification at least this often (an empty one if
/// nothing happened), which also carries a pending resync.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// A listener that hears nothing this long (not even its own heartbeat)
/// takes its connection for dead, reconnects and resyncs.
const SILENCE: Duration = Duration::from_secs(60);

/// Connecting and `LISTEN`, at most.
const CONNECT: Duration = Duration::from_secs(10);

/// Events waiting to be sent before the queue counts as overflowing.
const QUEUE: usize = 4096;

/// What one notification carries.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The replica that sent it.
    from: String,
    events: Vec<LiveEvent>,
}

pub struct PgBus {
    local: LocalBus,
    queue: mpsc::Sender<LiveEvent>,
    /// Set when an event could not be queued: the others get a resync.
    overflowed: Arc<AtomicBool>,
}

impl EventBus for PgBus {
    fn publish(&self, event: LiveEvent) {
        self.local.publish(event);
        if self.queue.try_send(event).is_err() && !self.overflowed.swap(true, Ordering::Relaxed) {
            tracing::warn!("live events queue full; the other replicas' pages will resync");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.local.subscribe()
    }

    fn generation(&self) -> u64 {
        self.local.generation()
    }
}

impl PostgresStore {
    /// Starts this replica's bus (`me` is its id): a sender and a listener
    /// task, on a connection of their own each, until `cancel`.
    pub fn bus(&self, me: &str, cancel: CancellationToken) -> Arc<PgBus> {
        let options = (*self.pool.connect_options()).clone();
        let own_pool = || {
            PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options.clone())
        };
        let (queue, outbox) = mpsc::channel(QUEUE);
        let bus = Arc::new(PgBus { local: LocalBus::default(), queue, overflowed: Arc::new(AtomicBool::new(false)) });
        let sender = Sender { pool: own_pool(), me: me.to_owned(), overflowed: bus.overflowed.clone() };
        tokio::spawn(sender.run(outbox, cancel.clone()).instrument(tracing::info_span!("live_sender")));
        let listener = Listener { pool: own_pool(), me: me.to_owned(), bus: bus.clone() };
        tokio::spawn(listener.run(cancel).instrument(tracing::info_span!("live_listener")));
        bus
    }
}

struct Sender {
    pool: PgPool,
    me: String,
    overflowed: Arc<AtomicBool>,
}

impl Sender {
    async fn run(self, mut outbox: mpsc::Receiver<LiveEvent>, cancel: CancellationToken) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            let mut events = Vec::with_capacity(BATCH);
            tokio::select! {
                _ = cancel.cancelled() => break,
                event = outbox.recv() => match event { Some(e) => events.push(e), None => break },
                _ = heartbeat.tick() => {}
            };
            while events.len() < BATCH {
                match outbox.try_recv() {
                    Ok(e) => events.push(e),
                    Err(_) => break,
                }
            }
            if self.overflowed.swap(false, Ordering::Relaxed) {
                events.push(LiveEvent::Resync);
            }
            let sent = tokio::select! {
                _ = cancel.cancelled() => break,
                sent = tokio::time::timeout(Duration::from_secs(5), self.send(events)) => sent,
            };
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.lost(&e.to_string()),
                Err(_) => self.lost("timed out"),
            }
        }
        self.pool.close().await;
    }

    async fn send(&self, events: Vec<LiveEvent>) -> Result<(), sqlx::Error> {
        let payload = serde_json::to_string(&Payload { from: self.me.clone(), events })
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    /// A batch was not sent: the others resync with the next one.
    fn lost(&self, cause: &str) {
        tracing::warn!(error = cause, "could not send live events to the other replicas");
        self.overflowed.store(true, Ordering::Relaxed);
    }
}

struct Listener {
    pool: PgPool,
    me: String,
    bus: Arc<PgBus>,
}

impl Listener {
    async fn run(self, cancel: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        // Whether notices may have been sent while nothing listened.
        let mut missed = false;
        loop {
            let listened = tokio::select! {
                _ = cancel.cancelled() => break,
                listened = self.listen() => listened,
            };
            match listened {
                Ok(mut listener) => {
                    // What the others sent while nothing listened never
                    // comes: now that it would, the pages refetch once more.
                    if missed {
                        self.bus.local.publish(LiveEvent::Resync);
                        missed = false;
                    }
                    let listening = tokio::time::Instant::now();
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = self.relay(&mut listener) => {}
                    }
                    // A link that drops at once does not count as back.
                    if listening.elapsed() >= SILENCE {
                        delay = Duration::from_millis(200);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not listen for the other replicas' live events"),
            }
            // Whatever is sent from now on is lost here: this replica's
            // pages resync, once while the link is down.
            if !missed {
                self.bus.local.publish(LiveEvent::Resync);
                missed = true;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        self.pool.close().await;
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let connect = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(CHANNEL).await?;
            Ok(listener)
        };
        tokio::time::timeout(CONNECT, connect).await.map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// Hands the other replicas' events to the subscribers here until the
    /// connection is lost.
    async fn relay(&self, listener: &mut PgListener) {
        loop {
            let notification = match tokio::time::timeout(SILENCE, listener.try_recv()).await {
                Err(_) => {
                    tracing::warn!("no live events, not even a heartbeat, for a minute; reconnecting");
                    return;
                }
                Ok(received) => received,
            };
            let notification = match notification {
                Ok(Some(n)) => n,
                Ok(None) => {
                    tracing::warn!("lost the connection that listens for live events; reconnecting");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for live events failed; reconnecting");
                    return;
                }
            };
            match serde_json::from_str::<Payload>(notification.payload()) {
                Ok(payload) if payload.from == self.me => {}
                Ok(payload) => payload.events.into_iter().for_each(|e| self.bus.local.publish(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "a live event that cannot be read; resync");
                    self.bus.local.publish(LiveEvent::Resync);
                }
            }
        }
    }
}
