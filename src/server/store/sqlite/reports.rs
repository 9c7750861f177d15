//! Reports from SQLite: sessions, usage, and the rollup of raw samples into
//! hourly and daily buckets.

use super::ingest::current_state;
use super::SqliteStore;
use crate::domain::accounting::Counters;
use crate::domain::{ClientId, ServerId};
use crate::server::store::rows::{counters, secs};
use crate::server::store::shared::reports::{
    add_live_months, bring_up_to_date, day_rows, deleted_identity_range, history_rows, hourly_from_row, live_base,
    rollup_json, session_from_row, usage_rows, CLIENT_HISTORY, FLEET_DAILY, OPEN_SUMMARY, SESSION_SELECT,
};
use crate::server::store::state::{ClientState, ServerState};
use crate::server::store::{
    ClientHistory, HistorySince, PendingSamples, SessionFilter, SessionRecord, StoreError, UsageQuery, UsageRow,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

/// Sessions from rows, with open WireGuard sessions brought up to date from
/// their servers' live state: bytes (the client's total minus the session's
/// base) and last sign of life; the endpoint is the client's.
async fn sessions_from_rows(conn: &mut SqliteConnection, rows: &[SqliteRow]) -> Result<Vec<SessionRecord>, StoreError> {
    // Per server, its clients' live figures by client id.
    let mut states: HashMap<ServerId, HashMap<i64, ClientState>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut session = session_from_row(row)?;
        if let Some(base) = live_base(row, &session)? {
            if let Entry::Vacant(slot) = states.entry(session.server_id) {
                let state = current_state(conn, session.server_id).await?;
                slot.insert(state.into_by_id());
            }
            let live = states.get(&session.server_id).and_then(|s| s.get(&session.client_id.get()));
            if let Some(c) = live {
                bring_up_to_date(&mut session, row, base, c)?;
            }
        }
        out.push(session);
    }
    Ok(out)
}

pub(super) async fn sessions(store: &SqliteStore, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(SESSION_SELECT);
    q.push(" WHERE 1 = 1");
    if let Some(server) = filter.server {
        q.push(" AND o.server_id = ").push_bind(server.get());
    }
    if let Some(client) = filter.client {
        q.push(" AND o.client_id = ").push_bind(client.get());
    }
    if filter.open {
        q.push(" AND o.disconnected_at IS NULL");
    }
    if let Some(since) = filter.ended_since {
        q.push(" AND o.disconnected_at >= ").push_bind(secs(since));
        q.push(" ORDER BY o.disconnected_at DESC, o.id DESC");
    } else {
        q.push(" ORDER BY o.connected_at DESC, o.id DESC");
    }
    q.push(" LIMIT ").push_bind(i64::from(filter.limit.clamp(1, 10_000)));
    let mut tx = store.read.begin().await?;
    let rows = q.build().fetch_all(&mut *tx).await?;
    let sessions = sessions_from_rows(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(sessions)
}

pub(super) async fn session(store: &SqliteStore, id: i64) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = store.read.begin().await?;
    let row = sqlx::query(&format!("{SESSION_SELECT} WHERE o.id = ?")).bind(id).fetch_optional(&mut *tx).await?;
    let sessions = sessions_from_rows(&mut tx, row.as_slice()).await?;
    tx.commit().await?;
    Ok(sessions.into_iter().next())
}

/// Narrows to the clients known by `identity`: the client, and any deleted
/// one that had it (a deleted WireGuard client's identity is
/// `<key>#deleted-<id>`, see `delete_client`).
fn same_identity(q: &mut QueryBuilder<'_, Sqlite>, identity: &str) {
    q.push(" AND (c.identity = ").push_bind(identity.to_owned());
    let (prefix, end) = deleted_identity_range(identity);
    q.push(" OR (c.identity >= ").push_bind(prefix);
    q.push(" AND c.identity < ").push_bind(end).push("))");
}

pub(super) async fn usage(store: &SqliteStore, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
    let mut tx = store.read.begin().await?;
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT c.id, c.server_id, s.name AS server, c.identity, c.name FROM clients c \
         JOIN servers s ON s.id = c.server_id WHERE 1 = 1",
    );
    if let Some(identity) = &query.identity {
        same_identity(&mut q, identity);
    }
    if let Some(server) = query.server {
        q.push(" AND c.server_id = ").push_bind(server.get());
    }
    let clients = q.build().fetch_all(&mut *tx).await?;
    let mut states: HashMap<i64, ServerState> = HashMap::new();
    let mut live: HashMap<i64, ClientState> = HashMap::new();
    for r in &clients {
        let server: i64 = r.try_get("server_id")?;
        if let Entry::Vacant(slot) = states.entry(server) {
            slot.insert(current_state(&mut tx, ServerId::new(server)).await?);
        }
    }
    for state in states.into_values() {
        live.extend(state.into_by_id());
    }
    // (client, month) -> bytes: past months from the ledger, the current
    // month from the live state.
    let mut months: BTreeMap<(i64, String), Counters> = BTreeMap::new();
    if !query.accumulated {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT m.client_id, m.month, m.rx, m.tx FROM usage_monthly m \
             JOIN clients c ON c.id = m.client_id WHERE 1 = 1",
        );
        if let Some(month) = &query.month {
            q.push(" AND m.month = ").push_bind(month.clone());
        }
        if let Some(identity) = &query.identity {
            same_identity(&mut q, identity);
        }
        if let Some(server) = query.server {
            q.push(" AND c.server_id = ").push_bind(server.get());
        }
        for r in q.build().fetch_all(&mut *tx).await? {
            months.insert((r.try_get("client_id")?, r.try_get("month")?), counters(&r, "rx", "tx")?);
        }
        add_live_months(&mut months, &live, query.month.as_ref());
    }
    tx.commit().await?;

    usage_rows(&clients, query, &live, &months)
}

