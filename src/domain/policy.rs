//! Client policy: traffic limits with a warning threshold, monthly reset
//! days, expiry dates, device limits. Pure functions over plain data with
//! `now` passed in; the enforcer carries out what they decide.
//!
//! Periods are real calendar months in the configured time zone, never "30
//! days": a monthly limit resets at local midnight of its reset day, which
//! is clamped to the month's last day (31 → 28 or 29 in February).

use super::bytes::ByteCount;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A day of the month on which a monthly limit starts again: 1 to 31.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResetDay(u8);

impl ResetDay {
    pub fn parse(day: i64) -> Result<Self, PolicyError> {
        u8::try_from(day).ok().filter(|d| (1..=31).contains(d)).map(ResetDay).ok_or(PolicyError::ResetDay(day))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A warning threshold in percent of the limit: 1 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Threshold(u8);

impl Threshold {
    pub const DEFAULT: Threshold = Threshold(80);

    pub fn parse(percent: i64) -> Result<Self, PolicyError> {
        u8::try_from(percent)
            .ok()
            .filter(|p| (1..=100).contains(p))
            .map(Threshold)
            .ok_or(PolicyError::Threshold(percent))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("reset_day must be 1 to 31, got {0}")]
    ResetDay(i64),
    #[error("traffic_warn_threshold must be 1 to 100 (percent), got {0}")]
    Threshold(i64),
}

/// What a traffic limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "limit_period", rename_all = "snake_case")]
pub enum LimitPeriod {
    /// All traffic ever (the limit is a quota that never renews).
    Lifetime,
    /// Traffic since the latest reset day.
    Monthly { reset_day: ResetDay },
}

/// Where a client stands against its traffic limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficVerdict {
    /// No limit.
    Unlimited,
    Within {
        percent: u8,
    },
    /// At or past the warning threshold, below the limit.
    Warning {
        percent: u8,
    },
    /// At or past the limit.
    Exceeded {
        percent: u16,
    },
}

/// Judges `used` bytes (RX + TX in the limit's period) against `limit`.
pub fn judge_traffic(used: u64, limit: Option<u64>, threshold: Threshold) -> TrafficVerdict {
    let Some(limit) = limit else { return TrafficVerdict::Unlimited };
    if used >= limit {
        let percent = if limit == 0 { u16::MAX } else { percent_of(used, limit).min(u128::from(u16::MAX)) as u16 };
        return TrafficVerdict::Exceeded { percent };
    }
    let percent = percent_of(used, limit).min(99) as u8;
    if u128::from(used) * 100 >= u128::from(limit) * u128::from(threshold.get()) {
        TrafficVerdict::Warning { percent }
    } else {
        TrafficVerdict::Within { percent }
    }
}

fn percent_of(used: u64, limit: u64) -> u128 {
    u128::from(used) * 100 / u128::from(limit.max(1))
}

/// Where a client stands against its expiry date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryVerdict {
    NoExpiry,
    Fine,
    /// Seven days or less left; `days_left` rounds up (0 < left ≤ 1 day: 1).
    Soon {
        days_left: u32,
    },
    Expired,
}

/// How long before expiry the daily warnings start.
pub const EXPIRY_WARNING: TimeDelta = TimeDelta::days(7);

pub fn judge_expiry(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> ExpiryVerdict {
    let Some(expiry) = expiry else { return ExpiryVerdict::NoExpiry };
    if now >= expiry {
        return ExpiryVerdict::Expired;
    }
    let left = expiry - now;
    if left > EXPIRY_WARNING {
        return ExpiryVerdict::Fine;
    }
    let days = (left.num_seconds() + 86_399) / 86_400;
    ExpiryVerdict::Soon { days_left: u32::try_from(days).unwrap_or(u32::MAX) }
}

/// Why a client is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisableReason {
    Manual,
    TrafficLimit,
    Expired,
    DeviceLimit,
}

impl DisableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::TrafficLimit => "traffic_limit",
            Self::Expired => "expired",
            Self::DeviceLimit => "device_limit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Manual, Self::TrafficLimit, Self::Expired, Self::DeviceLimit].into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for DisableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a monthly reset may re-enable a client disabled for `reason`:
/// only a traffic-limit disable is lifted by a new period, never a manual
/// or an expiry one.
pub fn reset_reenables(reason: DisableReason) -> bool {
    reason == DisableReason::TrafficLimit
}

/// Why a restore is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreRefused {
    #[error("the client's expiry date has passed; give it a new expiry date to restore it")]
    Expired,
    #[error("the client is still over its traffic limit; raise the limit to restore it")]
    OverLimit,
}

