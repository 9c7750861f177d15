//! The enforcer: right after every applied poll of a server, in that
//! server's own task (so overshoot is at most one poll interval of traffic,
//! and each host is acted on by the one task that polls it), clients past
//! their expiry date or at their traffic limit are revoked on the host and
//! disabled with that reason, each with an event (actor `enforcer`).
//!
//! It also warns, with an event each: once per crossing of a client's
//! warning threshold, and once a day in the last seven days before expiry.
//!
//! Device limits: a user with more live sessions than `max_connections`
//! across every server and protocol has the oldest ended, each by the task
//! of the server it is on; those devices are disabled (`device_limit`), so a
//! kicked device cannot reconnect and kick the newer one, and come back when
//! the user has room again.
//!
//! Monthly limits count the bytes since the period's start (see
//! [`crate::domain::policy::period_step`]): each reset happens once, also
//! when the panel was down at the reset moment (the first pass after it
//! catches up). A client disabled for its traffic limit comes back by
//! itself when its usage in the current period is below the limit again (a
//! new period, or a higher or removed limit); manual, expiry and device
//! disables are never lifted by it.
//!
//! A pass with nothing to do is cheap: see [`Watch`].

use crate::domain::accounting::{day_key, month_key};
use crate::domain::policy::{
    enforcement_verdict, judge_expiry, judge_traffic, may_restore, period_step, unenforced_usage_key, usage_figures,
    usage_warning_key, warnings_due, LimitPeriod, PeriodStep, RestoreRefused, UNENFORCED_EXPIRY,
};
use crate::domain::policy::{over_device_limit, DisableReason, LiveSession};
use crate::domain::ByteCount;
use crate::domain::{ClientId, ServerId, UserId};
use crate::server::poll::PollError;
use crate::server::reconcile::{can_block, change_access, disable_many, enforcer_event, reconcile};
use crate::server::store::{ClientRecord, LiveDevice, PollFigures, ServerRecord, Store};
use crate::server::transport::HostTransport;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::time::Duration;

mod watch;
pub use watch::{watched_users, Watch, WatchedUser, TRUST};

/// When a pass runs and how: its moment, the time zone of periods and
/// days, and the wait for each host call.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub wait: Duration,
}

/// Where a client's monthly limit period stands at `now` (`None`: its
/// limit counts lifetime bytes).
pub fn period_of(c: &ClientRecord, now: DateTime<Utc>, tz: &Tz) -> Option<PeriodStep> {
    match c.policy.limit_period {
        LimitPeriod::Lifetime => None,
        LimitPeriod::Monthly { reset_day } => {
            Some(period_step(reset_day, c.period, c.total.total(), c.month.total(), now, tz))
        }
    }
}

/// The bytes a client's limit counts at `now` (its period's, or lifetime)
/// and the limit. `c.month` must be the calendar month of `now`.
pub fn period_usage(c: &ClientRecord, now: DateTime<Utc>, tz: &Tz) -> (u64, Option<u64>) {
    let used = match period_of(c, now, tz) {
        Some(step) => step.mark().used(c.total.total()),
        None => c.total.total(),
    };
    (used, c.policy.traffic_limit)
}

/// Why restoring `c` now is refused (an expiry passed, still over its
/// limit), if it is.
pub fn restore_refusal(c: &ClientRecord, now: DateTime<Utc>, tz: &Tz) -> Result<(), RestoreRefused> {
    let (used, limit) = period_usage(c, now, tz);
    may_restore(judge_traffic(used, limit, c.policy.traffic_warn_threshold), judge_expiry(c.policy.expiry_date, now))
}

