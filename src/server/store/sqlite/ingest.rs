//! Applying a poll to SQLite: one `BEGIN IMMEDIATE` transaction that reads
//! the server's live state (one packed row, see [`super::state`]), plans the
//! poll with the pure core ([`crate::domain::ingest`]), and writes the new
//! state back as one row. Ordinary rows are written only for what changed:
//! new clients, changed attributes, sessions that open or close, one row of
//! raw samples, and the server's own ledger. A 10,000-peer poll therefore
//! costs a handful of statements and two row reads/writes, not 10,000 row
//! updates.

use super::SqliteStore;
use crate::domain::accounting::Counters;
use crate::domain::ServerId;
use crate::server::store::rows::{db_bytes, secs};
use crate::server::store::shared::poll_rows::{
    poll_start, refresh_state, roll_rows, stored_state, PollStart, POLL_START,
};
use crate::server::store::state::{encode, ServerState};
use crate::server::store::state_cache::{new_stamp, STAMPS};
use crate::server::store::{Fence, PollFigures, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqliteConnection, Transaction};

pub(super) use crate::server::store::shared::poll_rows::to_json;

pub(super) type Tx = Transaction<'static, Sqlite>;

/// Starts the transaction and checks the poll is newer than the last one
/// applied. Returns `None` (and rolls back) for a stale or repeated poll,
/// else whether this is the server's first poll.
pub(super) async fn begin(
    store: &SqliteStore,
    id: ServerId,
    at: DateTime<Utc>,
    fence: Option<&Fence>,
) -> Result<Option<(Tx, bool)>, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let row =
        sqlx::query(POLL_START).bind(id.get()).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound("server"))?;
    match poll_start(&row, at, fence)? {
        PollStart::Apply { first } => Ok(Some((tx, first))),
        PollStart::Stale => {
            tx.rollback().await?;
            Ok(None)
        }
        PollStart::LeaseLost => {
            tx.rollback().await?;
            Err(StoreError::LeaseLost(id.get()))
        }
    }
}

/// The server's live state as of this transaction. The stored row is used
/// when it was written after the last change to the server's client rows;
/// otherwise it is brought up to date from them: entries of removed clients
/// are dropped, and clients without an entry (added outside a poll, or
/// never polled since the upgrade to packed state) start from their row.
pub(in crate::server::store) async fn current_state(
    conn: &mut SqliteConnection,
    id: ServerId,
) -> Result<ServerState, StoreError> {
    let row = sqlx::query(
        "SELECT s.clients_version, st.clients_version AS state_version, st.data \
         FROM servers s LEFT JOIN server_state st ON st.server_id = s.id WHERE s.id = ?",
    )
    .bind(id.get())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("server"))?;
    let (stored, current) = stored_state(id, &row)?;
    if current {
        return Ok(stored);
    }
    let rows = sqlx::query(
        "SELECT c.id, c.identity, c.seed_rx_counter, c.seed_tx_counter, c.seed_total_rx, c.seed_total_tx, \
           c.seed_latest_handshake, c.seed_last_seen_at, c.seed_last_sync_at, c.seed_on_host, o.id AS open_session \
         FROM clients c LEFT JOIN connections o \
           ON o.client_id = c.id AND o.disconnected_at IS NULL AND o.protocol <> 'openvpn' \
         WHERE c.server_id = ? ORDER BY c.id",
    )
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await?;
    refresh_state(stored, &rows)
}

/// Moves bytes of earlier months out of the state into `usage_monthly`, so
/// the state holds `month` only.
pub(super) async fn roll_month(tx: &mut Tx, state: &mut ServerState, month: &str) -> Result<(), StoreError> {
    let earlier = roll_rows(state, month);
    if !earlier.is_empty() {
        sqlx::query(
            "INSERT INTO usage_monthly (client_id, month, rx, tx) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3 FROM json_each(?) AS j WHERE true \
             ON CONFLICT (client_id, month) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
        )
        .bind(to_json(&earlier)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Writes what every protocol shares: one row of raw samples
/// (`[client_id, rx, tx]` of the clients that moved bytes), the server's
/// monthly and lifetime ledger and poll state, and the client state.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    tx: &mut Tx,
    id: ServerId,
    at: DateTime<Utc>,
    month: &str,
    samples: &[[i64; 3]],
    new: Counters,
    carried: Counters,
    state: &mut ServerState,
) -> Result<PollFigures, StoreError> {
    if !samples.is_empty() {
        sqlx::query("INSERT INTO traffic_polls (server_id, at, data) VALUES (?, ?, ?)")
            .bind(id.get())
            .bind(secs(at))
            .bind(to_json(samples)?)
            .execute(&mut **tx)
            .await?;
    }
    if !new.is_zero() {
        sqlx::query(
            "INSERT INTO server_usage_monthly (server_id, month, rx, tx) VALUES (?, ?, ?, ?) \
             ON CONFLICT (server_id, month) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
        )
        .bind(id.get())
        .bind(month)
        .bind(db_bytes(new.rx))
        .bind(db_bytes(new.tx))
        .execute(&mut **tx)
        .await?;
    }
    let lifetime = new.saturating_add(carried);
    let polls_applied: i64 = sqlx::query_scalar(
        "UPDATE servers SET total_rx = total_rx + ?2, total_tx = total_tx + ?3, last_sample_at = ?5, \
         polls_applied = polls_applied + 1, last_poll_at = ?4, last_success_at = ?4, last_error = NULL, \
         consecutive_failures = 0 WHERE id = ?1 RETURNING polls_applied",
    )
    .bind(id.get())
    .bind(db_bytes(lifetime.rx))
    .bind(db_bytes(lifetime.tx))
    .bind(secs(at))
    .bind(at.timestamp_millis())
    .fetch_one(&mut **tx)
    .await?;
    store_state(tx, id, state).await?;
    Ok(PollFigures { polls_applied, clients: state.figures() })
}

/// Writes a server's state, stamped with the client-row version as of now
/// (after the transaction's own insertions) and a new random stamp, which
/// `state` takes (see `state_cache`).
pub(super) async fn store_state(tx: &mut Tx, id: ServerId, state: &mut ServerState) -> Result<(), StoreError> {
    let stamp = new_stamp();
    sqlx::query(
        "INSERT INTO server_state (server_id, clients_version, data, stamp) \
         VALUES (?1, (SELECT clients_version FROM servers WHERE id = ?1), ?2, ?3) \
         ON CONFLICT (server_id) DO UPDATE SET clients_version = excluded.clients_version, \
           data = excluded.data, stamp = excluded.stamp",
    )
    .bind(id.get())
    .bind(encode(state))
    .bind(stamp)
    .execute(&mut **tx)
    .await?;
    state.stamp = stamp;
    Ok(())
}

/// The server's live state for a poll of it: the one kept in memory since
/// this replica's last poll if the row still holds it and is current
/// (`state_cache`), else [`current_state`].
pub(super) async fn poll_state(
    store: &SqliteStore,
    conn: &mut SqliteConnection,
    id: ServerId,
) -> Result<ServerState, StoreError> {
    let stamps = sqlx::query_as(STAMPS).bind(id.get()).fetch_optional(&mut *conn).await?;
    match store.states.take_current(id, stamps.ok_or(StoreError::NotFound("server"))?) {
        Some(kept) => Ok(kept),
        None => current_state(conn, id).await,
    }
}
