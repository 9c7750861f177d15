//! A change to a client's name, owner or policy, as sent to
//! `PATCH /api/clients/{id}` (or one of seed 002's single-field endpoints):
//! every field optional, `null` clears what can be cleared, unknown fields
//! and bad values are refused with the field named. Pure: the caller stores
//! the result in one write, so nothing is half-applied.

use super::policy::{LimitPeriod, ResetDay, Threshold};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client's policy as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientPolicy {
    /// Bytes (RX + TX) allowed in the period; `None`: no limit.
    pub traffic_limit: Option<u64>,
    pub traffic_warn_threshold: Threshold,
    pub limit_period: LimitPeriod,
    pub expiry_date: Option<DateTime<Utc>>,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        Self {
            traffic_limit: None,
            traffic_warn_threshold: Threshold::DEFAULT,
            limit_period: LimitPeriod::Lifetime,
            expiry_date: None,
        }
    }
}

/// A field to set (`Some(Some(v))`), clear (`Some(None)`) or leave (`None`).
pub type Edit<T> = Option<Option<T>>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientChange {
    pub name: Edit<String>,
    pub email: Edit<String>,
    pub note: Edit<String>,
    pub user_id: Edit<i64>,
    pub traffic_limit: Edit<u64>,
    pub traffic_warn_threshold: Option<Threshold>,
    /// `"lifetime"` or `"monthly"`.
    pub limit_period: Option<String>,
    pub reset_day: Edit<ResetDay>,
    pub expiry_date: Edit<DateTime<Utc>>,
}

/// A refused change: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

pub(crate) fn refuse(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), reason: reason.into() }
}

const FIELDS: [&str; 9] = [
    "name",
    "email",
    "note",
    "user_id",
    "traffic_limit",
    "traffic_warn_threshold",
    "limit_period",
    "reset_day",
    "expiry_date",
];

/// Most characters a name or an email may have.
pub const MAX_TEXT: usize = 254;

/// Most characters a note may have.
pub const MAX_NOTE: usize = 2000;

/// Reads a change from a JSON object. Naive dates (no offset) are times in
/// `tz`; a bare date means its first moment.
pub fn parse_change<Tz: TimeZone>(body: &Map<String, Value>, tz: &Tz) -> Result<ClientChange, FieldError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(refuse(unknown, format!("unknown field; known are {}", FIELDS.join(", "))));
    }
    let mut change = ClientChange::default();
    for (field, value) in body {
        match field.as_str() {
            "name" => change.name = Some(opt(value, |v| text(field, v))?),
            "email" => change.email = Some(opt(value, |v| email(field, v))?),
            "note" => change.note = Some(opt(value, |v| note(field, v))?.flatten()),
            "user_id" => change.user_id = Some(opt(value, |v| whole(field, v, 1, i64::MAX))?),
            "traffic_limit" => {
                change.traffic_limit =
                    Some(opt(value, |v| whole(field, v, 0, i64::MAX).map(|n| u64::try_from(n).unwrap_or(0)))?)
            }
            "traffic_warn_threshold" => {
                let n = whole(field, value, 1, 100)?;
                change.traffic_warn_threshold = Some(Threshold::parse(n).map_err(|e| refuse(field, e.to_string()))?);
            }
            "limit_period" => match value.as_str() {
                Some(p @ ("lifetime" | "monthly")) => change.limit_period = Some(p.to_owned()),
                _ => return Err(refuse(field, "must be \"lifetime\" or \"monthly\"")),
            },
            "reset_day" => {
                change.reset_day = Some(opt(value, |v| {
                    ResetDay::parse(whole(field, v, 1, 31)?).map_err(|e| refuse(field, e.to_string()))
                })?)
            }
            "expiry_date" => change.expiry_date = Some(opt(value, |v| instant(field, v, tz))?),
            _ => {}
        }
    }
    Ok(change)
}

