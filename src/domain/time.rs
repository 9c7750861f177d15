//! Human forms of instants. The UI renders absolute UTC on the server and
//! switches to relative text after hydration, so both forms live here.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// "just now", "3 min ago", "5 h ago", "12 days ago"; "in the future" for
/// instants after `now` by more than a minute (clock skew).
pub fn relative(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = now.signed_duration_since(then).num_seconds();
    if secs < -60 {
        return "in the future".to_owned();
    }
    match secs {
        ..=9 => "just now".to_owned(),
        10..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        86_400..=172_799 => "1 day ago".to_owned(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// "2026-11-22 14:03 UTC": what the page shows before (or without) scripts.
pub fn absolute(at: DateTime<Utc>) -> String {
    // By hand rather than `format`: the browser's copy then carries no
    // strftime machinery.
    format!("{} {:02}:{:02} UTC", date(at), at.hour(), at.minute())
}

/// "2026-11-22T14:03:09Z": ISO 8601 in UTC, whole seconds.
pub fn iso(at: DateTime<Utc>) -> String {
    format!("{}T{:02}:{:02}:{:02}Z", date(at), at.hour(), at.minute(), at.second())
}

fn date(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day())
}

/// A length of time in its two largest units: "45 s", "12 min",
/// "2 h 05 min", "3 d 4 h".
pub fn duration(secs: u64) -> String {
    match secs {
        ..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_as_strftime_would() {
        for secs in [0, 1_795_357_357, 1_795_357_357 + 86_399, 4_102_444_799, -1] {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            assert_eq!(absolute(at), at.format("%Y-%m-%d %H:%M UTC").to_string());
            assert_eq!(iso(at), at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }

    #[test]
    fn lengths_of_time_show_their_two_largest_units() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(3599), "59 min");
        assert_eq!(duration(3600 + 5 * 60 + 7), "1 h 05 min");
        assert_eq!(duration(86_399), "23 h 59 min");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59), "3 d 4 h");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = DateTime::from_timestamp(1_795_357_357, 0).unwrap();
        let ago = |s: i64| relative(now - chrono::TimeDelta::seconds(s), now);
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(180), "3 min ago");
        assert_eq!(ago(2 * 3600 + 5), "2 h ago");
        assert_eq!(ago(86_400), "1 day ago");
        assert_eq!(ago(12 * 86_400), "12 days ago");
        assert_eq!(ago(-30), "just now");
        assert_eq!(ago(-600), "in the future");
        assert_eq!(absolute(now), "2026-11-22 14:22 UTC");
    }
}
