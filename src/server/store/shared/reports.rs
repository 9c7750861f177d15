//! Reports on both backends: sessions from rows, the usage report's
//! assembly, and the roll-up's buckets as the JSON the queries read.

use crate::domain::accounting::Counters;
use crate::domain::{ClientId, ServerId};
use crate::server::store::rows::{bytes, corrupt, counters, db_bytes, instant, opt_instant, protocol, Columns};
use crate::server::store::state::ClientState;
use crate::server::store::{
    ClientHistory, HourlyBucket, PendingSamples, SessionRecord, StoreError, UsageQuery, UsageRow, DELETED_MARK,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// The columns [`session_from_row`] reads (and `base_rx`, `base_tx`,
/// `client_endpoint` for [`live_base`] and [`bring_up_to_date`]); a query
/// appends `WHERE …`.
pub(crate) const SESSION_SELECT: &str = "SELECT o.id, o.server_id, s.name AS server_name, o.client_id, c.identity, \
    c.name AS client_name, o.session_key, o.protocol, o.connected_at, o.disconnected_at, o.last_seen_at, \
    o.endpoint, o.virtual_ip, o.rx, o.tx, o.base_rx, o.base_tx, o.openvpn_client_id, \
    c.endpoint AS client_endpoint, u.name AS user_name \
    FROM connections o JOIN servers s ON s.id = o.server_id JOIN clients c ON c.id = o.client_id \
    LEFT JOIN users u ON u.id = c.user_id";

/// How many sessions are open (on server `$1`, or anywhere when null) and
/// the sum of their start times (Unix seconds), for their average length.
pub(crate) const OPEN_SUMMARY: &str =
    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(connected_at), 0) AS BIGINT) AS started \
    FROM connections WHERE disconnected_at IS NULL AND (CAST($1 AS BIGINT) IS NULL OR server_id = $1)";

/// A client's rolled-up hours from `$2` (Unix seconds), days from `$3` and
/// months from `$4` (keys), with the bucket as text, for [`history_rows`].
pub(crate) const CLIENT_HISTORY: &str = "SELECT 'h' AS kind, CAST(hour AS TEXT) AS bucket, rx, tx FROM traffic_hourly \
    WHERE client_id = $1 AND hour >= $2 \
    UNION ALL SELECT 'd', day, rx, tx FROM traffic_daily WHERE client_id = $1 AND day >= $3 \
    UNION ALL SELECT 'm', month, rx, tx FROM usage_monthly WHERE client_id = $1 AND month >= $4";

/// The rolled-up days from `$1` of every client, or of server `$2`'s.
pub(crate) const FLEET_DAILY: &str = "SELECT d.day AS bucket, CAST(SUM(d.rx) AS BIGINT) AS rx, \
    CAST(SUM(d.tx) AS BIGINT) AS tx FROM traffic_daily d JOIN clients c ON c.id = d.client_id \
    WHERE d.day >= $1 AND (CAST($2 AS BIGINT) IS NULL OR c.server_id = $2) GROUP BY d.day";

/// The rows of [`CLIENT_HISTORY`] and the pending hours, as a history;
/// `live`, the client's state, adds the bytes of its month that no ledger
/// row holds yet (as `add_live_months` does for the usage report).
pub(crate) fn history_rows(
    rows: &[impl Columns],
    pending: &[impl Columns],
    live: Option<&ClientState>,
) -> Result<ClientHistory, StoreError> {
    let mut h = ClientHistory::default();
    for row in rows {
        let (bucket, bytes) = (row.text("bucket")?, counters(row, "rx", "tx")?);
        match row.text("kind")?.as_str() {
            "h" => h.hourly.push((bucket.parse().map_err(|e| corrupt("hour", e))?, bytes)),
            "d" => h.daily.push((bucket, bytes)),
            _ => h.monthly.push((bucket, bytes)),
        }
    }
    for row in pending {
        h.pending.push((row.int("hour")?, counters(row, "rx", "tx")?));
    }
    if let Some(c) = live.filter(|c| !c.month_bytes.is_zero()) {
        match h.monthly.iter_mut().find(|(m, _)| *m == c.month) {
            Some((_, bytes)) => *bytes = bytes.saturating_add(c.month_bytes),
            None => h.monthly.push((c.month.clone(), c.month_bytes)),
        }
    }
    Ok(h)
}

pub(crate) fn day_rows(rows: &[impl Columns]) -> Result<Vec<(String, Counters)>, StoreError> {
    rows.iter().map(|r| Ok((r.text("bucket")?, counters(r, "rx", "tx")?))).collect()
}

pub(crate) fn session_from_row(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.int("id")?,
        server_id: ServerId::new(row.int("server_id")?),
        server_name: row.text("server_name")?,
        client_id: ClientId::new(row.int("client_id")?),
        identity: row.text("identity")?,
        client_name: row.opt_text("client_name")?,
        user: row.opt_text("user_name")?,
        session_key: row.text("session_key")?,
        protocol: protocol(&row.text("protocol")?)?,
        connected_at: instant(row.int("connected_at")?)?,
        disconnected_at: opt_instant(row.opt_int("disconnected_at")?)?,
        last_seen_at: instant(row.int("last_seen_at")?)?,
        endpoint: row.opt_text("endpoint")?,
        virtual_ip: row.opt_text("virtual_ip")?,
        bytes: counters(row, "rx", "tx")?,
        openvpn_client_id: row.opt_int("openvpn_client_id")?.and_then(|v| u64::try_from(v).ok()),
    })
}

