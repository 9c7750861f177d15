//! Applying an OpenVPN poll.

use super::ingest::{begin, finish, poll_state, roll_month, to_json};
use super::{PostgresStore, Tx};
use crate::domain::ingest::{plan_openvpn, OpenvpnPlan};
use crate::domain::ServerId;
use crate::server::store::rows::secs;
use crate::server::store::shared::ovpn_rows::{
    apply_users, ended_rows, poll_outcome, session_before, session_keys, session_rows, user_rows,
};
use crate::server::store::state::ServerState;
use crate::server::store::{OpenvpnPoll, PollOutcome, StoreError};
use sqlx::Row;

pub(super) async fn apply_openvpn(
    store: &PostgresStore,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at, poll.fence).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.status.sessions.len(), ..PollOutcome::default() });
    };
    let mut state = poll_state(store, &mut tx, id).await?;
    // Open sessions, and closed ones the poll reports again: by source, or
    // by exact start (a client whose address changed).
    let (sources, starts) = session_keys(poll.status);
    let rows = sqlx::query(
        "SELECT id, source, source_since, source_exact, openvpn_client_id, rx_counter, tx_counter, last_seen_at, \
           disconnected_at IS NULL AS open FROM connections \
         WHERE server_id = $1 AND protocol = 'openvpn' \
           AND (disconnected_at IS NULL \
             OR source IN (SELECT value FROM jsonb_array_elements_text($2::jsonb)) \
             OR (source_exact AND source_since IN \
               (SELECT value::bigint FROM jsonb_array_elements_text($3::jsonb))))",
    )
    .bind(id.get())
    .bind(to_json(&sources)?)
    .bind(to_json(&starts)?)
    .fetch_all(&mut *tx)
    .await?;
    let before = rows.iter().map(session_before).collect::<Result<Vec<_>, _>>()?;
    let plan = plan_openvpn(&before, poll.status, first_poll);
    let outcome = write_openvpn(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    store.states.keep(id, state);
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
    let users = user_rows(plan);
    let mut user_ids = Vec::with_capacity(users.len());
    // A client that logs in with a username becomes a device of the user
    // whose email it is (case-insensitively, as `users_by_email` is unique),
    // or of the one user of that name, when the name is first seen or
    // changes: an owner the admin changed since stays.
    if !users.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO clients (server_id, identity, username, endpoint, virtual_ip, seed_last_seen_at, \
               seed_on_host, first_seen_at, seed_last_sync_at, user_id) \
             SELECT $1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, $2, TRUE, $2, $2, \
               COALESCE((SELECT u.id FROM users u WHERE lower(u.email COLLATE \"C\") = lower((j.value ->> 1) COLLATE \"C\")), \
                 (SELECT MIN(u.id) FROM users u WHERE u.name = j.value ->> 1 HAVING COUNT(*) = 1)) \
             FROM jsonb_array_elements($3::jsonb) AS j(value) \
             ON CONFLICT (server_id, identity) DO UPDATE SET \
               user_id = CASE WHEN EXCLUDED.username IS NOT NULL \
                   AND EXCLUDED.username IS DISTINCT FROM clients.username \
                 THEN COALESCE(EXCLUDED.user_id, clients.user_id) ELSE clients.user_id END, \
               username = COALESCE(EXCLUDED.username, clients.username), \
               endpoint = COALESCE(EXCLUDED.endpoint, clients.endpoint), \
               virtual_ip = COALESCE(EXCLUDED.virtual_ip, clients.virtual_ip) \
             RETURNING id, identity",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&users)?)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            user_ids.push((r.try_get::<i64, _>("id")?, r.try_get::<String, _>("identity")?));
        }
    }
    // Users without a session in this poll are offline now.
    let (ids, samples) = apply_users(plan, poll.month, at, state, user_ids);

    // Sessions that ended are closed first: a new session from the same
    // address may open in this very poll.
    if !plan.ended.is_empty() {
        let ended = ended_rows(plan);
        sqlx::query(
            "UPDATE connections SET disconnected_at = GREATEST((j.value ->> 1)::bigint, connections.connected_at), \
               last_seen_at = GREATEST(connections.last_seen_at, (j.value ->> 1)::bigint) \
             FROM jsonb_array_elements($1::jsonb) AS j(value) WHERE connections.id = (j.value ->> 0)::bigint",
        )
        .bind(to_json(&ended)?)
        .execute(&mut **tx)
        .await?;
    }
    let (opens, continues) = session_rows(id, plan, at, &ids)?;
    if !opens.is_empty() {
        // `source_exact` is a JSON boolean: `->>` gives 'true' or 'false'.
        sqlx::query(
            "INSERT INTO connections (server_id, client_id, source, session_key, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, rx, tx, rx_counter, tx_counter, openvpn_client_id, \
               source_since, source_exact) \
             SELECT $1, (j.value ->> 0)::bigint, j.value ->> 1, j.value ->> 2, 'openvpn', (j.value ->> 3)::bigint, \
               $2, j.value ->> 4, j.value ->> 5, (j.value ->> 6)::bigint, (j.value ->> 7)::bigint, \
               (j.value ->> 6)::bigint, (j.value ->> 7)::bigint, (j.value ->> 8)::bigint, \
               (j.value ->> 9)::bigint, (j.value ->> 10)::boolean \
             FROM jsonb_array_elements($3::jsonb) AS j(value)",
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
            "UPDATE connections SET rx = connections.rx + (j.value ->> 1)::bigint, \
               tx = connections.tx + (j.value ->> 2)::bigint, \
               rx_counter = (j.value ->> 3)::bigint, tx_counter = (j.value ->> 4)::bigint, \
               last_seen_at = GREATEST(connections.last_seen_at, $1), \
               endpoint = COALESCE(j.value ->> 5, connections.endpoint), disconnected_at = NULL, \
               source_since = COALESCE((j.value ->> 6)::bigint, connections.source_since), \
               source_exact = connections.source_exact OR (j.value ->> 6) IS NOT NULL, \
               connected_at = COALESCE((j.value ->> 7)::bigint, connections.connected_at), \
               openvpn_client_id = COALESCE((j.value ->> 8)::bigint, connections.openvpn_client_id), \
               source = COALESCE(j.value ->> 9, connections.source) \
             FROM jsonb_array_elements($2::jsonb) AS j(value) WHERE connections.id = (j.value ->> 0)::bigint",
        )
        .bind(at)
        .bind(to_json(&continues)?)
        .execute(&mut **tx)
        .await?;
    }
    let figures = finish(tx, id, poll.at, poll.month, &samples, plan.new, plan.carried, state).await?;
    Ok(poll_outcome(plan, opens.len(), figures))
}
