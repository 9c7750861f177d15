//! Peers the panel generated: their rows and sealed keys.

use super::PostgresStore;
use crate::domain::ClientId;
use crate::domain::Secret;
use crate::domain::ServerId;
use crate::server::store::rows::{is_unique_violation, secs, Columns};
use crate::server::store::shared::clients::config_aad as aad;
use crate::server::store::{GeneratedClient, NewEvent, StoreError};

pub(super) async fn insert_generated_client(
    store: &PostgresStore,
    server: ServerId,
    client: &GeneratedClient,
    event: &NewEvent,
) -> Result<ClientId, StoreError> {
    // Refused before anything is written when there is no key.
    store.sealer()?;
    let mut tx = store.begin_write().await?;
    let address = client.address.to_string();
    let at = secs(client.at);
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO clients (server_id, identity, name, email, user_id, allowed_ips, managed, desired_allowed_ips, \
           has_preshared_key, seed_on_host, first_seen_at, seed_last_sync_at) \
         VALUES ($1, $2, $3, $4, $5, $6, TRUE, $6, TRUE, TRUE, $7, $7) RETURNING id",
    )
    .bind(server.get())
    .bind(client.public_key.to_string())
    .bind(&client.name)
    .bind(&client.email)
    .bind(client.user_id.map(|u| u.get()))
    .bind(&address)
    .bind(at)
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict("a peer with this public key exists on this server".into()))
        }
        Err(e) => return Err(e.into()),
    };
    sqlx::query("UPDATE clients SET client_config_sealed = $1 WHERE id = $2")
        .bind(store.seal(&aad(id), client.config.expose())?)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut event = event.clone();
    event.client_id = Some(ClientId::new(id));
    super::events::insert(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(ClientId::new(id))
}

pub(super) async fn client_config(store: &PostgresStore, id: ClientId) -> Result<Option<Secret>, StoreError> {
    let row = sqlx::query("SELECT client_config_sealed FROM clients WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&store.pool)
        .await?;
    let Some(row) = row else { return Err(StoreError::NotFound("client")) };
    let sealed = row.opt_text("client_config_sealed")?;
    sealed.map(|c| store.unseal(&aad(id.get()), &c)).transpose()
}

pub(super) async fn has_client_config(store: &PostgresStore, id: ClientId) -> Result<bool, StoreError> {
    let has: Option<bool> = sqlx::query_scalar("SELECT client_config_sealed IS NOT NULL FROM clients WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&store.pool)
        .await?;
    Ok(has.unwrap_or(false))
}
