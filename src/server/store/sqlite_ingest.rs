//! Applying a poll to SQLite: one `BEGIN IMMEDIATE` transaction that reads
//! what the panel knew, plans the poll with the pure core
//! ([`crate::domain::ingest`]) and writes the plan with a few set-based
//! statements over `json_each` (driven from the JSON side with `CROSS JOIN`,
//! so each row is one index lookup), so a 10,000-peer poll costs a handful of
//! statements rather than tens of thousands of round trips.

use super::sqlite::{bytes, counters, db_bytes, opt_instant, secs, SqliteStore};
use super::{OpenvpnPoll, PollOutcome, StoreError, WireguardPoll};
use crate::domain::accounting::Counters;
use crate::domain::ingest::{
    plan_openvpn, plan_wireguard, wireguard_virtual_ip, OpenvpnPlan, PeerBefore, SessionBefore, WireguardPlan,
};
use crate::domain::sessions::SessionStep;
use crate::domain::ServerId;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::HashMap;

type Tx = Transaction<'static, Sqlite>;

fn to_json(rows: &[Value]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a poll: {e}")))
}

/// Starts the transaction and checks the poll is newer than the last one
/// applied. Returns `None` (and rolls back) for a stale or repeated poll,
/// else whether this is the server's first poll.
async fn begin(store: &SqliteStore, id: ServerId, at: DateTime<Utc>) -> Result<Option<(Tx, bool)>, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT last_sample_at, polls_applied FROM servers WHERE id = ?")
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    let last: Option<i64> = row.try_get("last_sample_at")?;
    // Milliseconds: two distinct polls within one second (a CLI run right
    // after the panel's poll) are both applied; the same poll twice is not.
    if last.is_some_and(|last| last >= at.timestamp_millis()) {
        tx.rollback().await?;
        return Ok(None);
    }
    let first = row.try_get::<i64, _>("polls_applied")? == 0;
    Ok(Some((tx, first)))
}

