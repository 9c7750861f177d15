//! Applying a WireGuard or AmneziaWG poll.

use super::ingest::{begin, finish, poll_state, roll_month, to_json, Tx};
use super::SqliteStore;
use crate::domain::ingest::WireguardPlan;
use crate::domain::ServerId;
use crate::server::store::rows::secs;
use crate::server::store::shared::wg_rows::{apply_plan, fresh_rows, plan_poll};
use crate::server::store::state::ServerState;
use crate::server::store::{PollOutcome, StoreError, WireguardPoll};
use serde_json::Value;
use sqlx::Row;

pub(super) async fn apply_wireguard(
    store: &SqliteStore,
    id: ServerId,
    poll: &WireguardPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at, poll.fence).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.dump.peers.len(), ..PollOutcome::default() });
    };
    let mut state = poll_state(store, &mut tx, id).await?;
    let plan = plan_poll(&state, poll.dump, poll.at, first_poll)?;
    let outcome = write_wireguard(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    store.states.keep(id, state);
    Ok(outcome)
}

/// Writes the planned poll: new peers' rows, sessions closed and opened,
/// changed attributes, and what every protocol shares ([`finish`]).
async fn write_wireguard(
    tx: &mut Tx,
    id: ServerId,
    poll: &WireguardPoll<'_>,
    plan: &WireguardPlan<'_>,
    state: &mut ServerState,
) -> Result<PollOutcome, StoreError> {
    let at = secs(poll.at);
    roll_month(tx, state, poll.month).await?;

    // New peers get a row first: everything else refers to its id.
    let fresh = fresh_rows(plan);
    let mut fresh_ids = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO clients (server_id, identity, endpoint, allowed_ips, virtual_ip, has_preshared_key, \
               persistent_keepalive, seed_on_host, first_seen_at, seed_last_sync_at, managed, desired_allowed_ips) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
               1, ?2, ?2, ?3, CASE WHEN ?3 THEN j.value ->> 2 END \
             FROM json_each(?4) AS j RETURNING id, identity",
        )
        .bind(id.get())
        .bind(at)
        .bind(poll.import)
        .bind(to_json(&fresh)?)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            fresh_ids.push((r.try_get::<i64, _>("id")?, r.try_get::<String, _>("identity")?));
        }
    }
    let writes = apply_plan(plan, poll.month, at, state, fresh_ids)?;
    let (changed, opens, closes) = (&writes.changed, &writes.opens, &writes.closes);

    // Sessions end with the endpoint the client had before this poll.
    close_sessions(tx, closes).await?;
    if !changed.is_empty() {
        sqlx::query(
            "UPDATE clients SET endpoint = COALESCE(j.value ->> 1, endpoint), allowed_ips = j.value ->> 2, virtual_ip = j.value ->> 3, \
               has_preshared_key = j.value ->> 4, persistent_keepalive = j.value ->> 5 \
             FROM json_each(?) AS j WHERE clients.id = j.value ->> 0",
        )
        .bind(to_json(changed)?)
        .execute(&mut **tx)
        .await?;
    }
    if !opens.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO connections (server_id, client_id, session_key, source, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, base_rx, base_tx) \
             SELECT ?1, j.value ->> 0, 'wg:' || (j.value ->> 1), j.value ->> 1, ?2, j.value ->> 2, j.value ->> 3, \
               j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7 \
             FROM json_each(?3) AS j RETURNING id, client_id",
        )
        .bind(id.get())
        .bind(poll.protocol.as_str())
        .bind(to_json(opens)?)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            writes.opened(state, r.try_get("client_id")?, r.try_get("id")?);
        }
    }
    let figures = finish(tx, id, poll.at, poll.month, &writes.samples, plan.new, plan.carried, state).await?;
    Ok(writes.outcome(plan, figures))
}

/// Closes WireGuard sessions (rows from [`apply_plan`]): the bytes are frozen
/// as the client's total minus the session's base.
async fn close_sessions(tx: &mut Tx, closes: &[Value]) -> Result<(), StoreError> {
    if closes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE connections SET disconnected_at = MAX(j.value ->> 1, connected_at), \
           last_seen_at = MAX(last_seen_at, COALESCE(j.value ->> 4, last_seen_at), j.value ->> 1), \
           rx = MAX((j.value ->> 2) - COALESCE(base_rx, 0), 0), tx = MAX((j.value ->> 3) - COALESCE(base_tx, 0), 0), \
           endpoint = COALESCE((SELECT c.endpoint FROM clients c WHERE c.id = connections.client_id), endpoint) \
         FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
    )
    .bind(to_json(closes)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
