//! The live states of big servers, kept in memory from one poll to the
//! next. A 10,000-client state is a 1.2 MB row: reading and decoding it
//! costs a poll about 2 ms on SQLite and more on PostgreSQL. Every state
//! row is written with a random stamp, so the poller, which wrote the row
//! last, knows by reading the stamp alone that the row still holds the
//! state it kept; any other write (another replica's poll after a
//! takeover, a client change) changes the stamp and the row is read again.
//!
//! A state is taken out of the cache for the poll that changes it and put
//! back only after that poll committed: a poll that fails leaves nothing
//! behind, and the next one reads the row. A state not taken for ten
//! minutes (its server went to another replica) is dropped. A row
//! rewritten without a new stamp (by a panel from before stamps) loses its
//! stamp, by a trigger, so nothing kept matches it.

use super::state::ServerState;
use crate::domain::ServerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Smaller states are cheap enough to read (a 1,000-client one in about
/// 0.2 ms) not to be kept: a fleet of 200 such servers would double the
/// panel's memory for 0.1 ms a poll.
pub(super) const MIN_CLIENTS: usize = 5000;

/// A kept state not taken for this long is dropped (its server went to
/// another replica, or was deleted).
const UNUSED_FOR: Duration = Duration::from_secs(600);

#[derive(Default)]
pub(crate) struct StateCache {
    states: Mutex<HashMap<ServerId, (Instant, ServerState)>>,
    /// States given back so far.
    hits: AtomicU64,
}

/// A new stamp for a state row (never 0, the stamp of rows written before
/// stamps existed).
pub(super) fn new_stamp() -> i64 {
    use rand::Rng;
    rand::thread_rng().gen_range(1..i64::MAX)
}

/// What tells whether a kept state is current: the server's client-row
/// version, and its state row's version and stamp (`$1`: the server).
pub(super) const STAMPS: &str = "SELECT s.clients_version, st.clients_version, st.stamp \
    FROM servers s LEFT JOIN server_state st ON st.server_id = s.id WHERE s.id = $1";

impl StateCache {
    /// The state kept for `id`, taken out, if the row ([`STAMPS`]: client
    /// version, state's client version, stamp) still holds it and it is
    /// current (no client row changed since it was written).
    pub fn take_current(
        &self,
        id: ServerId,
        (version, state_version, stamp): (i64, Option<i64>, Option<i64>),
    ) -> Option<ServerState> {
        if state_version != Some(version) {
            return None;
        }
        self.take(id, stamp.unwrap_or(0))
    }

    /// The state kept for `id`, taken out, if it is the one stored under
    /// `stamp`.
    pub fn take(&self, id: ServerId, stamp: i64) -> Option<ServerState> {
        let (_, state) = self.states.lock().ok()?.remove(&id)?;
        let current = stamp != 0 && state.stamp == stamp;
        if current {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        current.then_some(state)
    }

    /// Keeps `state` (as just committed) for the next poll of `id`.
    pub fn keep(&self, id: ServerId, state: ServerState) {
        if state.clients.len() < MIN_CLIENTS || state.stamp == 0 {
            return;
        }
        if let Ok(mut states) = self.states.lock() {
            let now = Instant::now();
            states.retain(|_, (kept, _)| now.duration_since(*kept) < UNUSED_FOR);
            states.insert(id, (now, state));
        }
    }

    /// How many kept states were given back to polls.
    #[cfg(test)]
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::state::ClientState;

    fn state(clients: usize, stamp: i64) -> ServerState {
        let clients = (0..clients).map(|i| ClientState::new(i as i64 + 1, format!("k{i}"), "2026-11", 0)).collect();
        ServerState { clients, stamp }
    }

    #[test]
    fn a_kept_state_is_given_back_once_and_only_for_its_own_stamp() {
        let cache = StateCache::default();
        let id = ServerId::new(1);
        cache.keep(id, state(MIN_CLIENTS, 42));
        assert_eq!(cache.take(id, 7), None, "the row was written since: read it");
        assert_eq!(cache.take(id, 42), None, "a mismatch dropped it");
        cache.keep(id, state(MIN_CLIENTS, 42));
        assert_eq!(cache.take(id, 42).map(|s| s.clients.len()), Some(MIN_CLIENTS));
        assert_eq!(cache.take(id, 42), None, "taken out for the poll that changes it");
        cache.keep(id, state(MIN_CLIENTS - 1, 42));
        assert_eq!(cache.take(id, 42), None, "small states are not kept");
        cache.keep(id, state(MIN_CLIENTS, 0));
        assert_eq!(cache.take(id, 0), None, "nor one never written");
        assert_ne!(new_stamp(), 0);
    }
}
