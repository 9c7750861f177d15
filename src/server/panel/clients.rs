//! Changing a client's name, owner and policy, and reading the event log.

use super::{client_view, event_view, Admin, Panel};
use crate::api::live::LiveEvent;
use crate::api::{ClientView, EventView};
use crate::domain::client_change::{parse_change, ClientPolicy};
use crate::domain::policy::LimitPeriod;
use crate::domain::{ByteCount, ClientId, ServerId, UserId};
use crate::error::AppError;
use crate::server::store::{ClientUpdate, EventFilter, NewEvent, StoreError};
use chrono::Utc;
use serde_json::{Map, Value};

/// The single-field endpoints of seed 002 (`/api/updatePeer…/{interface}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerField {
    TrafficLimit,
    ExpiryDate,
    WarningThreshold,
}

impl PeerField {
    /// The body's field, and the client field it sets.
    fn fields(self) -> (&'static str, &'static str) {
        match self {
            Self::TrafficLimit => ("traffic_limit", "traffic_limit"),
            Self::ExpiryDate => ("expiry_date", "expiry_date"),
            Self::WarningThreshold => ("threshold", "traffic_warn_threshold"),
        }
    }

    pub fn done(self) -> &'static str {
        match self {
            Self::TrafficLimit => "Traffic limit updated",
            Self::ExpiryDate => "Expiry date updated",
            Self::WarningThreshold => "Traffic warning threshold updated",
        }
    }
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map(|b| ByteCount::new(b).human()).unwrap_or_else(|| "none".to_owned())
}

fn period_text(p: &ClientPolicy) -> String {
    match p.limit_period {
        LimitPeriod::Lifetime => "lifetime".to_owned(),
        LimitPeriod::Monthly { reset_day } => format!("monthly from day {}", reset_day.get()),
    }
}

/// "traffic_limit none → 10.0 GB; expiry_date none → 2026-12-31T23:59:59Z".
fn describe(old: &ClientUpdate, new: &ClientUpdate) -> String {
    let mut parts = Vec::new();
    let mut diff = |field: &str, a: String, b: String| {
        if a != b {
            parts.push(format!("{field} {a} → {b}"));
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
    diff("name", opt(&old.name), opt(&new.name));
    diff("email", opt(&old.email), opt(&new.email));
    let user = |u: Option<UserId>| u.map(|u| u.to_string()).unwrap_or_else(|| "none".to_owned());
    diff("user_id", user(old.user_id), user(new.user_id));
    diff("traffic_limit", limit_text(old.policy.traffic_limit), limit_text(new.policy.traffic_limit));
    diff(
        "traffic_warn_threshold",
        format!("{} %", old.policy.traffic_warn_threshold.get()),
        format!("{} %", new.policy.traffic_warn_threshold.get()),
    );
    diff("limit_period", period_text(&old.policy), period_text(&new.policy));
    let when = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "none".to_owned());
    diff("expiry_date", when(old.policy.expiry_date), when(new.policy.expiry_date));
    if old.note != new.note {
        parts.push(if new.note.is_some() { "note changed" } else { "note removed" }.to_owned());
    }
    if parts.is_empty() {
        "no change".to_owned()
    } else {
        parts.join("; ")
    }
}

impl Panel {
    /// Applies a `PATCH /api/clients/{id}` body: every field checked first,
    /// then one write with its event.
    pub async fn update_client(
        &self,
        admin: &Admin,
        id: ClientId,
        body: &Map<String, Value>,
    ) -> Result<ClientView, AppError> {
        let now = Utc::now();
        let month = self.month(now);
        let record = self.store.client(id, &month).await?.ok_or_else(|| AppError::not_found("Client"))?;
        let change = parse_change(body, &self.config.timezone).map_err(|e| AppError::bad_request(e.to_string()))?;
        let policy = change.apply(&record.policy).map_err(|e| AppError::bad_request(e.to_string()))?;
        let old = ClientUpdate::of(&record);
        let new = ClientUpdate {
            name: change.name.clone().unwrap_or_else(|| old.name.clone()),
            email: change.email.clone().unwrap_or_else(|| old.email.clone()),
            note: change.note.clone().unwrap_or_else(|| old.note.clone()),
            user_id: change.user_id.map(|u| u.map(UserId::new)).unwrap_or(old.user_id),
            policy,
        };
        let figures = describe(&old, &new);
        let event = NewEvent {
            at: now,
            actor: admin.username.to_string(),
            action: "update".to_owned(),
            reason: None,
            figures: Some(figures.clone()),
            client_id: Some(id),
            user_id: new.user_id,
            server_id: Some(record.server_id),
            label: record.label(),
        };
        match self.store.update_client(id, &new, &event).await {
            Ok(()) => {}
            Err(StoreError::NotFound("user")) => return Err(AppError::bad_request("user_id: there is no such user")),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(admin = %admin.username, client_id = %id, server_id = %record.server_id, action = "update", %figures, "client updated");
        self.announce(LiveEvent::ClientChanged { server: record.server_id, client: id });
        let updated = self.store.client(id, &month).await?.ok_or_else(|| AppError::not_found("Client"))?;
        Ok(client_view(&updated, now, &self.config.timezone))
    }

    /// Seed 002's `POST /api/updatePeer…/{interface}` with
    /// `{"id": public key, field: value}`: the peer is found by key and
    /// interface; on several servers, `server` must say which.
    pub async fn update_peer_field(
        &self,
        admin: &Admin,
        interface: &str,
        server: Option<ServerId>,
        field: PeerField,
        body: &Map<String, Value>,
    ) -> Result<ClientView, AppError> {
        let (from, to) = field.fields();
        if let Some(unknown) = body.keys().find(|k| *k != "id" && *k != from) {
            return Err(AppError::bad_request(format!("{unknown}: unknown field; give \"id\" and \"{from}\"")));
        }
        let key = body
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| AppError::bad_request("id: the peer's public key is required"))?;
        let value =
            body.get(from).ok_or_else(|| AppError::bad_request(format!("{from}: required (null clears it)")))?;
        let found = self.store.clients_by_identity(key.trim(), interface, server).await?;
        let id = match found.as_slice() {
            [] => return Err(AppError::not_found("Peer")),
            [(id, _)] => *id,
            many => {
                let servers: Vec<String> = many.iter().map(|(_, s)| s.to_string()).collect();
                return Err(AppError::conflict(format!(
                    "This key is a peer of {interface} on servers {}; add ?server=ID to say which.",
                    servers.join(", ")
                )));
            }
        };
        let mut change = Map::new();
        change.insert(to.to_owned(), value.clone());
        self.update_client(admin, id, &change).await
    }

    pub async fn events(&self, filter: EventFilter) -> Result<Vec<EventView>, AppError> {
        Ok(self.store.events(&filter).await?.iter().map(event_view).collect())
    }
}
