//! Clients (devices) on both backends: the column list, turning a row into
//! a [`ClientRecord`], and the values the client queries bind.

use crate::domain::client_change::ClientPolicy;
use crate::domain::policy::{DisableReason, LimitPeriod, PeriodMark, ResetDay, Threshold};
use crate::domain::{ClientId, Protocol, ServerId, UserId};
use crate::server::store::rows::{corrupt, counters, instant, opt_instant, protocol, split_list, Columns};
use crate::server::store::state::ClientState;
use crate::server::store::{ClientRecord, StoreError};

/// The columns [`client_from_row`] reads, from `clients c` with its server
/// `s` and its `usage_monthly` row `m` of the month bound as `$1` (SQLite
/// binds `$N` by number too). A query appends `WHERE …` with `$2` on.
pub(crate) const CLIENT_COLUMNS: &str = "c.id, c.server_id, s.protocol, c.identity, c.name, c.username, c.access, \
    c.managed, c.endpoint, c.allowed_ips, c.desired_allowed_ips, c.virtual_ip, c.seed_latest_handshake, \
    c.seed_last_seen_at, c.seed_on_host, c.seed_total_rx, c.seed_total_tx, COALESCE(m.rx, 0) AS month_rx, \
    COALESCE(m.tx, 0) AS month_tx, c.seed_last_sync_at, c.email, c.user_id, c.traffic_limit, \
    c.traffic_warn_threshold, c.limit_period, c.reset_day, c.expiry_date, c.disabled_reason, c.warned_usage, \
    c.warned_expiry_day, c.period_start, c.period_base, c.pending, c.note \
    FROM clients c JOIN servers s ON s.id = c.server_id \
    LEFT JOIN usage_monthly m ON m.client_id = c.id AND m.month = $1";

pub(crate) fn policy_from_row(row: &impl Columns) -> Result<ClientPolicy, StoreError> {
    let limit = row.opt_int("traffic_limit")?;
    let threshold = row.int("traffic_warn_threshold")?;
    let period = row.text("limit_period")?;
    let reset_day = row.opt_int("reset_day")?;
    let limit_period = match (period.as_str(), reset_day) {
        ("monthly", Some(day)) => {
            LimitPeriod::Monthly { reset_day: ResetDay::parse(day).map_err(|e| corrupt("reset day", e))? }
        }
        ("lifetime", _) => LimitPeriod::Lifetime,
        _ => return Err(corrupt("limit period", period)),
    };
    Ok(ClientPolicy {
        traffic_limit: limit.map(|l| u64::try_from(l).unwrap_or(0)),
        traffic_warn_threshold: Threshold::parse(threshold).map_err(|e| corrupt("threshold", e))?,
        limit_period,
        expiry_date: opt_instant(row.opt_int("expiry_date")?)?,
    })
}

/// A client row (of [`CLIENT_COLUMNS`]) with its live figures from the
/// server's state (`live`); without an entry, the row's own figures.
pub(in crate::server::store) fn client_from_row(
    row: &impl Columns,
    live: Option<&ClientState>,
    month: &str,
) -> Result<ClientRecord, StoreError> {
    let allowed = row.text("allowed_ips")?;
    let desired = row.opt_text("desired_allowed_ips")?;
    let access = row.text("access")?;
    let ledger = counters(row, "month_rx", "month_tx")?;
    let (latest_handshake, last_seen, on_host, total, month, last_sync_at) = match live {
        Some(c) => (c.latest_handshake, c.last_seen, c.on_host, c.total, c.month_usage(month, ledger), c.last_sync_at),
        None => (
            row.opt_int("seed_latest_handshake")?,
            row.opt_int("seed_last_seen_at")?,
            row.flag("seed_on_host")?,
            counters(row, "seed_total_rx", "seed_total_tx")?,
            ledger,
            row.int("seed_last_sync_at")?,
        ),
    };
    Ok(ClientRecord {
        id: ClientId::new(row.int("id")?),
        server_id: ServerId::new(row.int("server_id")?),
        protocol: protocol(&row.text("protocol")?)?,
        identity: row.text("identity")?,
        name: row.opt_text("name")?,
        email: row.opt_text("email")?,
        note: row.opt_text("note")?,
        user_id: row.opt_int("user_id")?.map(UserId::new),
        username: row.opt_text("username")?,
        disabled: access == "disabled",
        disabled_reason: row
            .opt_text("disabled_reason")?
            .map(|r| DisableReason::parse(&r).ok_or_else(|| corrupt("disabled reason", r)))
            .transpose()?,
        policy: policy_from_row(row)?,
        warned_usage: row.opt_text("warned_usage")?,
        warned_expiry_day: row.opt_text("warned_expiry_day")?,
        pending: row.flag("pending")?,
        period: match opt_instant(row.opt_int("period_start")?)? {
            Some(start) => Some(PeriodMark { start, base: u64::try_from(row.int("period_base")?).unwrap_or(0) }),
            None => None,
        },
        managed: row.flag("managed")?,
        endpoint: row.opt_text("endpoint")?,
        allowed_ips: split_list(&allowed),
        desired_allowed_ips: desired.as_deref().map(split_list),
        virtual_ip: row.opt_text("virtual_ip")?,
        latest_handshake: opt_instant(latest_handshake)?,
        last_seen: opt_instant(last_seen)?,
        on_host,
        total,
        month,
        last_sync_at: instant(last_sync_at)?,
    })
}

/// Whether a server's client list shows `client`. WireGuard: peers on the
/// host, part of the wanted configuration, or revoked; OpenVPN: all.
pub(crate) fn listed(client: &ClientRecord) -> bool {
    client.on_host || client.managed || client.disabled || client.pending || client.protocol == Protocol::Openvpn
}

/// The `access` column for a client disabled for `reason`, or active.
pub(crate) fn access_text(reason: Option<DisableReason>) -> &'static str {
    if reason.is_some() {
        "disabled"
    } else {
        "active"
    }
}

/// The `limit_period` and `reset_day` columns of `period`.
pub(crate) fn period_columns(period: LimitPeriod) -> (&'static str, Option<i64>) {
    match period {
        LimitPeriod::Lifetime => ("lifetime", None),
        LimitPeriod::Monthly { reset_day } => ("monthly", Some(i64::from(reset_day.get()))),
    }
}

/// The managed peers as one JSON parameter: `[[identity, "ip,ip"], …]`.
pub(crate) fn managed_peers_json(peers: &[(String, Vec<String>)]) -> Result<String, StoreError> {
    let json: Vec<(&str, String)> = peers.iter().map(|(id, ips)| (id.as_str(), ips.join(","))).collect();
    serde_json::to_string(&json).map_err(|e| corrupt("managed peers", e))
}

/// What a generated client's sealed configuration is bound to.
pub(crate) fn config_aad(id: i64) -> String {
    format!("clients.client_config_sealed:{id}")
}
