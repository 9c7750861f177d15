//! Revoking and restoring clients: the wanted access in the database first
//! (pending, with an event), then on the host by the server's task, then
//! confirmed; a host that cannot be reached gets the change when it answers.

use super::{client_view, Admin, Panel};
use crate::api::live::LiveEvent;
use crate::api::ClientView;
use crate::domain::policy::DisableReason;
use crate::domain::ClientId;
use crate::error::AppError;
use crate::server::enforce::restore_refusal;
use crate::server::forward::{HostCall, HostReply};
use crate::server::poll::PollError;
use crate::server::poller::WorkerError;
use crate::server::reconcile::can_block;
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
            reason: reason.map(|r| r.as_str().to_owned()),
            ..NewEvent::about(record, Utc::now(), admin.username.as_str(), action)
        }
    }

    /// Writes the client's new access (pending, with its event), then has
    /// the server's task carry it out on the host. When the host cannot be
    /// reached the change stays pending and the task applies it on its next
    /// pass; the returned cause says why it is not done yet.
    async fn change_access(
        &self,
        admin: &Admin,
        record: &ClientRecord,
        action: &str,
        reason: Option<DisableReason>,
    ) -> Result<(ClientView, Option<String>), AppError> {
        let server = self.store.server(record.server_id, Utc::now(), "").await?;
        let server = server.ok_or_else(|| AppError::not_found("Server"))?;
        if !can_block(&server) {
            return Err(AppError::conflict(
                "This OpenVPN server has no client_config_dir set, so its clients cannot be refused.",
            ));
        }
        // A change the host could never take is refused before it is written.
        crate::server::peers::change_for(record, reason.is_none()).map_err(super::poll_error)?;
        if record.protocol == crate::domain::Protocol::Openvpn {
            crate::domain::ccd::ccd_file_name(&record.identity).map_err(|e| AppError::conflict(e.to_string()))?;
        }
        let event = self.access_event(admin, record, action, reason);
        self.store.set_client_access(record.id, reason, &event).await?;
        self.announce(LiveEvent::ClientChanged { server: record.server_id, client: record.id });
        let reason_text = reason.map(|r| r.as_str()).unwrap_or("");
        let call = HostCall::CarryOut { client: record.id };
        let pending = match self.on_host(record.server_id, call).await.and_then(HostReply::applied) {
            Ok(_) => None,
            Err(WorkerError::Poll(PollError::Internal(e))) => return Err(AppError::internal(e)),
            Err(e) => Some(e.to_string()),
        };
        match &pending {
            None => {
                tracing::info!(admin = %admin.username, client_id = %record.id, server_id = %record.server_id, action, reason = reason_text, "client access changed")
            }
            Some(cause) => {
                tracing::warn!(admin = %admin.username, client_id = %record.id, server_id = %record.server_id, action, reason = reason_text, %cause, "client access change queued until the host answers")
            }
        }
        Ok((client_view(&self.client_record(record.id).await?, Utc::now(), &self.config.timezone), pending))
    }

    /// Takes the client off its host (a WireGuard peer from the interface
    /// and its wg-quick file; an OpenVPN common name refused and its
    /// sessions ended) and marks it disabled (`manual`). Repeating it is
    /// harmless.
    pub async fn revoke(&self, admin: &Admin, id: ClientId) -> Result<(ClientView, Option<String>), AppError> {
        let record = self.client_record(id).await?;
        self.change_access(admin, &record, "revoke", Some(DisableReason::Manual)).await
    }

    /// Puts the client back exactly as it was (allowed IPs, preshared key,
    /// keepalive) and marks it active. An expired client, or one still over
    /// its limit, is refused until its policy changes.
    pub async fn restore(&self, admin: &Admin, id: ClientId) -> Result<(ClientView, Option<String>), AppError> {
        let record = self.client_record(id).await?;
        if let Err(refused) = restore_refusal(&record, Utc::now(), &self.config.timezone) {
            return Err(AppError::conflict(format!("Not restored: {refused}.")));
        }
        self.change_access(admin, &record, "restore", None).await
    }

    /// Deletes a client: taken off its host for good (a WireGuard peer
    /// leaves the interface and its file; an OpenVPN common name stays
    /// refused), then its record goes, its usage history kept unless
    /// `keep_history` is false. An unreachable host deletes nothing.
    pub async fn delete_client(&self, admin: &Admin, id: ClientId, keep_history: bool) -> Result<(), AppError> {
        let record = self.client_record(id).await?;
        let server = self.store.server(record.server_id, Utc::now(), "").await?;
        if server.as_ref().is_some_and(|s| !can_block(s)) {
            return Err(AppError::conflict(
                "This OpenVPN server has no client_config_dir set, so a deleted client could not be refused.",
            ));
        }
        let call = HostCall::Remove { client: id };
        self.on_host(record.server_id, call).await.and_then(HostReply::applied).map_err(super::worker_error)?;
        let mut event = self.access_event(admin, &record, "delete", None);
        event.figures = Some(if keep_history { "usage history kept" } else { "usage history removed" }.to_owned());
        self.store.delete_client(id, keep_history, &event).await?;
        self.announce(LiveEvent::ClientChanged { server: record.server_id, client: id });
        tracing::info!(admin = %admin.username, client_id = %id, server_id = %record.server_id, action = "delete", keep_history, "client deleted");
        Ok(())
    }
}
