//! A page of a server's clients without decoding every row: one aggregate
//! row holds what filtering and sorting need of each client (as JSON,
//! built by the database), the server's state adds the live figures, the
//! domain picks the page, and only its rows are read in full.

use crate::domain::accounting::Counters;
use crate::domain::listing::{select, ClientFacts, ClientQuery, Selection};
use crate::domain::{ConnectionStatus, Protocol};
use crate::server::store::rows::{corrupt, opt_instant, Columns};
use crate::server::store::shared::clients::client_from_row;
use crate::server::store::state::{ClientState, ServerState};
use crate::server::store::{ClientPage, StoreError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;

/// The columns of one client in the aggregate, in [`IndexRow`]'s order;
/// `$1` is the month. Each backend wraps them in its JSON array builder.
pub(crate) const INDEX_COLUMNS: &str = "c.id, c.name, c.identity, c.virtual_ip, c.email, c.username, c.access, \
    c.pending, c.managed, c.seed_on_host, c.seed_latest_handshake, c.seed_last_seen_at, c.seed_total_rx, \
    c.seed_total_tx, COALESCE(m.rx, 0), COALESCE(m.tx, 0)";

/// What follows the aggregate: the server's live clients and their month.
pub(crate) const INDEX_FROM: &str = "FROM clients c LEFT JOIN usage_monthly m ON m.client_id = c.id AND m.month = $1 \
    WHERE c.server_id = $2 AND c.deleted_at IS NULL";

/// A flag: SQLite's 0/1 or PostgreSQL's boolean.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    /// Read in place: an `untagged` enum would buffer every value and try
    /// each form in turn, a third of the listing's time at 10,000 clients.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl serde::de::Visitor<'_> for FlagVisitor {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, or 0 or 1")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Flag, E> {
                Ok(Flag(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Flag, E> {
                Ok(Flag(i != 0))
            }
            fn visit_u64<E>(self, i: u64) -> Result<Flag, E> {
                Ok(Flag(i != 0))
            }
        }
        d.deserialize_any(FlagVisitor)
    }
}

type IndexRow = (
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Flag,
    Flag,
    Flag,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
);

fn bytes(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One listing of a server's clients: the page its query picked, and the
/// server's live figures by client, found once for both steps.
pub(crate) struct Listing<'s> {
    live: HashMap<i64, &'s ClientState>,
    pub selection: Selection,
}

impl<'s> Listing<'s> {
    /// The page `query` picks of the aggregate `json` (an array of
    /// [`INDEX_COLUMNS`] arrays) with the live figures of `state`, at `now`.
    pub(crate) fn new(
        json: &str,
        state: &'s ServerState,
        protocol: Protocol,
        month: &str,
        query: &ClientQuery,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let live = state.clients.iter().map(|c| (c.client_id, c)).collect();
        let selection = select(client_facts(json, &live, protocol, month, now)?, query);
        Ok(Self { live, selection })
    }

    /// The page from its full rows (of `CLIENT_COLUMNS`, in any order).
    pub(crate) fn page(self, rows: &[impl Columns], month: &str) -> Result<ClientPage, StoreError> {
        let mut by_id = HashMap::with_capacity(rows.len());
        for row in rows {
            let id = row.int("id")?;
            by_id.insert(id, client_from_row(row, self.live.get(&id).copied(), month)?);
        }
        let clients = self.selection.ids.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok(ClientPage { clients, selection: self.selection })
    }
}

/// The listed clients of the aggregate `json`, with the `live` figures, as
/// the listing sees them at `now`.
fn client_facts(
    json: &str,
    live: &HashMap<i64, &ClientState>,
    protocol: Protocol,
    month: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ClientFacts>, StoreError> {
    let rows: Vec<IndexRow> = serde_json::from_str(json).map_err(|e| corrupt("client index", e))?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, name, identity, ip, email, username, access, pending, managed, seed_on_host) =
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9);
        let ledger = Counters::new(bytes(row.14), bytes(row.15));
        let (handshake, last_seen, on_host, total, month_bytes) = match live.get(&id) {
            Some(c) => (c.latest_handshake, c.last_seen, c.on_host, c.total, c.month_usage(month, ledger)),
            None => (row.10, row.11, seed_on_host.0, Counters::new(bytes(row.12), bytes(row.13)), ledger),
        };
        let disabled = access == "disabled";
        if !(on_host || managed.0 || disabled || pending.0 || protocol == Protocol::Openvpn) {
            continue;
        }
        let (connection, last_seen) =
            ConnectionStatus::of(protocol, on_host, opt_instant(handshake)?, opt_instant(last_seen)?, now);
        facts.push(ClientFacts {
            id,
            label: name.unwrap_or_else(|| identity.clone()),
            identity,
            ip,
            email,
            username,
            connection,
            disabled,
            month: month_bytes,
            total,
            last_seen,
        });
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::Flag;

    #[test]
    fn a_flag_reads_as_sqlite_writes_it_and_as_postgresql_does() {
        let flags: Vec<Flag> = serde_json::from_str("[0, 1, 2, true, false]").expect("flags");
        assert_eq!(flags.iter().map(|f| f.0).collect::<Vec<_>>(), [false, true, true, true, false]);
        assert!(serde_json::from_str::<Flag>("\"yes\"").is_err());
    }
}
