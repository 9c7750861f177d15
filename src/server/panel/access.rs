//! Revoking and restoring clients: on the host first (the running interface
//! and its wg-quick file), then in the database, with an event.

use super::{client_view, poll_error, worker_error, Admin, Panel};
use crate::api::ClientView;
use crate::domain::policy::{judge_expiry, judge_traffic, may_restore, DisableReason};
use crate::domain::ClientId;
use crate::error::AppError;
use crate::server::enforce::period_usage;
use crate::server::peers::change_for;
use crate::server::store::{ClientRecord, NewEvent};
use chrono::Utc;

impl Panel {
    async fn client_record(&self, id: ClientId) -> Result<ClientRecord, AppError> {
        let month = self.month(Utc::now());
        self.store.client(id, &month).await?.ok_or_else(|| AppError::not_found("Client"))
    }

    fn access_event(
        &self,
        admin: &Admin,
        record: &ClientRecord,
        action: &str,
        reason: Option<DisableReason>,
    ) -> NewEvent {
        NewEvent {
            at: Utc::now(),
            actor: admin.username.to_string(),
            action: action.to_owned(),
            reason: reason.map(|r| r.as_str().to_owned()),
            figures: None,
            client_id: Some(record.id),
            user_id: record.user_id,
            server_id: Some(record.server_id),
            label: record.name.clone().unwrap_or_else(|| record.identity.clone()),
        }
    }

    /// Takes the peer off its host (interface and wg-quick file) and marks
    /// it disabled (`manual`). Repeating it is harmless.
    pub async fn revoke(&self, admin: &Admin, id: ClientId) -> Result<ClientView, AppError> {
        let record = self.client_record(id).await?;
        let change = change_for(&record, false).map_err(poll_error)?;
        self.poller.change_peer(record.server_id, change).await.map_err(worker_error)?;
        let reason = Some(DisableReason::Manual);
        self.store.set_client_access(id, reason, &self.access_event(admin, &record, "revoke", reason)).await?;
        tracing::info!(admin = %admin.username, client_id = %id, server_id = %record.server_id, action = "revoke", reason = "manual", "client revoked");
        Ok(client_view(&self.client_record(id).await?, Utc::now()))
    }

    /// Puts the peer back exactly as it was (allowed IPs, preshared key,
    /// keepalive) and marks it active. An expired client is refused until
    /// its expiry date moves.
    pub async fn restore(&self, admin: &Admin, id: ClientId) -> Result<ClientView, AppError> {
        let record = self.client_record(id).await?;
        let now = Utc::now();
        let (used, limit) = period_usage(&record, now, &self.config.timezone);
        let traffic = judge_traffic(used, limit, record.policy.traffic_warn_threshold);
        if let Err(refused) = may_restore(traffic, judge_expiry(record.policy.expiry_date, now)) {
            return Err(AppError::conflict(format!("Not restored: {refused}.")));
        }
        let change = change_for(&record, true).map_err(poll_error)?;
        self.poller.change_peer(record.server_id, change).await.map_err(worker_error)?;
        self.store.set_client_access(id, None, &self.access_event(admin, &record, "restore", None)).await?;
        tracing::info!(admin = %admin.username, client_id = %id, server_id = %record.server_id, action = "restore", "client restored");
        Ok(client_view(&self.client_record(id).await?, Utc::now()))
    }
}