/// Ledgers shared by every protocol: monthly per client and per server,
/// raw samples, lifetime server totals, and the server's poll state.
async fn add_traffic(
    tx: &mut Tx,
    id: ServerId,
    at: DateTime<Utc>,
    month: &str,
    per_client: &[Value],
    new: Counters,
    carried: Counters,
) -> Result<(), StoreError> {
    if !per_client.is_empty() {
        let rows = to_json(per_client)?;
        sqlx::query(
            "INSERT INTO usage_monthly (client_id, month, rx, tx) \
             SELECT c.id, ?2, j.value ->> 1, j.value ->> 2 FROM json_each(?3) AS j \
             CROSS JOIN clients c ON c.server_id = ?1 AND c.identity = j.value ->> 0 WHERE true \
             ON CONFLICT (client_id, month) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
        )
        .bind(id.get())
        .bind(month)
        .bind(&rows)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO traffic_samples (client_id, at, rx, tx) \
             SELECT c.id, ?2, j.value ->> 1, j.value ->> 2 FROM json_each(?3) AS j \
             CROSS JOIN clients c ON c.server_id = ?1 AND c.identity = j.value ->> 0",
        )
        .bind(id.get())
        .bind(secs(at))
        .bind(&rows)
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
    sqlx::query(
        "UPDATE servers SET total_rx = total_rx + ?2, total_tx = total_tx + ?3, last_sample_at = ?5, \
         polls_applied = polls_applied + 1, last_poll_at = ?4, last_success_at = ?4, last_error = NULL, \
         consecutive_failures = 0 WHERE id = ?1",
    )
    .bind(id.get())
    .bind(db_bytes(lifetime.rx))
    .bind(db_bytes(lifetime.tx))
    .bind(secs(at))
    .bind(at.timestamp_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn apply_wireguard(
    store: &SqliteStore,
    id: ServerId,
    poll: &WireguardPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.dump.peers.len(), ..PollOutcome::default() });
    };
    // One row holding every peer as JSON: row-by-row fetching of 10,000
    // peers costs more than the whole rest of the read.
    let text: String = sqlx::query_scalar(
        "SELECT COALESCE(json_group_array(json_array(c.id, c.identity, c.rx_counter, c.tx_counter, c.on_host, \
           c.last_seen_at, o.id)), '[]') \
         FROM clients c LEFT JOIN connections o ON o.client_id = c.id AND o.disconnected_at IS NULL \
         WHERE c.server_id = ?",
    )
    .bind(id.get())
    .fetch_one(&mut *tx)
    .await?;
    type Known = (i64, String, i64, i64, i64, Option<i64>, Option<i64>);
    let rows: Vec<Known> =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("reading peers: {e}")))?;
    let mut before = HashMap::with_capacity(rows.len());
    for (client_id, identity, rx, tx_, on_host, last_seen, open_session) in rows {
        before.insert(
            identity,
            PeerBefore {
                client_id,
                counters: Counters::new(bytes(rx), bytes(tx_)),
                on_host: on_host != 0,
                open_session,
                last_seen: opt_instant(last_seen)?,
            },
        );
    }
    let plan = plan_wireguard(&before, poll.dump, poll.at, first_poll);
    let outcome = write_wireguard(&mut tx, id, poll, &plan).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn write_wireguard(
    tx: &mut Tx,
    id: ServerId,
    poll: &WireguardPoll<'_>,
    plan: &WireguardPlan<'_>,
) -> Result<PollOutcome, StoreError> {
    let at = poll.at;
    let mut peers = Vec::with_capacity(plan.peers.len());
    let mut moved = Vec::new();
    let mut opens = Vec::new();
    let mut continues = Vec::new();
    let mut closes = Vec::new();
    for p in &plan.peers {
        let key = p.peer.public_key.to_string();
        let lifetime = p.delta.new.saturating_add(p.delta.carried);
        let allowed = p.peer.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        peers.push(json!([
            key,
            p.peer.endpoint.map(|e| e.to_string()),
            allowed,
            wireguard_virtual_ip(p.peer),
            i64::from(p.peer.has_preshared_key),
            p.peer.persistent_keepalive,
            p.peer.latest_handshake.map(secs),
            p.last_seen.map(secs),
            db_bytes(p.peer.rx.get()),
            db_bytes(p.peer.tx.get()),
            db_bytes(lifetime.rx),
            db_bytes(lifetime.tx),
        ]));
        if !p.delta.new.is_zero() {
            moved.push(json!([key, db_bytes(p.delta.new.rx), db_bytes(p.delta.new.tx)]));
        }
        let endpoint = p.peer.endpoint.map(|e| e.to_string());
        let (rx, tx_) = (db_bytes(p.delta.new.rx), db_bytes(p.delta.new.tx));
        match (p.session, p.open_session) {
            (SessionStep::Open { connected_at }, _) => opens.push(json!([
                key,
                secs(connected_at),
                p.last_seen.map(secs).unwrap_or_else(|| secs(connected_at)),
                endpoint,
                wireguard_virtual_ip(p.peer),
                rx,
                tx_
            ])),
            (SessionStep::Continue, Some(conn)) => {
                continues.push(json!([conn, rx, tx_, p.last_seen.map(secs), endpoint]))
            }
            (SessionStep::Close { disconnected_at }, Some(conn)) => {
                closes.push(json!([conn, secs(disconnected_at), rx, tx_]))
            }
            _ => {}
        }
    }
    for g in &plan.gone {
        if let (SessionStep::Close { disconnected_at }, Some(conn)) = (g.session, g.open_session) {
            closes.push(json!([conn, secs(disconnected_at), 0, 0]));
        }
    }

    if !peers.is_empty() {
        sqlx::query(
            "INSERT INTO clients (server_id, identity, endpoint, allowed_ips, virtual_ip, has_preshared_key, \
               persistent_keepalive, latest_handshake, last_seen_at, rx_counter, tx_counter, on_host, \
               total_rx, total_tx, first_seen_at, last_sync_at, managed, desired_allowed_ips) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
               j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, 1, j.value ->> 10, j.value ->> 11, \
               ?2, ?2, ?3, CASE WHEN ?3 THEN j.value ->> 2 END \
             FROM json_each(?4) AS j WHERE true \
             ON CONFLICT (server_id, identity) DO UPDATE SET \
               endpoint = COALESCE(excluded.endpoint, clients.endpoint), \
               allowed_ips = excluded.allowed_ips, virtual_ip = excluded.virtual_ip, \
               has_preshared_key = excluded.has_preshared_key, \
               persistent_keepalive = excluded.persistent_keepalive, \
               latest_handshake = COALESCE(excluded.latest_handshake, clients.latest_handshake), \
               last_seen_at = excluded.last_seen_at, \
               rx_counter = excluded.rx_counter, tx_counter = excluded.tx_counter, on_host = 1, \
               total_rx = clients.total_rx + excluded.total_rx, total_tx = clients.total_tx + excluded.total_tx, \
               last_sync_at = excluded.last_sync_at",
        )
        .bind(id.get())
        .bind(secs(at))
        .bind(poll.import)
        .bind(to_json(&peers)?)
        .execute(&mut **tx)
        .await?;
    }
    if !plan.gone.is_empty() {
        let ids: Vec<Value> = plan.gone.iter().map(|g| json!(g.client_id)).collect();
        sqlx::query("UPDATE clients SET on_host = 0 WHERE id IN (SELECT value FROM json_each(?))")
            .bind(to_json(&ids)?)
            .execute(&mut **tx)
            .await?;
    }
    if !opens.is_empty() {
        sqlx::query(
            "INSERT INTO connections (server_id, client_id, session_key, source, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, rx, tx) \
             SELECT ?1, c.id, 'wg:' || (j.value ->> 0), j.value ->> 0, ?2, j.value ->> 1, j.value ->> 2, \
               j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6 \
             FROM json_each(?3) AS j CROSS JOIN clients c ON c.server_id = ?1 AND c.identity = j.value ->> 0",
        )
        .bind(id.get())
        .bind(poll.protocol.as_str())
        .bind(to_json(&opens)?)
        .execute(&mut **tx)
        .await?;
    }
    update_sessions(tx, &continues, &closes).await?;
    add_traffic(tx, id, at, poll.month, &moved, plan.new, plan.carried).await?;
    Ok(PollOutcome {
        applied: true,
        sources: plan.peers.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opens.len(),
        sessions_closed: closes.len(),
    })
}

