//! The event log's rows, the same on every backend.

use crate::domain::{ClientId, ServerId, UserId};
use crate::server::store::rows::{instant, Columns};
use crate::server::store::{EventRecord, NewEvent, StoreError};

/// Writes one event; binds `at` (Unix seconds), `actor`, `action`, `reason`,
/// `figures`, `client_id`, `user_id`, `server_id`, `label` in that order.
/// Numbered `$N` placeholders, which SQLite takes as well.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (at, actor, action, reason, figures, client_id, user_id, server_id, label) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// An event from a row of `id, at, actor, action, reason, figures,
/// client_id, user_id, server_id, label`.
pub(crate) fn event_from_row(row: &impl Columns) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        id: row.int("id")?,
        event: NewEvent {
            at: instant(row.int("at")?)?,
            actor: row.text("actor")?,
            action: row.text("action")?,
            reason: row.opt_text("reason")?,
            figures: row.opt_text("figures")?,
            client_id: row.opt_int("client_id")?.map(ClientId::new),
            user_id: row.opt_int("user_id")?.map(UserId::new),
            server_id: row.opt_int("server_id")?.map(ServerId::new),
            label: row.text("label")?,
        },
    })
}
