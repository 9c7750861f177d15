use super::*;
use chrono::{FixedOffset, TimeZone};

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn day(d: i64) -> ResetDay {
    ResetDay::parse(d).unwrap()
}

#[test]
fn reset_days_and_thresholds_parse_only_in_range() {
    assert_eq!(ResetDay::parse(1).unwrap().get(), 1);
    assert_eq!(ResetDay::parse(31).unwrap().get(), 31);
    for bad in [0, 32, -1, 256] {
        assert_eq!(ResetDay::parse(bad), Err(PolicyError::ResetDay(bad)));
    }
    assert_eq!(Threshold::parse(80), Ok(Threshold::DEFAULT));
    assert!(Threshold::parse(0).is_err() && Threshold::parse(101).is_err());
}

#[test]
fn a_reset_on_the_31st_falls_on_the_last_day_of_short_months() {
    // February 2026 has 28 days, 2028 has 29.
    assert_eq!(period_start(day(31), utc(2026, 3, 10, 12, 0), &Utc), utc(2026, 2, 28, 0, 0));
    assert_eq!(period_start(day(31), utc(2028, 3, 10, 12, 0), &Utc), utc(2028, 2, 29, 0, 0));
    assert_eq!(period_start(day(31), utc(2026, 2, 27, 23, 59), &Utc), utc(2026, 1, 31, 0, 0));
    assert_eq!(period_start(day(31), utc(2026, 2, 28, 0, 0), &Utc), utc(2026, 2, 28, 0, 0));
    assert_eq!(next_period_start(day(31), utc(2026, 1, 31, 0, 0), &Utc), utc(2026, 2, 28, 0, 0));
    assert_eq!(next_period_start(day(31), utc(2026, 2, 28, 0, 0), &Utc), utc(2026, 3, 31, 0, 0));
    assert_eq!(period_start(day(30), utc(2026, 4, 30, 0, 0), &Utc), utc(2026, 4, 30, 0, 0));
}

#[test]
fn periods_are_calendar_months_not_thirty_days() {
    let start = period_start(day(1), utc(2026, 1, 15, 0, 0), &Utc);
    assert_eq!(start, utc(2026, 1, 1, 0, 0));
    assert_eq!(next_period_start(day(1), start, &Utc) - start, TimeDelta::days(31));
    let feb = next_period_start(day(1), start, &Utc);
    assert_eq!(next_period_start(day(1), feb, &Utc) - feb, TimeDelta::days(28));
    // Across the year's end.
    assert_eq!(period_start(day(15), utc(2027, 1, 3, 0, 0), &Utc), utc(2026, 12, 15, 0, 0));
}

#[test]
fn the_reset_moment_is_local_midnight_in_the_configured_zone() {
    let east = FixedOffset::east_opt(3 * 3600).unwrap();
    // 1 March 00:00 at UTC+3 is 28 February 21:00 UTC.
    assert_eq!(period_start(day(1), utc(2026, 2, 28, 21, 30), &east), utc(2026, 2, 28, 21, 0));
    assert_eq!(period_start(day(1), utc(2026, 2, 28, 20, 59), &east), utc(2026, 1, 31, 21, 0));
}

#[test]
fn traffic_is_judged_against_the_limit_and_the_threshold() {
    let t = Threshold::DEFAULT;
    assert_eq!(judge_traffic(5, None, t), TrafficVerdict::Unlimited);
    assert_eq!(judge_traffic(7_900, Some(10_000), t), TrafficVerdict::Within { percent: 79 });
    assert_eq!(judge_traffic(8_000, Some(10_000), t), TrafficVerdict::Warning { percent: 80 });
    assert_eq!(judge_traffic(9_999, Some(10_000), t), TrafficVerdict::Warning { percent: 99 });
    assert_eq!(judge_traffic(10_000, Some(10_000), t), TrafficVerdict::Exceeded { percent: 100 });
    assert_eq!(judge_traffic(10_700, Some(10_000), t), TrafficVerdict::Exceeded { percent: 107 });
    assert!(matches!(judge_traffic(0, Some(0), t), TrafficVerdict::Exceeded { .. }), "a zero limit blocks");
    assert_eq!(judge_traffic(u64::MAX, Some(1), t), TrafficVerdict::Exceeded { percent: u16::MAX });
    assert_eq!(usage_figures(11_489_037_517, 10_737_418_240), "usage 10.7 GB of 10 GB");
}