pub(crate) fn opt<T>(value: &Value, read: impl Fn(&Value) -> Result<T, FieldError>) -> Result<Option<T>, FieldError> {
    if value.is_null() {
        Ok(None)
    } else {
        read(value).map(Some)
    }
}

pub(crate) fn text(field: &str, v: &Value) -> Result<String, FieldError> {
    let s = v.as_str().ok_or_else(|| refuse(field, "must be a string or null"))?.trim();
    if s.is_empty() || s.chars().count() > MAX_TEXT {
        return Err(refuse(field, format!("must have 1 to {MAX_TEXT} characters")));
    }
    Ok(s.to_owned())
}

/// Free text over several lines: any characters but control ones other
/// than line breaks and tabs; an empty note is none.
pub(crate) fn note(field: &str, v: &Value) -> Result<Option<String>, FieldError> {
    // A form sends line breaks as CRLF; a note keeps them as LF.
    let s = v.as_str().ok_or_else(|| refuse(field, "must be a string or null"))?.replace("\r\n", "\n");
    let s = s.trim();
    if s.chars().count() > MAX_NOTE {
        return Err(refuse(field, format!("must have at most {MAX_NOTE} characters")));
    }
    if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(refuse(field, "must not hold control characters"));
    }
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

pub(crate) fn email(field: &str, v: &Value) -> Result<String, FieldError> {
    let s = text(field, v)?;
    let ok = s.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(refuse(field, "is not an email address"))
    }
}

pub(crate) fn whole(field: &str, v: &Value, min: i64, max: i64) -> Result<i64, FieldError> {
    v.as_i64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| refuse(field, format!("must be a whole number from {min}")))
}

fn instant<Tz: TimeZone>(field: &str, v: &Value, tz: &Tz) -> Result<DateTime<Utc>, FieldError> {
    let s = v.as_str().ok_or_else(|| refuse(field, "must be an ISO 8601 date or null"))?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()))
        .map_err(|_| {
            refuse(field, format!("{s:?} is not an ISO 8601 date (2026-12-31T23:59:59, with or without an offset)"))
        })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| refuse(field, format!("{s:?} does not exist in the panel's time zone")))
}

impl ClientChange {
    /// The policy after this change. Switching to a monthly period without
    /// a reset day starts periods on the 1st; a reset day alone is refused
    /// for a lifetime limit.
    pub fn apply(&self, current: &ClientPolicy) -> Result<ClientPolicy, FieldError> {
        let mut p = *current;
        if let Some(v) = self.traffic_limit {
            p.traffic_limit = v;
        }
        if let Some(v) = self.traffic_warn_threshold {
            p.traffic_warn_threshold = v;
        }
        if let Some(v) = self.expiry_date {
            p.expiry_date = v;
        }
        let current_day = match current.limit_period {
            LimitPeriod::Monthly { reset_day } => Some(reset_day),
            LimitPeriod::Lifetime => None,
        };
        let monthly = match self.limit_period.as_deref() {
            Some("monthly") => true,
            Some(_) => false,
            None => current_day.is_some(),
        };
        let day = match self.reset_day {
            Some(edit) => edit,
            None => current_day,
        };
        p.limit_period = match (monthly, day) {
            (true, Some(reset_day)) => LimitPeriod::Monthly { reset_day },
            (true, None) => match ResetDay::parse(1) {
                Ok(reset_day) => LimitPeriod::Monthly { reset_day },
                Err(e) => return Err(refuse("reset_day", e.to_string())),
            },
            (false, Some(_)) if self.reset_day.is_some_and(|d| d.is_some()) => {
                return Err(refuse("reset_day", "applies to a monthly limit_period only"))
            }
            (false, _) => LimitPeriod::Lifetime,
        };
        Ok(p)
    }

    /// Whether the change touches the policy (not only name, email, owner).
    pub fn touches_policy(&self) -> bool {
        self.traffic_limit.is_some()
            || self.traffic_warn_threshold.is_some()
            || self.limit_period.is_some()
            || self.reset_day.is_some()
            || self.expiry_date.is_some()
    }
}

#[cfg(test)]
mod tests;