/// Keeps a client's period as [`period_of`] decides: the first one begun,
/// or a new one started (once per reset, with an event).
async fn keep_period(
    store: &dyn Store,
    record: &ServerRecord,
    c: &ClientRecord,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<(), PollError> {
    let (mark, event) = match period_of(c, now, tz) {
        None | Some(PeriodStep::Current(_)) => return Ok(()),
        Some(PeriodStep::Begin(mark)) => (mark, None),
        Some(PeriodStep::Reset(mark)) => {
            let ended = c.period.map(|p| p.used(c.total.total())).unwrap_or(0);
            let figures = format!(
                "new period from {}; {} used in the last one",
                day_key(mark.start, tz),
                ByteCount::new(ended).human()
            );
            tracing::info!(actor = "enforcer", client_id = %c.id, action = "reset", %figures, "monthly reset");
            (mark, Some(enforcer_event(record, c, now, "reset", "monthly", &figures)))
        }
    };
    store.start_period(c.id, mark, event.as_ref()).await.map_err(PollError::internal)
}

/// What a client's limit counts at `now`: `lifetime`, or its period's first
/// day.
fn period_label(c: &ClientRecord, now: DateTime<Utc>, tz: &Tz) -> String {
    match period_of(c, now, tz) {
        Some(step) => day_key(step.mark().start, tz),
        None => "lifetime".to_owned(),
    }
}

/// Says once, with an event, that a client past its limit or expiry stays
/// connected because its server cannot refuse it (an OpenVPN server without
/// `client_config_dir`): once per limit and period, once per expiry.
async fn not_enforced(
    store: &dyn Store,
    record: &ServerRecord,
    c: &ClientRecord,
    reason: DisableReason,
    figures: &str,
    limit: Option<u64>,
    pass: Pass,
) -> Result<(), PollError> {
    let (usage, expiry) = match (reason, limit) {
        (DisableReason::TrafficLimit, Some(limit)) => {
            (Some(unenforced_usage_key(&period_label(c, pass.now, &pass.tz), limit)), None)
        }
        (DisableReason::Expired, _) => (None, Some(UNENFORCED_EXPIRY.to_owned())),
        _ => return Ok(()),
    };
    if usage.is_some() && c.warned_usage == usage || expiry.is_some() && c.warned_expiry_day == expiry {
        return Ok(());
    }
    let figures = format!("{figures}; not blocked: the server has no client_config_dir");
    let e = enforcer_event(record, c, pass.now, "warn", reason.as_str(), &figures);
    store.record_warning(c.id, usage.as_deref(), expiry.as_deref(), &e).await.map_err(PollError::internal)?;
    tracing::warn!(actor = "enforcer", client_id = %c.id, action = "warn", reason = reason.as_str(), %figures, "limit not enforced");
    Ok(())
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
    let period = period_label(c, now, tz);
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
        let e = enforcer_event(record, c, now, "warn", "traffic_limit", &figures);
        store.record_warning(c.id, Some(&key), None, &e).await.map_err(PollError::internal)?;
        tracing::info!(actor = "enforcer", client_id = %c.id, action = "warn", reason = "traffic_limit", %figures, "usage warning");
    }
    if let Some((day, figures)) = due.expiry {
        let e = enforcer_event(record, c, now, "warn", "expiry", &figures);
        store.record_warning(c.id, None, Some(&day), &e).await.map_err(PollError::internal)?;
        tracing::info!(actor = "enforcer", client_id = %c.id, action = "warn", reason = "expiry", %figures, "expiry warning");
    }
    Ok(())
}

/// One user's device limit as seen from this server: the sessions on it to
/// end (the oldest, over `max`), and how many more devices fit.
fn device_plan(max: u32, live: &[LiveDevice], server: ServerId) -> (Vec<ClientId>, usize) {
    let sessions: Vec<LiveSession<(ClientId, ServerId)>> =
        live.iter().map(|d| LiveSession { key: (d.client, d.server), started: d.started }).collect();
    let to_end = over_device_limit(&sessions, max);
    let room = match max {
        0 => usize::MAX,
        max => usize::try_from(max).unwrap_or(usize::MAX).saturating_sub(live.len() - to_end.len()),
    };
    (to_end.into_iter().filter(|(_, s)| *s == server).map(|(c, _)| c).collect(), room)
}

/// Whether a device limit calls for a full pass: a session on this server
/// to end, or room for a device here disabled for it.
async fn devices_need_look(
    store: &dyn Store,
    server: ServerId,
    users: &[WatchedUser],
    now: DateTime<Utc>,
) -> Result<bool, PollError> {
    if users.is_empty() {
        return Ok(false);
    }
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let live = store.live_sessions_of(&ids, now).await.map_err(PollError::internal)?;
    Ok(users.iter().any(|u| {
        let (to_end, room) = device_plan(u.max, live.get(&u.id).map_or(&[], Vec::as_slice), server);
        !to_end.is_empty() || (u.held_here > 0 && room > 0)
    }))
}

