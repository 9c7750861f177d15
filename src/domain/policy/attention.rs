//! When a client next needs the enforcer. Between a pass that found nothing
//! to do about a client and the first of these, no pass can find anything
//! either: the enforcer may skip the client without reading it. Usage only
//! grows, so a traffic verdict changes only when the usage reaches the next
//! boundary; time-bound verdicts change only at the moments given here.

use super::period::{local_midnight, next_period_start, period_start};
use super::{ResetDay, Threshold, EXPIRY_WARNING};
use chrono::{DateTime, Days, TimeZone, Utc};

/// The smallest usage above `used` at which [`super::judge_traffic`] gives another
/// kind of verdict (within → warning → exceeded); `None`: it never will
/// (no limit, or the limit is already reached).
pub fn next_traffic_change(used: u64, limit: Option<u64>, threshold: Threshold) -> Option<u64> {
    let limit = limit?;
    if used >= limit {
        return None;
    }
    let warn_at = (u128::from(limit) * u128::from(threshold.get())).div_ceil(100);
    let warn_at = u64::try_from(warn_at).unwrap_or(u64::MAX);
    Some(if used < warn_at && warn_at < limit { warn_at } else { limit })
}

/// The next local midnight after `now` in `tz`: when a new day's warning
/// may be due.
fn next_local_midnight<Tz: TimeZone>(now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    let today = now.with_timezone(tz).date_naive();
    local_midnight(today.checked_add_days(Days::new(1)).unwrap_or(today), tz)
}

/// The next moment an expiry date calls for a look: the start of the
/// warning window, then each local midnight in it (one warning a day), and
/// the expiry itself. Once expired: each local midnight (a client that
/// could not be blocked is looked at again daily).
pub fn next_expiry_check<Tz: TimeZone>(
    expiry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    let expiry = expiry?;
    let window = expiry - EXPIRY_WARNING;
    if now < window {
        return Some(window);
    }
    let midnight = next_local_midnight(now, tz);
    Some(if now < expiry { midnight.min(expiry) } else { midnight })
}

/// The next reset moment of a monthly period, after `now`.
pub fn next_reset<Tz: TimeZone>(reset_day: ResetDay, now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    next_period_start(reset_day, period_start(reset_day, now, tz), tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::TrafficVerdict;
    use std::mem::discriminant;

    /// Whether two traffic verdicts are of the same kind (percentages aside).
    fn same_kind(a: TrafficVerdict, b: TrafficVerdict) -> bool {
        discriminant(&a) == discriminant(&b)
    }
    use crate::domain::policy::{judge_expiry, judge_traffic, ExpiryVerdict};
    use chrono::{FixedOffset, TimeDelta};

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn the_next_traffic_change_is_exactly_where_the_verdict_changes_kind() {
        for limit in [0u64, 1, 2, 3, 7, 99, 100, 101, 1000, 10_000_000_019] {
            for percent in [1, 33, 79, 80, 99, 100] {
                let threshold = Threshold::parse(percent).unwrap();
                let mut used = 0;
                let mut steps = 0;
                while let Some(next) = next_traffic_change(used, Some(limit), threshold) {
                    assert!(next > used, "{used} of {limit} at {percent} %: {next}");
                    let here = judge_traffic(used, Some(limit), threshold);
                    assert!(
                        same_kind(here, judge_traffic(next - 1, Some(limit), threshold)),
                        "no change before {next}"
                    );
                    assert!(!same_kind(here, judge_traffic(next, Some(limit), threshold)), "a change at {next}");
                    used = next;
                    steps += 1;
                }
                assert!(matches!(judge_traffic(used, Some(limit), threshold), TrafficVerdict::Exceeded { .. }));
                assert!(steps <= 2);
            }
        }
        assert_eq!(next_traffic_change(5, None, Threshold::DEFAULT), None, "no limit: never");
        assert_eq!(next_traffic_change(u64::MAX - 1, Some(u64::MAX), Threshold::DEFAULT), Some(u64::MAX));
    }

    #[test]
    fn expiry_is_looked_at_when_the_window_opens_each_local_midnight_in_it_and_at_expiry() {
        let tz = FixedOffset::east_opt(3 * 3600).unwrap();
        let expiry = utc(2026, 12, 10, 15, 0);
        let now = utc(2026, 11, 24, 12, 0);
        let window = next_expiry_check(Some(expiry), now, &tz).unwrap();
        assert_eq!(window, expiry - EXPIRY_WARNING);
        assert_eq!(judge_expiry(Some(expiry), window - TimeDelta::seconds(1)), ExpiryVerdict::Fine);
        assert!(matches!(judge_expiry(Some(expiry), window), ExpiryVerdict::Soon { .. }));
        // Inside the window: the next local midnight (21:00 UTC at UTC+3).
        assert_eq!(next_expiry_check(Some(expiry), utc(2026, 12, 5, 12, 0), &tz), Some(utc(2026, 12, 5, 21, 0)));
        // The last day: the expiry comes before midnight.
        assert_eq!(next_expiry_check(Some(expiry), utc(2026, 12, 10, 1, 0), &tz), Some(expiry));
        assert_eq!(next_expiry_check(Some(expiry), expiry, &tz), Some(utc(2026, 12, 10, 21, 0)));
        assert_eq!(next_expiry_check(None, now, &tz), None);
    }

    #[test]
    fn the_next_reset_follows_the_clamped_reset_day() {
        let day = ResetDay::parse(31).unwrap();
        assert_eq!(next_reset(day, utc(2026, 2, 10, 0, 0), &Utc), utc(2026, 2, 28, 0, 0));
        assert_eq!(next_reset(day, utc(2026, 2, 28, 0, 0), &Utc), utc(2026, 3, 31, 0, 0));
        assert_eq!(next_local_midnight(utc(2026, 3, 31, 23, 59), &Utc), utc(2026, 4, 1, 0, 0));
    }
}