/// Whether a disabled client may be restored now, with its current policy.
pub fn may_restore(traffic: TrafficVerdict, expiry: ExpiryVerdict) -> Result<(), RestoreRefused> {
    if expiry == ExpiryVerdict::Expired {
        return Err(RestoreRefused::Expired);
    }
    if matches!(traffic, TrafficVerdict::Exceeded { .. }) {
        return Err(RestoreRefused::OverLimit);
    }
    Ok(())
}

/// One live session of a user's, on any server and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession<K> {
    pub key: K,
    pub started: DateTime<Utc>,
}

/// The sessions to end so that at most `max` remain (0: no limit): the
/// oldest go, the newest `max` stay. Ties keep the order given.
pub fn over_device_limit<K: Clone>(sessions: &[LiveSession<K>], max: u32) -> Vec<K> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if max == 0 || sessions.len() <= max {
        return Vec::new();
    }
    let mut by_age: Vec<&LiveSession<K>> = sessions.iter().collect();
    by_age.sort_by_key(|s| s.started);
    by_age[..sessions.len() - max].iter().map(|s| s.key.clone()).collect()
}

/// "usage 10.7 GB of 10 GB" (sizes as the panel shows them everywhere): the
/// figures an event or a log line carries.
pub fn usage_figures(used: u64, limit: u64) -> String {
    format!("usage {} of {}", ByteCount::new(used).human(), ByteCount::new(limit).human())
}

/// Why the enforcer disables a client now, with the figures for its event:
/// an expiry that has passed, or a limit reached in its period. `used` is
/// the client's bytes (sent + received) in the limit's period.
pub fn enforcement_verdict(
    used: u64,
    traffic_limit: Option<u64>,
    threshold: Threshold,
    expiry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<(DisableReason, String)> {
    if judge_expiry(expiry, now) == ExpiryVerdict::Expired {
        let when = expiry.map(|e| e.to_rfc3339()).unwrap_or_default();
        return Some((DisableReason::Expired, format!("expired at {when}")));
    }
    match (judge_traffic(used, traffic_limit, threshold), traffic_limit) {
        (TrafficVerdict::Exceeded { .. }, Some(limit)) => {
            Some((DisableReason::TrafficLimit, usage_figures(used, limit)))
        }
        _ => None,
    }
}

/// What a threshold warning is about: one crossing of one limit in one
/// period (`period` is `lifetime` or the period's first day). A warning is
/// given once per key; raising the limit or a new period makes a new one.
pub fn usage_warning_key(period: &str, limit: u64) -> String {
    format!("{period}:{limit}")
}

/// What a client's `warned_usage` holds once it was said that its server
/// could not block it at this limit in this period.
pub fn unenforced_usage_key(period: &str, limit: u64) -> String {
    format!("{}:exceeded", usage_warning_key(period, limit))
}

/// What a client's `warned_expiry_day` holds once it was said that its
/// server could not block it after its expiry.
pub const UNENFORCED_EXPIRY: &str = "expired";

/// The warnings due now, given what was last warned about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Warnings {
    /// The crossing key and the figures ("usage 8.1 GB of 10 GB (81 %)").
    pub usage: Option<(String, String)>,
    /// The local day and the figures ("expires in 3 days, 2026-11-27T12:00:00+00:00").
    pub expiry: Option<(String, String)>,
}

/// One usage warning per crossing, one expiry warning per local day.
pub fn warnings_due(
    traffic: TrafficVerdict,
    usage_key: Option<(String, u64, u64)>,
    warned_usage: Option<&str>,
    expiry: ExpiryVerdict,
    expiry_date: Option<DateTime<Utc>>,
    today: &str,
    warned_day: Option<&str>,
) -> Warnings {
    let mut due = Warnings::default();
    if let (TrafficVerdict::Warning { percent }, Some((key, used, limit))) = (traffic, usage_key) {
        if warned_usage != Some(key.as_str()) {
            due.usage = Some((key, format!("{} ({percent} %)", usage_figures(used, limit))));
        }
    }
    if let (ExpiryVerdict::Soon { days_left }, Some(at)) = (expiry, expiry_date) {
        if warned_day != Some(today) {
            let days = if days_left == 1 { "1 day".to_owned() } else { format!("{days_left} days") };
            due.expiry = Some((today.to_owned(), format!("expires in {days}, {}", at.to_rfc3339())));
        }
    }
    due
}

mod attention;
mod period;
pub use attention::{next_expiry_check, next_reset, next_traffic_change};
pub use period::{next_period_start, period_start, period_step, PeriodMark, PeriodStep};

#[cfg(test)]
mod tests;
