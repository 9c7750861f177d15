//! Events pushed by the servers themselves (seed 004): a hook on the host
//! posts its full status (an OpenVPN status in any version, or a
//! `wg show dump`) with the server's token; it is applied exactly as a
//! poll (same accounting, so a repeated push adds nothing) in the server's
//! task, and an enforcement pass follows at once.

use super::{worker_error, Admin, Panel};
use crate::domain::ServerId;
use crate::error::AppError;
use crate::server::auth::{new_session_token, token_hash};
use crate::server::forward::{HostCall, HostReply};
use crate::server::poll::parse_reading;
use crate::server::poller::WorkerError;
use crate::server::store::{NewEvent, PollOutcome, Store, StoreError};
use chrono::Utc;

/// Gives `server` a new push token (the old one stops working), with an
/// event by `actor`, and returns it; only its hash is kept.
pub async fn issue_push_token(
    store: &dyn Store,
    server: ServerId,
    label: &str,
    actor: &str,
) -> Result<String, StoreError> {
    let (token, hash) = new_session_token();
    let event = NewEvent {
        at: Utc::now(),
        actor: actor.to_owned(),
        action: "push-token".to_owned(),
        reason: None,
        figures: None,
        client_id: None,
        user_id: None,
        server_id: Some(server),
        label: label.to_owned(),
    };
    store.set_push_token(server, &hash, &event).await?;
    Ok(token)
}

/// Compares two hashes in time that does not depend on where they differ.
fn same_hash(a: &[u8], b: &[u8; 32]) -> bool {
    a.len() == 32 && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Panel {
    /// Makes a new push token for the server (the old one stops working)
    /// and returns it; only its hash is kept.
    pub async fn create_push_token(&self, admin: &Admin, server: ServerId) -> Result<String, AppError> {
        let record = self.record(server).await?;
        let token =
            issue_push_token(self.store.as_ref(), server, record.name.as_str(), admin.username.as_str()).await?;
        tracing::info!(admin = %admin.username, server_id = %server, "push token created");
        Ok(token)
    }

    /// Applies a pushed status if `bearer` is the server's token.
    pub async fn push_events(
        &self,
        server: ServerId,
        bearer: Option<&str>,
        body: &str,
    ) -> Result<PollOutcome, AppError> {
        let known = self.store.push_token(server).await?;
        let valid = match (known, bearer) {
            (Some(known), Some(token)) => same_hash(&known, &token_hash(token)),
            _ => false,
        };
        if !valid {
            tracing::warn!(server_id = %server, "refused a push with a missing or wrong token");
            return Err(AppError::unauthorized());
        }
        let record = self.record(server).await?;
        let reading = parse_reading(record.protocol, body).map_err(|e| AppError::bad_request(e.to_string()))?;
        let outcome = match self.poller.push(server, reading).await {
            Err(WorkerError::NotRunning) => {
                let call = HostCall::Push { protocol: record.protocol, body: body.to_owned() };
                self.forward(server, call).await.and_then(HostReply::polled)
            }
            done => done,
        };
        outcome.map_err(worker_error)
    }
}
