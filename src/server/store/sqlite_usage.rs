//! Reports from SQLite: sessions, usage, and the rollup of raw samples into
//! hourly and daily buckets.

use super::sqlite::{counters, db_bytes, instant, opt_instant, protocol, secs, SqliteStore};
use super::{HourlyBucket, SessionFilter, SessionRecord, StoreError, UsageQuery, UsageRow};
use crate::domain::accounting::Counters;
use crate::domain::{ClientId, ServerId};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

const SESSION_SELECT: &str = "SELECT o.id, o.server_id, s.name AS server_name, o.client_id, c.identity, \
    c.name AS client_name, o.session_key, o.protocol, o.connected_at, o.disconnected_at, o.last_seen_at, \
    o.endpoint, o.virtual_ip, o.rx, o.tx, o.openvpn_client_id \
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
    let rows = q.build().fetch_all(&store.read).await?;
    rows.iter().map(session_from_row).collect()
}

pub(super) async fn session(store: &SqliteStore, id: i64) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(&format!("{SESSION_SELECT} WHERE o.id = ?")).bind(id).fetch_optional(&store.read).await?;
    row.as_ref().map(session_from_row).transpose()
}

pub(super) async fn usage(store: &SqliteStore, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
    let mut q: QueryBuilder<Sqlite> = if query.accumulated {
        QueryBuilder::new(
            "SELECT s.name AS server, c.identity, c.name, NULL AS month, c.total_rx AS rx, c.total_tx AS tx \
             FROM clients c JOIN servers s ON s.id = c.server_id WHERE 1 = 1",
        )
    } else {
        QueryBuilder::new(
            "SELECT s.name AS server, c.identity, c.name, m.month, m.rx, m.tx FROM usage_monthly m \
             JOIN clients c ON c.id = m.client_id JOIN servers s ON s.id = c.server_id WHERE 1 = 1",
        )
    };
    if let (Some(month), false) = (&query.month, query.accumulated) {
        q.push(" AND m.month = ").push_bind(month.clone());
    }
    if let Some(identity) = &query.identity {
        q.push(" AND c.identity = ").push_bind(identity.clone());
    }
    if let Some(server) = query.server {
        q.push(" AND c.server_id = ").push_bind(server.get());
    }
    q.push(if query.accumulated { " ORDER BY s.name, c.identity" } else { " ORDER BY m.month, s.name, c.identity" });
    let rows = q.build().fetch_all(&store.read).await?;
    rows.iter()
        .map(|r| {
            Ok(UsageRow {
                server: r.try_get("server")?,
                identity: r.try_get("identity")?,
                name: r.try_get("name")?,
                month: r.try_get("month")?,
                bytes: counters(r, "rx", "tx")?,
            })
        })
        .collect()
}

pub(super) async fn sample_buckets(
    store: &SqliteStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HourlyBucket>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, (at / 3600) * 3600 AS hour, SUM(rx) AS rx, SUM(tx) AS tx FROM traffic_samples \
         WHERE at >= ? AND at < ? GROUP BY client_id, hour",
    )
    .bind(secs(from))
    .bind(secs(to))
    .fetch_all(&store.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HourlyBucket {
                client_id: r.try_get("client_id")?,
                hour: r.try_get("hour")?,
                bytes: counters(r, "rx", "tx")?,
            })
        })
        .collect()
}

pub(super) async fn store_rollup(
    store: &SqliteStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    hourly: &[HourlyBucket],
    daily: &[(i64, String, Counters)],
    keep_samples_since: DateTime<Utc>,
    keep_hourly_since: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let mark: i64 =
        sqlx::query_scalar("SELECT rolled_up_to FROM rollup_state WHERE id = 1").fetch_one(&mut *tx).await?;
    if mark != secs(from) {
        tx.rollback().await?;
        return Ok(false);
    }
    let hours: Vec<_> =
        hourly.iter().map(|b| json!([b.client_id, b.hour, db_bytes(b.bytes.rx), db_bytes(b.bytes.tx)])).collect();
    let days: Vec<_> = daily.iter().map(|(c, d, b)| json!([c, d, db_bytes(b.rx), db_bytes(b.tx)])).collect();
    let encode = |v| serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding a rollup: {e}")));
    // Buckets of clients deleted meanwhile are skipped by the EXISTS test.
    sqlx::query(
        "INSERT INTO traffic_hourly (client_id, hour, rx, tx) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3 FROM json_each(?) AS j \
         WHERE EXISTS (SELECT 1 FROM clients c WHERE c.id = j.value ->> 0) \
         ON CONFLICT (client_id, hour) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
    )
    .bind(encode(&hours)?)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO traffic_daily (client_id, day, rx, tx) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3 FROM json_each(?) AS j \
         WHERE EXISTS (SELECT 1 FROM clients c WHERE c.id = j.value ->> 0) \
         ON CONFLICT (client_id, day) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
    )
    .bind(encode(&days)?)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE rollup_state SET rolled_up_to = ? WHERE id = 1").bind(secs(to)).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM traffic_samples WHERE at < MIN(?1, ?2)")
        .bind(secs(keep_samples_since))
        .bind(secs(to))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM traffic_hourly WHERE hour < ?").bind(secs(keep_hourly_since)).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}