#[test]
fn expiry_warns_for_the_last_seven_days_and_then_expires() {
    let now = utc(2026, 11, 24, 12, 0);
    assert_eq!(judge_expiry(None, now), ExpiryVerdict::NoExpiry);
    assert_eq!(judge_expiry(Some(now + TimeDelta::days(8)), now), ExpiryVerdict::Fine);
    assert_eq!(judge_expiry(Some(now + TimeDelta::days(7)), now), ExpiryVerdict::Soon { days_left: 7 });
    assert_eq!(judge_expiry(Some(now + TimeDelta::days(3)), now), ExpiryVerdict::Soon { days_left: 3 });
    assert_eq!(judge_expiry(Some(now + TimeDelta::hours(1)), now), ExpiryVerdict::Soon { days_left: 1 });
    assert_eq!(judge_expiry(Some(now), now), ExpiryVerdict::Expired);
    assert_eq!(judge_expiry(Some(now - TimeDelta::seconds(1)), now), ExpiryVerdict::Expired);
}

#[test]
fn only_a_traffic_limit_disable_is_lifted_by_a_reset() {
    assert!(reset_reenables(DisableReason::TrafficLimit));
    for reason in [DisableReason::Manual, DisableReason::Expired, DisableReason::DeviceLimit] {
        assert!(!reset_reenables(reason), "{reason}");
        assert_eq!(DisableReason::parse(reason.as_str()), Some(reason));
    }
}

#[test]
fn an_expired_or_exhausted_client_is_not_restored_silently() {
    let fine = TrafficVerdict::Within { percent: 10 };
    assert_eq!(may_restore(fine, ExpiryVerdict::Expired), Err(RestoreRefused::Expired));
    assert_eq!(
        may_restore(TrafficVerdict::Exceeded { percent: 100 }, ExpiryVerdict::Fine),
        Err(RestoreRefused::OverLimit)
    );
    assert_eq!(may_restore(fine, ExpiryVerdict::Soon { days_left: 2 }), Ok(()));
}

#[test]
fn over_the_device_limit_the_oldest_sessions_go() {
    let s = |key: &'static str, min: u32| LiveSession { key, started: utc(2026, 11, 24, 12, min) };
    let sessions = [s("phone", 5), s("laptop", 1), s("tablet", 9)];
    assert_eq!(over_device_limit(&sessions, 1), vec!["laptop", "phone"]);
    assert_eq!(over_device_limit(&sessions, 2), vec!["laptop"]);
    assert!(over_device_limit(&sessions, 3).is_empty());
    assert!(over_device_limit(&sessions, 0).is_empty(), "0 means unlimited");
}

#[test]
fn the_enforcer_disables_for_expiry_first_then_for_the_limit() {
    let now = utc(2026, 11, 24, 12, 0);
    let t = Threshold::DEFAULT;
    assert_eq!(enforcement_verdict(5, Some(10), t, None, now), None);
    assert_eq!(enforcement_verdict(5, None, t, Some(now + TimeDelta::days(1)), now), None);
    let (reason, figures) = enforcement_verdict(11_489_037_517, Some(10_737_418_240), t, None, now).unwrap();
    assert_eq!((reason, figures.as_str()), (DisableReason::TrafficLimit, "usage 10.7 GB of 10 GB"));
    let (reason, figures) = enforcement_verdict(20, Some(10), t, Some(now), now).unwrap();
    assert_eq!(reason, DisableReason::Expired, "an expired client is disabled as expired");
    assert!(figures.starts_with("expired at 2026-11-24T12:00:00"), "{figures}");
}

#[test]
fn each_warning_is_given_once_per_crossing_or_day() {
    let now = utc(2026, 11, 24, 12, 0);
    let warn = TrafficVerdict::Warning { percent: 81 };
    let key = usage_warning_key("2026-11", 10_000);
    let due =
        warnings_due(warn, Some((key.clone(), 8_100, 10_000)), None, ExpiryVerdict::NoExpiry, None, "2026-11-24", None);
    assert_eq!(due.usage, Some((key.clone(), "usage 7.9 KB of 9.8 KB (81 %)".to_owned())));
    assert_eq!(due.expiry, None);
    let again = warnings_due(
        warn,
        Some((key.clone(), 8_200, 10_000)),
        Some(&key),
        ExpiryVerdict::NoExpiry,
        None,
        "2026-11-24",
        None,
    );
    assert_eq!(again, Warnings::default(), "already warned about this crossing");
    let raised = usage_warning_key("2026-11", 12_000);
    let new = warnings_due(
        warn,
        Some((raised, 9_800, 12_000)),
        Some(&key),
        ExpiryVerdict::NoExpiry,
        None,
        "2026-11-24",
        None,
    );
    assert!(new.usage.is_some(), "a raised limit crossed again warns again");
    let within = TrafficVerdict::Within { percent: 10 };
    assert_eq!(
        warnings_due(within, Some((key, 1, 10)), None, ExpiryVerdict::NoExpiry, None, "d", None),
        Warnings::default()
    );

    let at = now + TimeDelta::days(3);
    let soon = judge_expiry(Some(at), now);
    let first = warnings_due(within, None, None, soon, Some(at), "2026-11-24", None);
    assert_eq!(
        first.expiry.as_ref().map(|(d, f)| (d.as_str(), f.starts_with("expires in 3 days"))),
        Some(("2026-11-24", true))
    );
    assert_eq!(warnings_due(within, None, None, soon, Some(at), "2026-11-24", Some("2026-11-24")), Warnings::default());
    assert!(
        warnings_due(within, None, None, soon, Some(at), "2026-11-25", Some("2026-11-24")).expiry.is_some(),
        "next day"
    );
}

