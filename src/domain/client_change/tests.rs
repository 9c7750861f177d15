use super::*;
use chrono::FixedOffset;
use serde_json::json;

fn parse(v: Value) -> Result<ClientChange, FieldError> {
    parse_change(v.as_object().unwrap(), &Utc)
}

#[test]
fn every_field_is_read_and_null_clears() {
    let c = parse(json!({
        "name": " Alice's phone; $(id) ", "email": "alice@example.org", "user_id": 3,
        "traffic_limit": 10_000_000_000u64, "traffic_warn_threshold": 90, "limit_period": "monthly",
        "reset_day": 31, "expiry_date": "2026-12-31T23:59:59Z",
    }))
    .unwrap();
    assert_eq!(c.name, Some(Some("Alice's phone; $(id)".into())), "stored as text, trimmed");
    assert_eq!(c.traffic_limit, Some(Some(10_000_000_000)));
    assert_eq!(c.reset_day, Some(Some(ResetDay::parse(31).unwrap())));
    assert_eq!(c.expiry_date, Some(Some(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap())));
    let cleared = parse(json!({"traffic_limit": null, "expiry_date": null, "name": null})).unwrap();
    assert_eq!((cleared.traffic_limit, cleared.expiry_date, cleared.name), (Some(None), Some(None), Some(None)));
    assert_eq!(parse(json!({})).unwrap(), ClientChange::default());
}

#[test]
fn bad_values_and_unknown_fields_name_the_field() {
    for (body, field) in [
        (json!({"traffic_limit": -1}), "traffic_limit"),
        (json!({"traffic_limit": "10GB"}), "traffic_limit"),
        (json!({"traffic_warn_threshold": 0}), "traffic_warn_threshold"),
        (json!({"traffic_warn_threshold": 101}), "traffic_warn_threshold"),
        (json!({"limit_period": "weekly"}), "limit_period"),
        (json!({"reset_day": 32}), "reset_day"),
        (json!({"expiry_date": "next tuesday"}), "expiry_date"),
        (json!({"email": "not an email"}), "email"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(300)}), "name"),
        (json!({"quota": 5}), "quota"),
    ] {
        assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
    }
}

#[test]
fn a_date_without_an_offset_is_a_time_in_the_panels_zone() {
    let berlin_winter = FixedOffset::east_opt(3600).unwrap();
    let body = json!({"expiry_date": "2026-12-31T23:59:59"});
    let c = parse_change(body.as_object().unwrap(), &berlin_winter).unwrap();
    assert_eq!(c.expiry_date, Some(Some(Utc.with_ymd_and_hms(2026, 12, 31, 22, 59, 59).unwrap())));
    let day = json!({"expiry_date": "2027-01-15"});
    let c = parse_change(day.as_object().unwrap(), &Utc).unwrap();
    assert_eq!(c.expiry_date, Some(Some(Utc.with_ymd_and_hms(2027, 1, 15, 0, 0, 0).unwrap())));
}

#[test]
fn a_change_applies_over_the_current_policy() {
    let current = ClientPolicy::default();
    let monthly = parse(json!({"limit_period": "monthly"})).unwrap().apply(&current).unwrap();
    assert_eq!(monthly.limit_period, LimitPeriod::Monthly { reset_day: ResetDay::parse(1).unwrap() });
    let day_15 = parse(json!({"reset_day": 15})).unwrap().apply(&monthly).unwrap();
    assert_eq!(day_15.limit_period, LimitPeriod::Monthly { reset_day: ResetDay::parse(15).unwrap() });
    let limited = parse(json!({"traffic_limit": 5})).unwrap().apply(&day_15).unwrap();
    assert_eq!((limited.traffic_limit, limited.limit_period), (Some(5), day_15.limit_period), "other fields kept");
    let back = parse(json!({"limit_period": "lifetime"})).unwrap().apply(&limited).unwrap();
    assert_eq!(back.limit_period, LimitPeriod::Lifetime);
    assert_eq!(parse(json!({"reset_day": 3})).unwrap().apply(&current).unwrap_err().field, "reset_day");
    assert!(!parse(json!({"name": "x"})).unwrap().touches_policy());
    assert!(parse(json!({"expiry_date": null})).unwrap().touches_policy());
}

#[test]
fn a_note_is_any_text_over_several_lines_and_empty_is_none() {
    let hostile = "owner: \"Bob\"; $(reboot) `id`\nsecond line\tend";
    assert_eq!(parse(json!({"note": hostile})).unwrap().note, Some(Some(hostile.to_owned())));
    assert_eq!(parse(json!({"note": "   "})).unwrap().note, Some(None));
    let from_a_form = format!("{}\r\n{}", "x".repeat(MAX_NOTE / 2), "y".repeat(MAX_NOTE / 2 - 1));
    let note = parse(json!({"note": from_a_form})).unwrap().note.unwrap().unwrap();
    assert_eq!((note.len(), note.contains('\r')), (MAX_NOTE, false), "CRLF counts and is kept as one line break");
    assert_eq!(parse(json!({"note": null})).unwrap().note, Some(None));
    assert_eq!(parse(json!({"note": "a\u{0}b"})).unwrap_err().field, "note");
    assert_eq!(parse(json!({"note": "x".repeat(MAX_NOTE + 1)})).unwrap_err().field, "note");
    assert_eq!(parse(json!({"note": 5})).unwrap_err().field, "note");
}
