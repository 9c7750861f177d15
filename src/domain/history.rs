//! Traffic history as chart bars: hourly (UTC hours), daily and monthly
//! (days and months of the configured time zone), every bucket of the
//! span present, empty ones at zero. Pure: the store hands in the
//! buckets it has, `now` fixes the span.

use crate::domain::accounting::Counters;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One bucket of a chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// The whole bucket: `2026-11-24 13:00 UTC`, `2026-11-24`, `2026-11`.
    pub key: String,
    /// Its short axis label: `13h`, `24`, `Nov`.
    pub label: String,
    /// Bytes the client sent (uploaded) and received (downloaded).
    pub sent: u64,
    pub received: u64,
}

impl Bar {
    pub fn total(&self) -> u64 {
        self.sent.saturating_add(self.received)
    }
}

/// The `hours` UTC hours up to and including the one `now` is in; buckets
/// are keyed by their start in Unix seconds.
pub fn hourly(now: DateTime<Utc>, hours: u32, buckets: &[(i64, Counters)]) -> Vec<Bar> {
    let sums = sum(buckets.iter().map(|(k, c)| (*k, *c)));
    let last = now.timestamp().div_euclid(3600) * 3600;
    (0..i64::from(hours))
        .rev()
        .filter_map(|back| DateTime::from_timestamp(last - back * 3600, 0))
        .map(|start| {
            let c = sums.get(&start.timestamp()).copied().unwrap_or(Counters::ZERO);
            bar(start.format("%Y-%m-%d %H:00 UTC").to_string(), start.format("%Hh").to_string(), c)
        })
        .collect()
}

/// The `days` days up to and including `today`; buckets keyed `YYYY-MM-DD`.
pub fn daily(today: NaiveDate, days: u32, buckets: &[(String, Counters)]) -> Vec<Bar> {
    let sums = sum(buckets.iter().map(|(k, c)| (k.as_str(), *c)));
    (0..i64::from(days))
        .rev()
        .filter_map(|back| today.checked_sub_signed(TimeDelta::days(back)))
        .map(|day| {
            let key = day.format("%Y-%m-%d").to_string();
            let c = sums.get(key.as_str()).copied().unwrap_or(Counters::ZERO);
            bar(key, day.day().to_string(), c)
        })
        .collect()
}

/// The `months` months up to and including the one of `today`; buckets
/// keyed `YYYY-MM`.
pub fn monthly(today: NaiveDate, months: u32, buckets: &[(String, Counters)]) -> Vec<Bar> {
    let sums = sum(buckets.iter().map(|(k, c)| (k.as_str(), *c)));
    let first = today.with_day(1).unwrap_or(today);
    (0..months)
        .rev()
        .filter_map(|back| first.checked_sub_months(Months::new(back)))
        .map(|month| {
            let key = month.format("%Y-%m").to_string();
            let c = sums.get(key.as_str()).copied().unwrap_or(Counters::ZERO);
            bar(key, month.format("%b").to_string(), c)
        })
        .collect()
}

/// The first day of the span [`daily`] draws, as its key.
pub fn first_day(today: NaiveDate, days: u32) -> String {
    today
        .checked_sub_signed(TimeDelta::days(i64::from(days.max(1)) - 1))
        .unwrap_or(today)
        .format("%Y-%m-%d")
        .to_string()
}

/// The first month of the span [`monthly`] draws, as its key.
pub fn first_month(today: NaiveDate, months: u32) -> String {
    let first = today.with_day(1).unwrap_or(today);
    first.checked_sub_months(Months::new(months.max(1) - 1)).unwrap_or(first).format("%Y-%m").to_string()
}

fn sum<K: std::hash::Hash + Eq>(buckets: impl Iterator<Item = (K, Counters)>) -> HashMap<K, Counters> {
    let mut sums: HashMap<K, Counters> = HashMap::new();
    for (k, c) in buckets {
        let e = sums.entry(k).or_insert(Counters::ZERO);
        *e = e.saturating_add(c);
    }
    sums
}

fn bar(key: String, label: String, c: Counters) -> Bar {
    Bar { key, label, sent: c.rx, received: c.tx }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hours_run_up_to_now_with_the_empty_ones_at_zero_and_a_bucket_counted_once_each() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 13, 42, 0).unwrap();
        let h = |hh: u32| Utc.with_ymd_and_hms(2026, 11, 24, hh, 0, 0).unwrap().timestamp();
        let bars = hourly(
            now,
            3,
            &[
                (h(13), Counters::new(5, 7)),
                (h(11), Counters::new(1, 0)),
                (h(13), Counters::new(1, 1)),
                (h(2), Counters::new(9, 9)),
            ],
        );
        let got: Vec<(&str, &str, u64, u64)> =
            bars.iter().map(|b| (b.key.as_str(), b.label.as_str(), b.sent, b.received)).collect();
        assert_eq!(
            got,
            vec![
                ("2026-11-24 11:00 UTC", "11h", 1, 0),
                ("2026-11-24 12:00 UTC", "12h", 0, 0),
                ("2026-11-24 13:00 UTC", "13h", 6, 8),
            ]
        );
        assert_eq!(bars[2].total(), 14);
    }

    #[test]
    fn days_and_months_cross_month_and_year_ends() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let bars =
            daily(today, 4, &[("2025-12-31".into(), Counters::new(3, 4)), ("2026-01-02".into(), Counters::new(1, 1))]);
        let keys: Vec<&str> = bars.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02"]);
        assert_eq!((bars[1].label.as_str(), bars[1].sent, bars[1].received), ("31", 3, 4));
        assert_eq!(first_day(today, 4), "2025-12-30");

        let bars =
            monthly(today, 3, &[("2025-11".into(), Counters::new(2, 2)), ("2024-11".into(), Counters::new(9, 9))]);
        let got: Vec<(&str, &str, u64)> = bars.iter().map(|b| (b.key.as_str(), b.label.as_str(), b.total())).collect();
        assert_eq!(got, vec![("2025-11", "Nov", 4), ("2025-12", "Dec", 0), ("2026-01", "Jan", 0)]);
        assert_eq!(first_month(today, 3), "2025-11");
        assert_eq!(first_month(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), 2), "2026-02");
    }
}