/// Adds traffic to open sessions (`[id, rx, tx, last_seen, endpoint]`) and
/// closes ended ones (`[id, disconnected_at, rx, tx]`).
async fn update_sessions(tx: &mut Tx, continues: &[Value], closes: &[Value]) -> Result<(), StoreError> {
    if !continues.is_empty() {
        sqlx::query(
            "UPDATE connections SET rx = rx + (j.value ->> 1), tx = tx + (j.value ->> 2), \
               last_seen_at = COALESCE(j.value ->> 3, last_seen_at), endpoint = COALESCE(j.value ->> 4, endpoint) \
             FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(to_json(continues)?)
        .execute(&mut **tx)
        .await?;
    }
    if !closes.is_empty() {
        sqlx::query(
            "UPDATE connections SET disconnected_at = MAX(j.value ->> 1, connected_at), \
               last_seen_at = MAX(last_seen_at, j.value ->> 1), \
               rx = rx + (j.value ->> 2), tx = tx + (j.value ->> 3) \
             FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(to_json(closes)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn apply_openvpn(
    store: &SqliteStore,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.status.sessions.len(), ..PollOutcome::default() });
    };
    let rows = sqlx::query(
        "SELECT id, source, rx_counter, tx_counter, last_seen_at FROM connections \
         WHERE server_id = ? AND disconnected_at IS NULL",
    )
    .bind(id.get())
    .fetch_all(&mut *tx)
    .await?;
    let mut before = HashMap::with_capacity(rows.len());
    for r in &rows {
        before.insert(
            r.try_get::<String, _>("source")?,
            SessionBefore {
                connection_id: r.try_get("id")?,
                counters: counters(r, "rx_counter", "tx_counter")?,
                last_seen: super::sqlite::instant(r.try_get("last_seen_at")?)?,
            },
        );
    }
    let plan = plan_openvpn(&before, poll.status, first_poll);
    let outcome = write_openvpn(&mut tx, id, poll, &plan).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn write_openvpn(
    tx: &mut Tx,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
    plan: &OpenvpnPlan<'_>,
) -> Result<PollOutcome, StoreError> {
    let at = secs(poll.at);
    let mut users = Vec::with_capacity(plan.users.len());
    let mut moved = Vec::new();
    for (cn, u) in &plan.users {
        let lifetime = u.delta.new.saturating_add(u.delta.carried);
        users.push(json!([cn, u.username, u.endpoint, u.virtual_ip, db_bytes(lifetime.rx), db_bytes(lifetime.tx)]));
        if !u.delta.new.is_zero() {
            moved.push(json!([cn, db_bytes(u.delta.new.rx), db_bytes(u.delta.new.tx)]));
        }
    }
    let names: Vec<Value> = plan.users.keys().map(|cn| json!(cn)).collect();
    if !users.is_empty() {
        sqlx::query(
            "INSERT INTO clients (server_id, identity, username, endpoint, virtual_ip, last_seen_at, on_host, \
               total_rx, total_tx, first_seen_at, last_sync_at) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, ?2, 1, \
               j.value ->> 4, j.value ->> 5, ?2, ?2 \
             FROM json_each(?3) AS j WHERE true \
             ON CONFLICT (server_id, identity) DO UPDATE SET \
               username = COALESCE(excluded.username, clients.username), \
               endpoint = COALESCE(excluded.endpoint, clients.endpoint), \
               virtual_ip = COALESCE(excluded.virtual_ip, clients.virtual_ip), \
               last_seen_at = excluded.last_seen_at, on_host = 1, \
               total_rx = clients.total_rx + excluded.total_rx, total_tx = clients.total_tx + excluded.total_tx, \
               last_sync_at = excluded.last_sync_at",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&users)?)
        .execute(&mut **tx)
        .await?;
    }
    // Users without a session in this poll are offline now.
    sqlx::query(
        "UPDATE clients SET on_host = 0 WHERE server_id = ?1 AND on_host = 1 \
         AND identity NOT IN (SELECT value FROM json_each(?2))",
    )
    .bind(id.get())
    .bind(to_json(&names)?)
    .execute(&mut **tx)
    .await?;

    let mut opens = Vec::new();
    let mut continues = Vec::new();
    for s in &plan.sessions {
        let session = s.session;
        let endpoint = session.real_address.clone();
        match s.connection_id {
            None => {
                // A session's own counters are exact: all of them are its bytes.
                let cid = session.client_id;
                opens.push(json!([
                    session.common_name,
                    s.source,
                    format!(
                        "ovpn:{}:{}",
                        id,
                        cid.map(|c| c.to_string()).unwrap_or_else(|| endpoint.clone().unwrap_or_default())
                    ),
                    session.connected_since.map(secs).unwrap_or(at).min(at),
                    endpoint,
                    session.virtual_address.or(session.virtual_ipv6).map(|ip| ip.to_string()),
                    db_bytes(session.counters.rx),
                    db_bytes(session.counters.tx),
                    cid.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
                ]));
            }
            Some(conn) => continues.push(json!([
                conn,
                db_bytes(s.delta.new.rx),
                db_bytes(s.delta.new.tx),
                db_bytes(session.counters.rx),
                db_bytes(session.counters.tx),
                endpoint
            ])),
        }
    }
    if !opens.is_empty() {
        sqlx::query(
            "INSERT INTO connections (server_id, client_id, source, session_key, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, rx, tx, rx_counter, tx_counter, openvpn_client_id) \
             SELECT ?1, c.id, j.value ->> 1, j.value ->> 2, 'openvpn', j.value ->> 3, ?2, j.value ->> 4, \
               j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 6, j.value ->> 7, j.value ->> 8 \
             FROM json_each(?3) AS j CROSS JOIN clients c ON c.server_id = ?1 AND c.identity = j.value ->> 0",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&opens)?)
        .execute(&mut **tx)
        .await?;
    }
    if !continues.is_empty() {
        sqlx::query(
            "UPDATE connections SET rx = rx + (j.value ->> 1), tx = tx + (j.value ->> 2), \
               rx_counter = j.value ->> 3, tx_counter = j.value ->> 4, last_seen_at = ?1, \
               endpoint = COALESCE(j.value ->> 5, endpoint) \
             FROM json_each(?2) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(at)
        .bind(to_json(&continues)?)
        .execute(&mut **tx)
        .await?;
    }
    let closes: Vec<Value> = plan.ended.iter().map(|(conn, last)| json!([conn, secs(*last), 0, 0])).collect();
    update_sessions(tx, &[], &closes).await?;
    add_traffic(tx, id, poll.at, poll.month, &moved, plan.new, plan.carried).await?;
    Ok(PollOutcome {
        applied: true,
        sources: plan.sessions.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opens.len(),
        sessions_closed: closes.len(),
    })
}
