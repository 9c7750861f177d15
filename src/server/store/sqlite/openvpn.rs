//! Applying an OpenVPN poll.

use super::ingest::{begin, current_state, finish, roll_month, sample, to_json, Tx};
use super::rows::{counters, db_bytes, instant, secs};
use super::SqliteStore;
use crate::domain::ingest::{plan_openvpn, OpenvpnPlan, SessionBefore};
use crate::domain::ServerId;
use crate::server::store::state::{ClientState, ServerState};
use crate::server::store::{OpenvpnPoll, PollOutcome, StoreError};
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

pub(super) async fn apply_openvpn(
    store: &SqliteStore,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.status.sessions.len(), ..PollOutcome::default() });
    };
    let mut state = current_state(&mut tx, id).await?;
    // Open sessions, and closed ones the poll reports again: by source, or
    // by exact start (a client whose address changed).
    let sources: Vec<String> = poll.status.sessions.iter().map(|s| s.source()).collect();
    let starts: Vec<i64> = poll
        .status
        .sessions
        .iter()
        .filter(|s| s.since_exact)
        .filter_map(|s| s.connected_since.map(|t| t.timestamp()))
        .collect();
    let rows = sqlx::query(
        "SELECT id, source, source_since, source_exact, openvpn_client_id, rx_counter, tx_counter, last_seen_at, \
           disconnected_at IS NULL AS open FROM connections \
         WHERE server_id = ?1 AND protocol = 'openvpn' \
           AND (disconnected_at IS NULL OR source IN (SELECT value FROM json_each(?2)) \
             OR (source_exact AND source_since IN (SELECT value FROM json_each(?3))))",
    )
    .bind(id.get())
    .bind(to_json(&sources)?)
    .bind(to_json(&starts)?)
    .fetch_all(&mut *tx)
    .await?;
    let mut before = Vec::with_capacity(rows.len());
    for r in &rows {
        before.push(SessionBefore {
            connection_id: r.try_get("id")?,
            source: r.try_get("source")?,
            since: r.try_get("source_since")?,
            since_exact: r.try_get("source_exact")?,
            client_id: r.try_get::<Option<i64>, _>("openvpn_client_id")?.and_then(|c| u64::try_from(c).ok()),
            counters: counters(r, "rx_counter", "tx_counter")?,
            last_seen: instant(r.try_get("last_seen_at")?)?,
            open: r.try_get("open")?,
        });
    }
    let plan = plan_openvpn(&before, poll.status, first_poll);
    let outcome = write_openvpn(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn write_openvpn(
    tx: &mut Tx,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
    plan: &OpenvpnPlan<'_>,
    state: &mut ServerState,
) -> Result<PollOutcome, StoreError> {
    let at = secs(poll.at);
    roll_month(tx, state, poll.month).await?;
    let users: Vec<Value> =
        plan.users.iter().map(|(cn, u)| json!([cn, u.username, u.endpoint, u.virtual_ip])).collect();
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(users.len());
    // A client that logs in with a username becomes a device of the user
    // whose email it is, or of the one user of that name, when the name is
    // first seen or changes: an owner the admin changed since stays.
    if !users.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO clients (server_id, identity, username, endpoint, virtual_ip, seed_last_seen_at, \
               seed_on_host, first_seen_at, seed_last_sync_at, user_id) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, ?2, 1, ?2, ?2, \
               COALESCE((SELECT u.id FROM users u WHERE u.email = j.value ->> 1 COLLATE NOCASE), \
                 (SELECT MIN(u.id) FROM users u WHERE u.name = j.value ->> 1 HAVING COUNT(*) = 1)) \
             FROM json_each(?3) AS j WHERE true \
             ON CONFLICT (server_id, identity) DO UPDATE SET \
               user_id = CASE WHEN excluded.username IS NOT NULL AND excluded.username IS NOT clients.username \
                 THEN COALESCE(excluded.user_id, clients.user_id) ELSE clients.user_id END, \
               username = COALESCE(excluded.username, clients.username), \
               endpoint = COALESCE(excluded.endpoint, clients.endpoint), \
               virtual_ip = COALESCE(excluded.virtual_ip, clients.virtual_ip) \
             RETURNING id, identity",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&users)?)
        .fetch_all(&mut **tx)
        .await?;
        let mut known: HashSet<i64> = state.clients.iter().map(|c| c.client_id).collect();
        for r in &rows {
            let client_id: i64 = r.try_get("id")?;
            let identity: String = r.try_get("identity")?;
            if known.insert(client_id) {
                state.clients.push(ClientState::new(client_id, identity.clone(), poll.month, at));
            }
            ids.insert(identity, client_id);
        }
    }
    // Users without a session in this poll are offline now.
    let mut samples = Vec::new();
    for c in &mut state.clients {
        match plan.users.get(&c.identity) {
            Some(u) => {
                c.count(u.delta);
                c.last_seen = Some(at);
                c.last_sync_at = at;
                c.on_host = true;
                if !u.delta.new.is_zero() {
                    samples.push(sample(c.client_id, u.delta.new));
                }
            }
            None => c.on_host = false,
        }
    }

    // Sessions that ended are closed first: a new session from the same
    // address may open in this very poll.
    if !plan.ended.is_empty() {
        let ended: Vec<[i64; 2]> = plan.ended.iter().map(|(conn, last)| [*conn, secs(*last)]).collect();
        sqlx::query(
            "UPDATE connections SET disconnected_at = MAX(j.value ->> 1, connected_at), \
               last_seen_at = MAX(last_seen_at, j.value ->> 1) \
             FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(to_json(&ended)?)
        .execute(&mut **tx)
        .await?;
    }
    let mut opens = Vec::new();
    let mut continues = Vec::new();
    for s in &plan.sessions {
        let session = s.session;
        let endpoint = session.real_address.clone();
        let since = session.connected_since.map(secs);
        match s.connection_id {
            None => {
                // A session's own counters are exact: all of them are its bytes.
                let cid = session.client_id;
                let Some(client) = ids.get(&session.common_name) else {
                    return Err(StoreError::Corrupt(format!("user {} has no client row", session.common_name)));
                };
                opens.push(json!([
                    client,
                    s.source,
                    format!(
                        "ovpn:{}:{}",
                        id,
                        cid.map(|c| c.to_string()).unwrap_or_else(|| endpoint.clone().unwrap_or_default())
                    ),
                    since.unwrap_or(at).min(at),
                    endpoint,
                    session.virtual_address.or(session.virtual_ipv6).map(|ip| ip.to_string()),
                    db_bytes(s.counters.rx),
                    db_bytes(s.counters.tx),
                    cid.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
                    since,
                    session.since_exact,
                ]));
            }
            Some(conn) => continues.push(json!([
                conn,
                db_bytes(s.delta.new.rx),
                db_bytes(s.delta.new.tx),
                db_bytes(s.counters.rx),
                db_bytes(s.counters.tx),
                endpoint,
                s.exact_since,
                s.exact_since.map(|t| t.min(at)),
                session.client_id.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
                s.moved_to,
            ])),
        }
    }
    if !opens.is_empty() {
        sqlx::query(
            "INSERT INTO connections (server_id, client_id, source, session_key, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, rx, tx, rx_counter, tx_counter, openvpn_client_id, \
               source_since, source_exact) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, 'openvpn', j.value ->> 3, ?2, j.value ->> 4, \
               j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 6, j.value ->> 7, j.value ->> 8, \
               j.value ->> 9, j.value ->> 10 \
             FROM json_each(?3) AS j",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&opens)?)
        .execute(&mut **tx)
        .await?;
    }
    // Continuing sessions, and closed ones read again with more bytes
    // (reopened): their growth only.
    if !continues.is_empty() {
        sqlx::query(
            "UPDATE connections SET rx = rx + (j.value ->> 1), tx = tx + (j.value ->> 2), \
               rx_counter = j.value ->> 3, tx_counter = j.value ->> 4, last_seen_at = MAX(last_seen_at, ?1), \
               endpoint = COALESCE(j.value ->> 5, endpoint), disconnected_at = NULL, \
               source_since = COALESCE(j.value ->> 6, source_since), \
               source_exact = source_exact OR (j.value ->> 6) IS NOT NULL, \
               connected_at = COALESCE(j.value ->> 7, connected_at), \
               openvpn_client_id = COALESCE(j.value ->> 8, openvpn_client_id), \
               source = COALESCE(j.value ->> 9, source) \
             FROM json_each(?2) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(at)
        .bind(to_json(&continues)?)
        .execute(&mut **tx)
        .await?;
    }
    let figures = finish(tx, id, poll.at, poll.month, &samples, plan.new, plan.carried, state).await?;
    Ok(PollOutcome {
        applied: true,
        figures: Some(figures),
        sources: plan.sessions.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opens.len(),
        sessions_closed: plan.ended.len(),
    })
}