/// Samples of a removed client are skipped, also once its id has been given
/// to a new client (SQLite reuses the highest freed id): every sample of the
/// removed one is older than the new one's first sight.
pub(super) async fn pending_samples(store: &SqliteStore) -> Result<PendingSamples, StoreError> {
    let from: i64 =
        sqlx::query_scalar("SELECT rolled_up_seq FROM rollup_state WHERE id = 1").fetch_one(&store.read).await?;
    // Every row up to the highest sequence number is committed: one writer
    // assigns them in order inside its transactions.
    let to: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM traffic_polls").fetch_one(&store.read).await?;
    if to <= from {
        return Ok(PendingSamples { from, to: from, hourly: Vec::new() });
    }
    let rows = sqlx::query(
        "SELECT c.id AS client_id, (t.at / 3600) * 3600 AS hour, \
           SUM(j.value ->> 1) AS rx, SUM(j.value ->> 2) AS tx \
         FROM traffic_polls t, json_each(t.data) AS j \
         CROSS JOIN clients c ON c.id = j.value ->> 0 AND c.server_id = t.server_id AND c.first_seen_at <= t.at \
         WHERE t.seq > ? AND t.seq <= ? GROUP BY 1, 2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&store.read)
    .await?;
    let hourly = rows.iter().map(hourly_from_row).collect::<Result<_, StoreError>>()?;
    Ok(PendingSamples { from, to, hourly })
}

/// Adds `[client_id, bucket, rx, tx]` rows (a JSON array) to a roll-up
/// table. Buckets of clients deleted meanwhile are skipped by the EXISTS
/// test.
async fn add_buckets(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    table: &'static str,
    bucket: &'static str,
    rows: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {table} (client_id, {bucket}, rx, tx) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3 FROM json_each(?) AS j \
         WHERE EXISTS (SELECT 1 FROM clients c WHERE c.id = j.value ->> 0) \
         ON CONFLICT (client_id, {bucket}) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx"
    );
    sqlx::query(&sql).bind(rows).execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn store_rollup(
    store: &SqliteStore,
    pending: &PendingSamples,
    daily: &[(i64, String, Counters)],
    keep_samples_since: DateTime<Utc>,
    keep_hourly_since: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let mark: i64 =
        sqlx::query_scalar("SELECT rolled_up_seq FROM rollup_state WHERE id = 1").fetch_one(&mut *tx).await?;
    if mark != pending.from {
        tx.rollback().await?;
        return Ok(false);
    }
    let (hours, days) = rollup_json(pending, daily)?;
    add_buckets(&mut tx, "traffic_hourly", "hour", &hours).await?;
    add_buckets(&mut tx, "traffic_daily", "day", &days).await?;
    sqlx::query("UPDATE rollup_state SET rolled_up_seq = ? WHERE id = 1").bind(pending.to).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM traffic_polls WHERE seq <= ? AND at < ?")
        .bind(pending.to)
        .bind(secs(keep_samples_since))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM traffic_hourly WHERE hour < ?").bind(secs(keep_hourly_since)).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// A client's history since the given hour, day and month, and its
/// samples not rolled up yet (of its server's polls), in one snapshot.
pub(super) async fn client_history(
    store: &SqliteStore,
    client: ClientId,
    server: ServerId,
    since: &HistorySince,
) -> Result<ClientHistory, StoreError> {
    let mut tx = store.read.begin().await?;
    let rows = sqlx::query(CLIENT_HISTORY)
        .bind(client.get())
        .bind(since.hour)
        .bind(&since.day)
        .bind(&since.month)
        .fetch_all(&mut *tx)
        .await?;
    let pending = sqlx::query(
        "SELECT (t.at / 3600) * 3600 AS hour, SUM(j.value ->> 1) AS rx, SUM(j.value ->> 2) AS tx \
         FROM traffic_polls t, json_each(t.data) AS j \
         WHERE t.server_id = $1 AND t.seq > (SELECT rolled_up_seq FROM rollup_state WHERE id = 1) \
           AND t.at >= (SELECT first_seen_at FROM clients WHERE id = $2) AND j.value ->> 0 = $2 GROUP BY 1",
    )
    .bind(server.get())
    .bind(client.get())
    .fetch_all(&mut *tx)
    .await?;
    let state = current_state(&mut tx, server).await?;
    tx.commit().await?;
    let live = state.clients.iter().find(|c| c.client_id == client.get() && c.month >= since.month);
    history_rows(&rows, &pending, live)
}

pub(super) async fn fleet_daily(
    store: &SqliteStore,
    server: Option<ServerId>,
    since_day: &str,
) -> Result<Vec<(String, Counters)>, StoreError> {
    let rows = sqlx::query(FLEET_DAILY).bind(since_day).bind(server.map(|s| s.get())).fetch_all(&store.read).await?;
    day_rows(&rows)
}

pub(super) async fn open_sessions(store: &SqliteStore, server: Option<ServerId>) -> Result<(u64, i64), StoreError> {
    let row = sqlx::query(OPEN_SUMMARY).bind(server.map(|s| s.get())).fetch_one(&store.read).await?;
    Ok((u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0), row.try_get("started")?))
}

pub(super) async fn delete_sessions_ended_before(
    store: &SqliteStore,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // In batches, so the writer is never held for long.
    let mut deleted = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM connections WHERE id IN \
                 (SELECT id FROM connections WHERE disconnected_at < ? LIMIT 5000)",
        )
        .bind(secs(before))
        .execute(&store.write)
        .await?;
        deleted += done.rows_affected();
        if done.rows_affected() < 5000 {
            return Ok(deleted);
        }
    }
}
