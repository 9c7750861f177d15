//! Reports from SQLite: sessions, usage, and the rollup of raw samples into
//! hourly and daily buckets.

use super::ingest::current_state;
use super::rows::{bytes, counters, db_bytes, instant, opt_instant, protocol, secs};
use super::SqliteStore;
use crate::domain::accounting::Counters;
use crate::domain::{ClientId, ServerId};
use crate::server::store::state::{ClientState, ServerState};
use crate::server::store::{
    HourlyBucket, PendingSamples, SessionFilter, SessionRecord, StoreError, UsageQuery, UsageRow, DELETED_MARK,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

const SESSION_SELECT: &str = "SELECT o.id, o.server_id, s.name AS server_name, o.client_id, c.identity, \
    c.name AS client_name, o.session_key, o.protocol, o.connected_at, o.disconnected_at, o.last_seen_at, \
    o.endpoint, o.virtual_ip, o.rx, o.tx, o.base_rx, o.base_tx, o.openvpn_client_id, \
    c.endpoint AS client_endpoint \
    FROM connections o JOIN servers s ON s.id = o.server_id JOIN clients c ON c.id = o.client_id";

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        server_id: ServerId::new(row.try_get("server_id")?),
        server_name: row.try_get("server_name")?,
        client_id: ClientId::new(row.try_get("client_id")?),
        identity: row.try_get("identity")?,
        client_name: row.try_get("client_name")?,
        session_key: row.try_get("session_key")?,
        protocol: protocol(&row.try_get::<String, _>("protocol")?)?,
        connected_at: instant(row.try_get("connected_at")?)?,
        disconnected_at: opt_instant(row.try_get("disconnected_at")?)?,
        last_seen_at: instant(row.try_get("last_seen_at")?)?,
        endpoint: row.try_get("endpoint")?,
        virtual_ip: row.try_get("virtual_ip")?,
        bytes: counters(row, "rx", "tx")?,
        openvpn_client_id: row.try_get::<Option<i64>, _>("openvpn_client_id")?.and_then(|v| u64::try_from(v).ok()),
    })
}

/// Sessions from rows, with open WireGuard sessions brought up to date from
/// their servers' live state: bytes (the client's total minus the session's
/// base) and last sign of life; the endpoint is the client's.
async fn sessions_from_rows(conn: &mut SqliteConnection, rows: &[SqliteRow]) -> Result<Vec<SessionRecord>, StoreError> {
    // Per server, its clients' live figures by client id.
    let mut states: HashMap<ServerId, HashMap<i64, ClientState>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut session = session_from_row(row)?;
        let base: (Option<i64>, Option<i64>) = (row.try_get("base_rx")?, row.try_get("base_tx")?);
        if let (None, (Some(base_rx), Some(base_tx))) = (session.disconnected_at, base) {
            if let Entry::Vacant(slot) = states.entry(session.server_id) {
                let state = current_state(conn, session.server_id).await?;
                slot.insert(state.into_by_id());
            }
            let live = states.get(&session.server_id).and_then(|s| s.get(&session.client_id.get()));
            if let Some(c) = live {
                session.bytes = c.total.saturating_sub(Counters::new(bytes(base_rx), bytes(base_tx)));
                if let Some(seen) = opt_instant(c.last_seen)? {
                    session.last_seen_at = session.last_seen_at.max(seen);
                }
                let endpoint: Option<String> = row.try_get("client_endpoint")?;
                if endpoint.is_some() {
                    session.endpoint = endpoint;
                }
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
    // Every identity that starts with `<identity>#deleted-` sorts from that
    // prefix up to (not including) the prefix with its last byte raised.
    let prefix = format!("{identity}{DELETED_MARK}");
    let (head, last) = DELETED_MARK.split_at(DELETED_MARK.len() - 1);
    let end = format!("{identity}{head}{}", char::from(last.as_bytes()[0] + 1));
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
        for c in live.values() {
            let wanted = query.month.as_ref().is_none_or(|m| *m == c.month);
            if wanted && !c.month_bytes.is_zero() {
                let bytes = months.entry((c.client_id, c.month.clone())).or_insert(Counters::ZERO);
                *bytes = bytes.saturating_add(c.month_bytes);
            }
        }
    }
    tx.commit().await?;

    let mut rows = Vec::new();
    for r in &clients {
        let id: i64 = r.try_get("id")?;
        let server: String = r.try_get("server")?;
        let identity: String = r.try_get("identity")?;
        let name: Option<String> = r.try_get("name")?;
        if query.accumulated {
            let total = live.get(&id).map(|c| c.total).unwrap_or(Counters::ZERO);
            rows.push(UsageRow { server, identity, name, month: None, bytes: total });
        } else {
            for ((_, month), bytes) in months.range((id, String::new())..).take_while(|((c, _), _)| *c == id) {
                rows.push(UsageRow {
                    server: server.clone(),
                    identity: identity.clone(),
                    name: name.clone(),
                    month: Some(month.clone()),
                    bytes: *bytes,
                });
            }
        }
    }
    rows.sort_by(|a, b| (&a.month, &a.server, &a.identity).cmp(&(&b.month, &b.server, &b.identity)));
    Ok(rows)
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
    let hourly = rows
        .iter()
        .map(|r| {
            Ok(HourlyBucket {
                client_id: r.try_get("client_id")?,
                hour: r.try_get("hour")?,
                bytes: counters(r, "rx", "tx")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(PendingSamples { from, to, hourly })
}

/// Adds `[client_id, bucket, rx, tx]` rows to a roll-up table. Buckets of
/// clients deleted meanwhile are skipped by the EXISTS test.
async fn add_buckets(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    table: &'static str,
    bucket: &'static str,
    rows: &[serde_json::Value],
) -> Result<(), StoreError> {
    let rows = serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a rollup: {e}")))?;
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
    let hours: Vec<_> = pending
        .hourly
        .iter()
        .map(|b| json!([b.client_id, b.hour, db_bytes(b.bytes.rx), db_bytes(b.bytes.tx)]))
        .collect();
    let days: Vec<_> = daily.iter().map(|(c, d, b)| json!([c, d, db_bytes(b.rx), db_bytes(b.tx)])).collect();
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