/// The client's lifetime total when an open WireGuard session began, when
/// `session` (from `row`) is one: its bytes come from the live state.
pub(crate) fn live_base(row: &impl Columns, session: &SessionRecord) -> Result<Option<Counters>, StoreError> {
    let base = (row.opt_int("base_rx")?, row.opt_int("base_tx")?);
    Ok(match (session.disconnected_at, base) {
        (None, (Some(base_rx), Some(base_tx))) => Some(Counters::new(bytes(base_rx), bytes(base_tx))),
        _ => None,
    })
}

/// Brings an open WireGuard session up to date from its client's live
/// figures: bytes (the client's total minus `base`) and last sign of life;
/// the endpoint is the client's.
pub(in crate::server::store) fn bring_up_to_date(
    session: &mut SessionRecord,
    row: &impl Columns,
    base: Counters,
    live: &ClientState,
) -> Result<(), StoreError> {
    session.bytes = live.total.saturating_sub(base);
    if let Some(seen) = opt_instant(live.last_seen)? {
        session.last_seen_at = session.last_seen_at.max(seen);
    }
    let endpoint = row.opt_text("client_endpoint")?;
    if endpoint.is_some() {
        session.endpoint = endpoint;
    }
    Ok(())
}

/// The identities of the deleted clients that had `identity` (a deleted
/// WireGuard client's identity is `<key>#deleted-<id>`, see
/// `delete_client`): every one sorts from the first bound (included) up to
/// the second (excluded), the prefix with its last byte raised.
pub(crate) fn deleted_identity_range(identity: &str) -> (String, String) {
    let prefix = format!("{identity}{DELETED_MARK}");
    let (head, last) = DELETED_MARK.split_at(DELETED_MARK.len() - 1);
    let end = format!("{identity}{head}{}", char::from(last.as_bytes()[0] + 1));
    (prefix, end)
}

/// Adds the live state's current month to the ledger's months (client,
/// month) -> bytes, keeping only `month` when one is asked for.
pub(in crate::server::store) fn add_live_months(
    months: &mut BTreeMap<(i64, String), Counters>,
    live: &HashMap<i64, ClientState>,
    month: Option<&String>,
) {
    for c in live.values() {
        let wanted = month.is_none_or(|m| *m == c.month);
        if wanted && !c.month_bytes.is_zero() {
            let bytes = months.entry((c.client_id, c.month.clone())).or_insert(Counters::ZERO);
            *bytes = bytes.saturating_add(c.month_bytes);
        }
    }
}

/// The usage report's rows: per client row (`id`, `server`, `identity`,
/// `name`), its lifetime total from the live state when `accumulated`, else
/// one row per month in `months`; sorted by month, server and identity.
pub(in crate::server::store) fn usage_rows<R: Columns>(
    clients: &[R],
    query: &UsageQuery,
    live: &HashMap<i64, ClientState>,
    months: &BTreeMap<(i64, String), Counters>,
) -> Result<Vec<UsageRow>, StoreError> {
    let mut rows = Vec::new();
    for r in clients {
        let id = r.int("id")?;
        let server = r.text("server")?;
        let identity = r.text("identity")?;
        let name = r.opt_text("name")?;
        if query.accumulated {
            let total = live.get(&id).map(|c| c.total).unwrap_or(Counters::ZERO);
            rows.push(UsageRow { server, identity, name, month: None, bytes: total });
        } else {
            for ((_, month), bytes) in months.range((id, String::new())..).take_while(|((c, _), _)| *c == id) {
                rows.push(UsageRow {
                    server: server.clone(),
                    identity: identity.clone(),
                    name: name.clone(),
                    month: Some(month.clone()),
                    bytes: *bytes,
                });
            }
        }
    }
    rows.sort_by(|a, b| (&a.month, &a.server, &a.identity).cmp(&(&b.month, &b.server, &b.identity)));
    Ok(rows)
}

/// An hourly bucket from a row of `client_id`, `hour`, `rx`, `tx`.
pub(crate) fn hourly_from_row(row: &impl Columns) -> Result<HourlyBucket, StoreError> {
    Ok(HourlyBucket { client_id: row.int("client_id")?, hour: row.int("hour")?, bytes: counters(row, "rx", "tx")? })
}

/// The roll-up's hourly and daily buckets as JSON arrays of
/// `[client_id, bucket, rx, tx]`, as the queries that add them read them.
pub(crate) fn rollup_json(
    pending: &PendingSamples,
    daily: &[(i64, String, Counters)],
) -> Result<(String, String), StoreError> {
    let hours: Vec<_> = pending
        .hourly
        .iter()
        .map(|b| json!([b.client_id, b.hour, db_bytes(b.bytes.rx), db_bytes(b.bytes.tx)]))
        .collect();
    let days: Vec<_> = daily.iter().map(|(c, d, b)| json!([c, d, db_bytes(b.rx), db_bytes(b.tx)])).collect();
    let encode = |rows: &[serde_json::Value]| {
        serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a rollup: {e}")))
    };
    Ok((encode(hours.as_slice())?, encode(days.as_slice())?))
}
