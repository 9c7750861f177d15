//! Monthly limit periods: real calendar months in the configured time zone,
//! starting at local midnight of the reset day (clamped to the month's last
//! day), and the one reset per period the enforcer carries out.

use super::ResetDay;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, TimeZone, Utc};

/// The latest reset moment at or before `now`: local midnight of the reset
/// day (clamped to the month's length) in `tz`.
pub fn period_start<Tz: TimeZone>(reset_day: ResetDay, now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    let local = now.with_timezone(tz).date_naive();
    let this_month = reset_date(local.year(), local.month(), reset_day);
    let date = if this_month <= local {
        this_month
    } else {
        let previous = local.with_day(1).and_then(|d| d.checked_sub_months(Months::new(1))).unwrap_or(local);
        reset_date(previous.year(), previous.month(), reset_day)
    };
    local_midnight(date, tz)
}

/// The reset moment after `start` (the next month's reset day).
pub fn next_period_start<Tz: TimeZone>(reset_day: ResetDay, start: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    let local = start.with_timezone(tz).date_naive();
    let next = local.with_day(1).and_then(|d| d.checked_add_months(Months::new(1))).unwrap_or(local);
    local_midnight(reset_date(next.year(), next.month(), reset_day), tz)
}

fn reset_date(year: i32, month: u32, day: ResetDay) -> NaiveDate {
    let last = last_day(year, month);
    NaiveDate::from_ymd_opt(year, month, u32::from(day.get()).min(last)).unwrap_or(NaiveDate::MIN)
}

fn last_day(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    u32::try_from((next - first).num_days()).unwrap_or(28)
}

/// Local midnight of `date`; where a clock change skips midnight, the first
/// moment of the day that exists.
pub(super) fn local_midnight<Tz: TimeZone>(date: NaiveDate, tz: &Tz) -> DateTime<Utc> {
    let mut at = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&at).earliest() {
            return t.with_timezone(&Utc);
        }
        at += TimeDelta::minutes(30);
    }
    at.and_utc()
}

/// Where a client's monthly period stands: its start and the client's
/// lifetime byte total (sent + received) at that start. The period's usage
/// is the lifetime total now minus `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodMark {
    pub start: DateTime<Utc>,
    pub base: u64,
}

impl PeriodMark {
    /// Bytes used in the period, given the lifetime total now.
    pub fn used(&self, total: u64) -> u64 {
        total.saturating_sub(self.base)
    }
}

/// What a pass must do about a client's monthly period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodStep {
    /// The stored period is the current one.
    Current(PeriodMark),
    /// No period was stored yet (the monthly limit was just set): the first
    /// one starts, counting the bytes known to fall in it.
    Begin(PeriodMark),
    /// A reset moment has passed since the stored period began: one new
    /// period starts, however many reset days were missed (the panel was
    /// down), and the client's usage starts from zero.
    Reset(PeriodMark),
}

impl PeriodStep {
    pub fn mark(self) -> PeriodMark {
        match self {
            Self::Current(m) | Self::Begin(m) | Self::Reset(m) => m,
        }
    }
}

/// Decides a client's period at `now`. `stored` is the period kept for it,
/// `total` its lifetime bytes now and `month_bytes` its bytes in the current
/// calendar month (the only earlier bytes whose time is known: a first
/// period that began on or before the month's first day counts them).
pub fn period_step<Tz: TimeZone>(
    reset_day: ResetDay,
    stored: Option<PeriodMark>,
    total: u64,
    month_bytes: u64,
    now: DateTime<Utc>,
    tz: &Tz,
) -> PeriodStep {
    let start = period_start(reset_day, now, tz);
    match stored {
        Some(mark) if mark.start >= start => PeriodStep::Current(mark),
        Some(_) => PeriodStep::Reset(PeriodMark { start, base: total }),
        None => {
            let month_start = period_start(ResetDay(1), now, tz);
            let known = if start <= month_start { month_bytes.min(total) } else { 0 };
            PeriodStep::Begin(PeriodMark { start, base: total - known })
        }
    }
}
