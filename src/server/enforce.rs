//! The enforcer: right after every applied poll of a server, in that
//! server's own task (so overshoot is at most one poll interval of traffic,
//! and each host is acted on by the one task that polls it), clients past
//! their expiry date or at their traffic limit are revoked on the host and
//! disabled with that reason, each with an event (actor `enforcer`).
//!
//! It also warns, with an event each: once per crossing of a client's
//! warning threshold, and once a day in the last seven days before expiry.
//!
//! Periods counted so far: lifetime limits, and monthly limits that reset on
//! the 1st (the calendar month of the ledger). Other reset days and the
//! monthly re-enable are not enforced yet.

use crate::domain::accounting::{day_key, month_key};
use crate::domain::policy::{
    enforcement_verdict, judge_expiry, judge_traffic, usage_warning_key, warnings_due, LimitPeriod,
};
use crate::domain::{Protocol, PublicKey};
use crate::server::peers::{self, PeerChange, PeerTarget};
use crate::server::poll::PollError;
use crate::server::store::{ClientRecord, NewEvent, ServerRecord, Store};
use crate::server::transport::HostTransport;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The bytes a client's limit counts, if its period is one the enforcer
/// knows yet.
pub fn used_in_period(c: &ClientRecord) -> Option<u64> {
    match c.policy.limit_period {
        LimitPeriod::Lifetime => Some(c.total.total()),
        LimitPeriod::Monthly { reset_day } if reset_day.get() == 1 => Some(c.month.total()),
        LimitPeriod::Monthly { .. } => None,
    }
}

fn event(
    record: &ServerRecord,
    c: &ClientRecord,
    at: DateTime<Utc>,
    action: &str,
    reason: &str,
    figures: &str,
) -> NewEvent {
    NewEvent {
        at,
        actor: "enforcer".to_owned(),
        action: action.to_owned(),
        reason: Some(reason.to_owned()),
        figures: Some(figures.to_owned()),
        client_id: Some(c.id),
        user_id: c.user_id,
        server_id: Some(record.id),
        label: c.name.clone().unwrap_or_else(|| c.identity.clone()),
    }
}

/// Gives the warnings due for an active client (see [`warnings_due`]).
async fn warn(
    store: &dyn Store,
    record: &ServerRecord,
    c: &ClientRecord,
    used: u64,
    limit: Option<u64>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<(), PollError> {
    let period = match c.policy.limit_period {
        LimitPeriod::Lifetime => "lifetime".to_owned(),
        LimitPeriod::Monthly { .. } => month_key(now, tz),
    };
    let traffic = judge_traffic(used, limit, c.policy.traffic_warn_threshold);
    let due = warnings_due(
        traffic,
        limit.map(|l| (usage_warning_key(&period, l), used, l)),
        c.warned_usage.as_deref(),
        judge_expiry(c.policy.expiry_date, now),
        c.policy.expiry_date,
        &day_key(now, tz),
        c.warned_expiry_day.as_deref(),
    );
    if let Some((key, figures)) = due.usage {
        let e = event(record, c, now, "warn", "traffic_limit", &figures);
        store.record_warning(c.id, Some(&key), None, &e).await.map_err(PollError::internal)?;
        tracing::info!(actor = "enforcer", client_id = %c.id, action = "warn", reason = "traffic_limit", %figures, "usage warning");
    }
    if let Some((day, figures)) = due.expiry {
        let e = event(record, c, now, "warn", "expiry", &figures);
        store.record_warning(c.id, None, Some(&day), &e).await.map_err(PollError::internal)?;
        tracing::info!(actor = "enforcer", client_id = %c.id, action = "warn", reason = "expiry", %figures, "expiry warning");
    }
    Ok(())
}

/// One pass over a server's active clients. Returns how many were disabled.
pub async fn enforce(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<usize, PollError> {
    if record.protocol == Protocol::Openvpn {
        return Ok(0);
    }
    let Some(target) = PeerTarget::of(record) else { return Ok(0) };
    let clients = store.clients(record.id, &month_key(now, &tz)).await.map_err(PollError::internal)?;
    let mut disabled = 0;
    for c in clients.iter().filter(|c| !c.disabled) {
        let has_policy = c.policy.traffic_limit.is_some() || c.policy.expiry_date.is_some();
        if !has_policy {
            continue;
        }
        let used = used_in_period(c).unwrap_or(0);
        let limit = used_in_period(c).and(c.policy.traffic_limit);
        let Some((reason, figures)) =
            enforcement_verdict(used, limit, c.policy.traffic_warn_threshold, c.policy.expiry_date, now)
        else {
            warn(store, record, c, used, limit, now, &tz).await?;
            continue;
        };
        let Ok(key) = PublicKey::parse(&c.identity) else { continue };
        peers::apply(transport, &target, &PeerChange::Revoke(key)).await?;
        let e = event(record, c, now, "disable", reason.as_str(), &figures);
        store.set_client_access(c.id, Some(reason), &e).await.map_err(PollError::internal)?;
        tracing::info!(actor = "enforcer", client_id = %c.id, action = "disable", reason = reason.as_str(), %figures, "client disabled");
        disabled += 1;
    }
    Ok(disabled)
}
