//! The event log.

use super::PostgresStore;
use crate::server::store::rows::secs;
use crate::server::store::shared::events::{event_from_row, INSERT_EVENT};
use crate::server::store::{EventFilter, EventRecord, NewEvent, StoreError};

/// Writes `event` inside a caller's transaction, with the change it records.
pub(super) async fn insert(tx: &mut super::Tx, event: &NewEvent) -> Result<(), StoreError> {
    sqlx::query(INSERT_EVENT)
        .bind(secs(event.at))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.reason)
        .bind(&event.figures)
        .bind(event.client_id.map(|c| c.get()))
        .bind(event.user_id.map(|u| u.get()))
        .bind(event.server_id.map(|s| s.get()))
        .bind(&event.label)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn record_event(store: &PostgresStore, event: &NewEvent) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn events(store: &PostgresStore, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, reason, figures, client_id, user_id, server_id, label FROM events \
         WHERE ($1::bigint IS NULL OR client_id = $1) AND ($2::bigint IS NULL OR server_id = $2) \
           AND ($3::text IS NULL OR action = $3) \
         ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(filter.client.map(|c| c.get()))
    .bind(filter.server.map(|s| s.get()))
    .bind(&filter.action)
    .bind(i64::from(filter.limit.clamp(1, 1000)))
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}
