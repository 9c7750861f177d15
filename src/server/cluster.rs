//! This replica's share of the fleet: a lease round every third of the
//! lease time (see [`crate::domain::cluster`]) starts pollers for the
//! servers it holds, with their fences, and stops those it no longer
//! holds. With one replica it simply holds every server.

use crate::domain::accounting::month_key;
use crate::domain::ServerId;
use crate::server::poller::{target_of, FirstPoll, Supervisor};
use crate::server::store::{Fence, LeaseRound, Replica, Store};
use chrono::Utc;
use chrono_tz::Tz;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// This process as a replica: a new random id at every start.
pub fn this_replica() -> Replica {
    let id: u128 = rand::thread_rng().gen();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Replica { id: format!("{id:032x}"), name: format!("{}:{}", host.trim(), std::process::id()) }
}

/// Runs lease rounds until `cancel`, then gives the leases up.
pub async fn run(
    store: Arc<dyn Store>,
    poller: Arc<Supervisor>,
    me: Replica,
    ttl: Duration,
    tz: Tz,
    cancel: CancellationToken,
) {
    let mut last_round = tokio::time::Instant::now();
    let mut first = true;
    loop {
        match store.lease_round(&me, Utc::now(), ttl).await {
            Ok(round) => {
                apply(store.as_ref(), &poller, &me, &round, tz, first).await;
                last_round = tokio::time::Instant::now();
                first = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                // Past the lease time another replica may own these
                // servers: stop touching their hosts.
                if last_round.elapsed() >= ttl {
                    for id in poller.running().into_keys() {
                        poller.stop(id);
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
    }
    if let Err(e) = store.leave(&me.id, Utc::now()).await {
        tracing::warn!(error = %e, "could not give up the leases; they lapse on their own");
    }
}

/// Brings the pollers here in line with the round.
async fn apply(store: &dyn Store, poller: &Supervisor, me: &Replica, round: &LeaseRound, tz: Tz, first: bool) {
    let running = poller.running();
    let fence_of = |fence: i64| Fence { owner: me.id.clone(), number: fence };
    for id in running.keys() {
        if !round.held.iter().any(|(s, _)| s == id) {
            tracing::info!(server_id = %id, "lease given up; stopping the poller here");
            poller.stop(*id);
        }
    }
    let now = Utc::now();
    let month = month_key(now, &tz);
    for &(id, fence) in &round.held {
        let fence = fence_of(fence);
        match running.get(&id) {
            Some(Some(current)) if *current == fence => continue,
            // Running (started by an admin's add, or under an older fence):
            // it writes under the new fence from now on.
            Some(_) if poller.set_fence(id, fence.clone()) => continue,
            _ => {}
        }
        start(store, poller, id, fence, if first { FirstPoll::Jittered } else { FirstPoll::Now }, now, &month).await;
    }
}

async fn start(
    store: &dyn Store,
    poller: &Supervisor,
    id: ServerId,
    fence: Fence,
    first: FirstPoll,
    now: chrono::DateTime<Utc>,
    month: &str,
) {
    match store.server(id, now, month).await {
        Ok(Some(record)) => {
            tracing::info!(server_id = %id, fence = fence.number, "lease held; polling here");
            let transport = poller.transport(target_of(&record));
            poller.spawn_leased(record, transport, first, Some(fence));
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(server_id = %id, error = %e, "could not load a leased server; next round"),
    }
}
