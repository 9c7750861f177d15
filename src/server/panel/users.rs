//! Users: create, change, delete, and whether one may connect a device.

use super::{Admin, Panel};
use crate::api::live::LiveEvent;
use crate::api::UserView;
use crate::domain::users::{can_connect, parse_user};
use crate::domain::UserId;
use crate::error::AppError;
use crate::server::store::{NewEvent, UserFields, UserRecord};
use chrono::Utc;
use serde_json::{Map, Value};

fn event(admin: &Admin, action: &str, id: Option<UserId>, user: &UserFields) -> NewEvent {
    let limit = match user.max_connections {
        0 => "no device limit".to_owned(),
        n => format!("{n} devices at most"),
    };
    NewEvent {
        at: Utc::now(),
        actor: admin.username.to_string(),
        action: action.to_owned(),
        reason: None,
        figures: Some(limit),
        client_id: None,
        user_id: id,
        server_id: None,
        label: user.name.clone(),
    }
}

/// A user as shown, with `active` live sessions.
fn user_view(record: UserRecord, active: usize) -> UserView {
    UserView {
        id: record.id.get(),
        name: record.name,
        email: record.email,
        max_connections: record.max_connections,
        created_at: record.created_at,
        clients: record.clients.iter().map(|c| c.get()).collect(),
        active: u32::try_from(active).unwrap_or(u32::MAX),
        last_seen: record.last_seen,
    }
}

impl Panel {
    /// Every user, with their live sessions counted in one read.
    pub async fn users(&self) -> Result<Vec<UserView>, AppError> {
        let records = self.store.users().await?;
        let ids: Vec<UserId> = records.iter().map(|r| r.id).collect();
        let live = self.store.live_sessions_of(&ids, Utc::now()).await?;
        Ok(records
            .into_iter()
            .map(|r| {
                let active = live.get(&r.id).map_or(0, Vec::len);
                user_view(r, active)
            })
            .collect())
    }

    pub async fn user(&self, id: UserId) -> Result<UserView, AppError> {
        let record = self.store.user(id).await?.ok_or_else(|| AppError::not_found("User"))?;
        let active = self.store.live_sessions(id, Utc::now()).await?.len();
        Ok(user_view(record, active))
    }

    pub async fn create_user(&self, admin: &Admin, body: &Map<String, Value>) -> Result<UserView, AppError> {
        let change = parse_user(body, true).map_err(|e| AppError::bad_request(e.to_string()))?;
        let fields = UserFields {
            name: change.name.unwrap_or_default(),
            email: change.email.flatten(),
            max_connections: change.max_connections.unwrap_or(0),
        };
        let id = self.store.create_user(&fields, &event(admin, "create_user", None, &fields)).await?;
        tracing::info!(admin = %admin.username, user_id = %id, action = "create_user", "user created");
        self.announce(LiveEvent::UserChanged { user: id });
        self.user(id).await
    }

    pub async fn update_user(
        &self,
        admin: &Admin,
        id: UserId,
        body: &Map<String, Value>,
    ) -> Result<UserView, AppError> {
        let record = self.store.user(id).await?.ok_or_else(|| AppError::not_found("User"))?;
        let change = parse_user(body, false).map_err(|e| AppError::bad_request(e.to_string()))?;
        let fields = UserFields {
            name: change.name.unwrap_or(record.name),
            email: change.email.unwrap_or(record.email),
            max_connections: change.max_connections.unwrap_or(record.max_connections),
        };
        self.store.update_user(id, &fields, &event(admin, "update_user", Some(id), &fields)).await?;
        tracing::info!(admin = %admin.username, user_id = %id, action = "update_user", "user updated");
        self.announce(LiveEvent::UserChanged { user: id });
        self.user(id).await
    }

    pub async fn delete_user(&self, admin: &Admin, id: UserId) -> Result<(), AppError> {
        let record = self.store.user(id).await?.ok_or_else(|| AppError::not_found("User"))?;
        let fields = UserFields { name: record.name, email: record.email, max_connections: record.max_connections };
        self.store.delete_user(id, &event(admin, "delete_user", Some(id), &fields)).await?;
        tracing::info!(admin = %admin.username, user_id = %id, action = "delete_user", "user deleted");
        self.announce(LiveEvent::UserChanged { user: id });
        Ok(())
    }

    /// `(can_connect, active, max)`.
    pub async fn can_connect(&self, id: UserId) -> Result<(bool, u32, u32), AppError> {
        let record = self.store.user(id).await?.ok_or_else(|| AppError::not_found("User"))?;
        let active = u32::try_from(self.store.live_sessions(id, Utc::now()).await?.len()).unwrap_or(u32::MAX);
        Ok((can_connect(active, record.max_connections), active, record.max_connections))
    }
}
