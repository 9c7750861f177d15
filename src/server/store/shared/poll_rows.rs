//! What every poll reads and writes, the same on both backends: the JSON
//! a poll's rows travel in, the raw samples, the live state brought up to
//! date from client rows, and the months rolled out of it. The SQL is each
//! backend's `ingest` module.

use crate::domain::accounting::Counters;
use crate::domain::ServerId;
use crate::server::store::rows::{counters, db_bytes, Columns};
use crate::server::store::state::{decode, ClientState, ServerState};
use crate::server::store::{Fence, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Rows as one JSON array: the parameter a statement takes many rows in.
pub(crate) fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a poll: {e}")))
}

/// One client's raw sample: `[client_id, rx, tx]`.
pub(crate) fn sample(client_id: i64, bytes: Counters) -> [i64; 3] {
    [client_id, db_bytes(bytes.rx), db_bytes(bytes.tx)]
}

/// The state stored for server `id`, from a row of the server's
/// `clients_version` and its state row's `state_version` and `data` (both
/// NULL without one): the state (empty without one), and whether it was
/// written after the last change to the server's client rows.
pub(in crate::server::store) fn stored_state(
    id: ServerId,
    row: &impl Columns,
) -> Result<(ServerState, bool), StoreError> {
    let version = row.int("clients_version")?;
    let state_version = row.opt_int("state_version")?;
    let stored = row
        .opt_blob("data")?
        .map(decode)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("state of server {id}: {e}")))?;
    Ok(match (stored, state_version) {
        (Some(state), Some(v)) if v == version => (state, true),
        (stored, _) => (stored.unwrap_or_default(), false),
    })
}

/// Brings an out-of-date state up to date from the server's client rows
/// (`id, identity, seed_*` and `open_session`, in id order): entries of
/// removed clients are dropped, and clients without an entry (added outside
/// a poll, or never polled since the upgrade to packed state) start from
/// their row.
pub(in crate::server::store) fn refresh_state<R: Columns>(
    stored: ServerState,
    rows: &[R],
) -> Result<ServerState, StoreError> {
    let mut kept = stored.into_by_id();
    let mut clients = Vec::with_capacity(rows.len());
    for r in rows {
        let client_id = r.int("id")?;
        let identity = r.text("identity")?;
        if let Some(c) = kept.remove(&client_id).filter(|c| c.identity == identity) {
            clients.push(c);
            continue;
        }
        clients.push(ClientState {
            client_id,
            identity,
            counters: counters(r, "seed_rx_counter", "seed_tx_counter")?,
            total: counters(r, "seed_total_rx", "seed_total_tx")?,
            // The months so far are all in `usage_monthly`.
            month: String::new(),
            month_bytes: Counters::ZERO,
            latest_handshake: r.opt_int("seed_latest_handshake")?,
            last_seen: r.opt_int("seed_last_seen_at")?,
            last_sync_at: r.int("seed_last_sync_at")?,
            on_host: r.flag("seed_on_host")?,
            open_session: r.opt_int("open_session")?,
            // Unknown: the next poll rewrites the row's attributes once.
            endpoint: 0,
            attributes: 0,
        });
    }
    Ok(ServerState { clients, stamp: 0 })
}

/// Moves bytes of months other than `month` out of the state, which then
/// holds `month` only. Returns them as `usage_monthly` rows to add:
/// `[client_id, month, rx, tx]`.
pub(in crate::server::store) fn roll_rows(state: &mut ServerState, month: &str) -> Vec<Value> {
    let earlier: Vec<Value> = state
        .clients
        .iter()
        .filter(|c| c.month != month && !c.month_bytes.is_zero())
        .map(|c| json!([c.client_id, c.month, db_bytes(c.month_bytes.rx), db_bytes(c.month_bytes.tx)]))
        .collect();
    for c in state.clients.iter_mut().filter(|c| c.month != month) {
        c.month = month.to_owned();
        c.month_bytes = Counters::ZERO;
    }
    earlier
}

/// What a poll's transaction reads first: the last poll applied, and the
/// server's lease (both stores bind `$1` by number).
pub(crate) const POLL_START: &str = "SELECT s.last_sample_at, s.polls_applied, l.owner AS lease_owner, \
    l.fence AS lease_fence FROM servers s LEFT JOIN server_leases l ON l.server_id = s.id WHERE s.id = $1";

/// Whether a poll taken `at` under `fence` goes on, from the row of
/// [`POLL_START`].
pub(crate) enum PollStart {
    /// Not newer than the last poll applied: nothing to do.
    Stale,
    /// Written under a lease another replica has since taken.
    LeaseLost,
    Apply {
        /// The server's first poll.
        first: bool,
    },
}

pub(crate) fn poll_start(
    row: &impl Columns,
    at: DateTime<Utc>,
    fence: Option<&Fence>,
) -> Result<PollStart, StoreError> {
    // Milliseconds: two distinct polls within one second (a CLI run right
    // after the panel's poll) are both applied; the same poll twice is not.
    if row.opt_int("last_sample_at")?.is_some_and(|last| last >= at.timestamp_millis()) {
        return Ok(PollStart::Stale);
    }
    if let Some(fence) = fence {
        let holder = (row.opt_text("lease_owner")?, row.opt_int("lease_fence")?);
        if holder != (Some(fence.owner.clone()), Some(fence.number)) {
            return Ok(PollStart::LeaseLost);
        }
    }
    Ok(PollStart::Apply { first: row.int("polls_applied")? == 0 })
}