fn mark(start: DateTime<Utc>, base: u64) -> PeriodMark {
    PeriodMark { start, base }
}

#[test]
fn a_reset_on_day_31_happens_once_in_february_on_its_last_day() {
    let january = mark(utc(2026, 1, 31, 0, 0), 1_000);
    // 27 February: still January's period.
    assert_eq!(
        period_step(day(31), Some(january), 5_000, 0, utc(2026, 2, 27, 23, 59), &Utc),
        PeriodStep::Current(january)
    );
    // 28 February, local midnight: the new period, usage from zero.
    let reset = period_step(day(31), Some(january), 5_000, 0, utc(2026, 2, 28, 0, 0), &Utc);
    assert_eq!(reset, PeriodStep::Reset(mark(utc(2026, 2, 28, 0, 0), 5_000)));
    assert_eq!(reset.mark().used(5_000), 0);
    // Later passes in that period change nothing, until 31 March.
    let february = reset.mark();
    for now in [utc(2026, 2, 28, 0, 1), utc(2026, 3, 1, 0, 0), utc(2026, 3, 30, 23, 59)] {
        assert_eq!(period_step(day(31), Some(february), 9_000, 0, now, &Utc), PeriodStep::Current(february));
    }
    assert_eq!(
        period_step(day(31), Some(february), 9_000, 0, utc(2026, 3, 31, 0, 0), &Utc),
        PeriodStep::Reset(mark(utc(2026, 3, 31, 0, 0), 9_000))
    );
}

#[test]
fn resets_missed_while_the_panel_was_down_are_caught_up_once() {
    // Down from January to April: one reset, into April's period, not three.
    let january = mark(utc(2026, 1, 15, 0, 0), 100);
    let step = period_step(day(15), Some(january), 7_000, 0, utc(2026, 4, 20, 9, 0), &Utc);
    assert_eq!(step, PeriodStep::Reset(mark(utc(2026, 4, 15, 0, 0), 7_000)));
    assert_eq!(
        period_step(day(15), Some(step.mark()), 7_000, 0, utc(2026, 4, 20, 9, 1), &Utc),
        PeriodStep::Current(step.mark())
    );
}

#[test]
fn a_first_period_counts_the_calendar_months_bytes_only_when_it_began_by_the_1st() {
    // Reset day 1: the period is the calendar month; its bytes count.
    assert_eq!(
        period_step(day(1), None, 10_000, 3_000, utc(2026, 5, 20, 0, 0), &Utc),
        PeriodStep::Begin(mark(utc(2026, 5, 1, 0, 0), 7_000))
    );
    // Reset day 25, on 20 May: the period began 25 April, before the month's bytes.
    assert_eq!(
        period_step(day(25), None, 10_000, 3_000, utc(2026, 5, 20, 0, 0), &Utc),
        PeriodStep::Begin(mark(utc(2026, 4, 25, 0, 0), 7_000))
    );
    // Reset day 10, on 20 May: which of the month's bytes came after the 10th is unknown.
    assert_eq!(
        period_step(day(10), None, 10_000, 3_000, utc(2026, 5, 20, 0, 0), &Utc),
        PeriodStep::Begin(mark(utc(2026, 5, 10, 0, 0), 10_000))
    );
}

#[test]
fn periods_follow_the_configured_time_zone() {
    let tz = FixedOffset::east_opt(3 * 3600).unwrap();
    // 1 June 00:00 at UTC+3 is 31 May 21:00 UTC.
    let may = mark(utc(2026, 4, 30, 21, 0), 0);
    assert_eq!(period_step(day(1), Some(may), 5, 0, utc(2026, 5, 31, 20, 59), &tz), PeriodStep::Current(may));
    assert_eq!(
        period_step(day(1), Some(may), 5, 0, utc(2026, 5, 31, 21, 0), &tz),
        PeriodStep::Reset(mark(utc(2026, 5, 31, 21, 0), 5))
    );
}