/// Ends the oldest sessions of users over their device limit (those on this
/// server), and lets devices disabled for it back where there is room.
async fn device_limits(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    clients: &[ClientRecord],
    users: &[WatchedUser],
    pass: Pass,
) -> Result<usize, PollError> {
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let live = store.live_sessions_of(&ids, pass.now).await.map_err(PollError::internal)?;
    let mut changed = 0;
    for user in users {
        let live = live.get(&user.id).map_or(&[][..], Vec::as_slice);
        let (to_end, mut room) = device_plan(user.max, live, record.id);
        let figures = format!("{}/{} devices", live.len(), user.max);
        for client in &to_end {
            let Some(c) = clients.iter().find(|c| c.id == *client && !c.disabled) else { continue };
            let e = enforcer_event(record, c, pass.now, "disable", DisableReason::DeviceLimit.as_str(), &figures);
            if change_access(transport, record, store, c, Some(DisableReason::DeviceLimit), &e, pass.wait).await? {
                tracing::info!(actor = "enforcer", client_id = %c.id, server_id = %record.id, action = "disable", reason = "device_limit", %figures, "device over the limit");
                changed += 1;
            }
        }
        let held = clients
            .iter()
            .filter(|c| c.user_id == Some(user.id) && c.disabled_reason == Some(DisableReason::DeviceLimit));
        for c in held {
            if room == 0 {
                break;
            }
            let e = enforcer_event(record, c, pass.now, "enable", DisableReason::DeviceLimit.as_str(), &figures);
            if change_access(transport, record, store, c, None, &e, pass.wait).await? {
                tracing::info!(actor = "enforcer", client_id = %c.id, action = "enable", reason = "device_limit", %figures, "device let back");
                room -= 1;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// The users of `clients` whose device limits this server's passes check.
async fn users_of(store: &dyn Store, clients: &[ClientRecord]) -> Result<Vec<WatchedUser>, PollError> {
    if clients.iter().all(|c| c.user_id.is_none()) {
        return Ok(Vec::new());
    }
    let max: HashMap<UserId, u32> =
        store.users().await.map_err(PollError::internal)?.into_iter().map(|u| (u.id, u.max_connections)).collect();
    Ok(watched_users(clients, |id| max.get(&id).copied()))
}

/// One pass over a server's clients, given the figures of the poll applied
/// just before it (if any). Returns how many were disabled or let back.
/// A pass the watch knows to have nothing to do reads no client.
pub async fn enforce(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    watch: &mut Watch,
    figures: Option<&PollFigures>,
    pass: Pass,
) -> Result<usize, PollError> {
    let blockable = can_block(record);
    let stamp = store.enforcement_stamp(record.id).await.map_err(PollError::internal)?;
    if watch.quiet(stamp, figures, pass.now)
        && !(blockable && devices_need_look(store, record.id, watch.users(), pass.now).await?)
    {
        watch.advance(stamp);
        return Ok(0);
    }
    watch.forget();
    let Pass { now, tz, wait } = pass;
    let clients = store.clients(record.id, &month_key(now, &tz)).await.map_err(PollError::internal)?;
    let users = users_of(store, &clients).await?;
    let mut changed = 0;
    if blockable {
        changed += reconcile(transport, record, store, &clients, now, wait).await?;
        changed += device_limits(transport, record, store, &clients, &users, pass).await?;
    } else {
        tracing::debug!("limits are only warned about on this server: it has no client_config_dir to refuse clients");
    }
    let mut disables = Vec::new();
    for c in &clients {
        let has_policy = c.policy.traffic_limit.is_some() || c.policy.expiry_date.is_some();
        let limited = c.disabled_reason == Some(DisableReason::TrafficLimit);
        if !(has_policy || limited) {
            continue;
        }
        keep_period(store, record, c, now, &tz).await?;
        let (used, limit) = period_usage(c, now, &tz);
        let verdict = enforcement_verdict(used, limit, c.policy.traffic_warn_threshold, c.policy.expiry_date, now);
        match verdict {
            // Below the limit again (a new period, or a higher limit): back.
            None if limited && blockable => {
                let figures = limit.map(|l| usage_figures(used, l)).unwrap_or_else(|| "no limit".to_owned());
                let e = enforcer_event(record, c, now, "enable", DisableReason::TrafficLimit.as_str(), &figures);
                if change_access(transport, record, store, c, None, &e, wait).await? {
                    tracing::info!(actor = "enforcer", client_id = %c.id, action = "enable", reason = "traffic_limit", %figures, "client let back");
                    changed += 1;
                }
            }
            Some((reason, figures)) if !c.disabled && blockable => {
                tracing::info!(actor = "enforcer", client_id = %c.id, action = "disable", reason = reason.as_str(), %figures, "client disabled");
                disables.push((c, reason, enforcer_event(record, c, now, "disable", reason.as_str(), &figures)));
            }
            Some((reason, figures)) if !c.disabled => {
                not_enforced(store, record, c, reason, &figures, limit, pass).await?;
            }
            _ if !c.disabled => warn(store, record, c, used, limit, now, &tz).await?,
            _ => {}
        }
    }
    // All of this pass's disables at once: one transaction, one host batch.
    disable_many(transport, record, store, &disables, wait).await?;
    let wireguard = record.protocol.wg_tool().is_some();
    watch.remember(stamp, &clients, figures, users, wireguard, now, &tz);
    Ok(changed + disables.len())
}

#[cfg(test)]
mod tests;
