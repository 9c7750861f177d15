//! This replica's share of the fleet: a lease round every third of the
//! lease time (see [`crate::domain::cluster`]) starts pollers for the
//! servers it holds, with their fences, and stops those it no longer
//! holds. With one replica it simply holds every server.

use crate::domain::accounting::month_key;
use crate::server::poller::{target_of, FirstPoll, Supervisor};
use crate::server::store::{Fence, LeaseRound, Replica, Store};
use chrono::Utc;
use chrono_tz::Tz;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// This process as a replica on machine `host`, reached at `address`: a
/// new random id at every start.
pub fn this_replica(host: &str, address: Option<String>) -> Replica {
    let id: u128 = rand::thread_rng().gen();
    Replica { id: format!("{id:032x}"), name: format!("{}:{}", host.trim(), std::process::id()), address }
}

/// Runs lease rounds until `cancel`. Pollers run only while their lease
/// is known to hold: when a round fails or is late past the lease time
/// measured from the last good round's start, every poller here stops.
pub async fn run(
    store: Arc<dyn Store>,
    poller: Arc<Supervisor>,
    me: Replica,
    ttl: Duration,
    tz: Tz,
    cancel: CancellationToken,
) {
    // Until when the leases held are known to be this replica's.
    let mut valid_until: Option<Instant> = None;
    let mut first = true;
    loop {
        let started = Instant::now();
        let deadline = valid_until.unwrap_or(started + ttl);
        let round = tokio::select! {
            _ = cancel.cancelled() => break,
            round = tokio::time::timeout_at(deadline, store.lease_round(&me, Utc::now(), ttl)) => round,
        };
        match round {
            Ok(Ok(round)) => {
                valid_until = Some(started + ttl);
                apply(store.as_ref(), &poller, &me, &round, tz, first).await;
                first = false;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease round failed"),
            Err(_) => tracing::warn!("lease round did not finish within the lease time"),
        }
        // Past the lease time another replica may hold these servers:
        // stop touching their hosts until a round succeeds again.
        if valid_until.is_none_or(|v| Instant::now() >= v) && !poller.running().is_empty() {
            tracing::warn!("leases not renewed in time; stopping every poller here");
            for id in poller.running().into_keys() {
                poller.stop(id);
            }
            valid_until = None;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
    }
}

/// Gives this replica's leases and jobs up, so the others take its servers
/// in their next round. Call only once its pollers have stopped.
pub async fn leave(store: &dyn Store, me: &Replica) {
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
    let mut to_start = Vec::new();
    for &(id, fence) in &round.held {
        let fence = fence_of(fence);
        match running.get(&id) {
            Some(Some(current)) if *current == fence => {}
            // Running (started by an admin's add, or under an older fence):
            // it writes under the new fence from now on.
            Some(_) if poller.set_fence(id, fence.clone()) => {}
            _ => to_start.push((id, fence)),
        }
    }
    if to_start.is_empty() {
        return;
    }
    // One read for all of them (a whole fleet at start-up or takeover).
    let now = Utc::now();
    let servers = match store.servers(now, &month_key(now, &tz)).await {
        Ok(servers) => servers,
        Err(e) => {
            tracing::warn!(error = %e, "could not load the leased servers; next round");
            return;
        }
    };
    let first = if first { FirstPoll::Jittered } else { FirstPoll::Now };
    for record in servers {
        let Some((_, fence)) = to_start.iter().find(|(id, _)| *id == record.id) else { continue };
        tracing::info!(server_id = %record.id, fence = fence.number, "lease held; polling here");
        let transport = poller.transport(target_of(&record));
        poller.spawn_leased(record, transport, first, Some(fence.clone()));
    }
}
