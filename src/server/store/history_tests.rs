//! A client's traffic history on both backends: bytes not rolled up yet
//! come from the raw samples, rolled-up ones from the buckets, and a
//! snapshot never holds the same bytes in both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::{apply_dump, test_server, test_stores};
use super::HistorySince;
use crate::domain::accounting::{day_key, hour_key, month_key, Counters};
use crate::domain::keys::PublicKey;
use crate::domain::Protocol;
use chrono::{DateTime, TimeDelta};

fn dump(rx: u64, tx: u64, at: DateTime<chrono::Utc>) -> String {
    let own = PublicKey::from_bytes([1; 32]).to_base64();
    let peer = PublicKey::from_bytes([4; 32]).to_base64();
    let seen = at.timestamp() - 5;
    format!("{own}\t{own}\t51820\toff\n{peer}\t(none)\t198.18.3.1:4000\t10.7.0.2/32\t{seen}\t{rx}\t{tx}\toff\n")
}

fn total(buckets: &[(i64, Counters)]) -> Counters {
    buckets.iter().fold(Counters::ZERO, |a, (_, c)| a.saturating_add(*c))
}

#[tokio::test]
async fn a_clients_history_has_its_bytes_once_before_and_after_the_roll_up() {
    for store in test_stores("client_history").await {
        let b = store.backend();
        let tz = chrono_tz::UTC;
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let month = month_key(t0, &tz);
        let server = store.insert_server(&test_server("history", Protocol::Wireguard), t0).await.unwrap();
        let mut at = t0;
        for (step, (rx, tx)) in [(1_000, 2_000), (5_000, 9_000), (8_000, 20_000)].into_iter().enumerate() {
            apply_dump(&*store, server, &dump(rx, tx, at), at, step == 0).await;
            at += TimeDelta::seconds(30);
        }
        let client = store.clients(server, &month).await.unwrap().remove(0).id;
        let since = HistorySince { hour: hour_key(t0) - 3600, day: day_key(t0, &tz), month: month.clone() };
        // Two polls after the first moved 7,000 up and 18,000 down.
        let moved = Counters::new(7_000, 18_000);

        let before = store.client_history(client, server, &since).await.unwrap();
        assert_eq!(total(&before.pending), moved, "{b}: not rolled up yet, from the samples");
        assert!(before.hourly.is_empty() && before.daily.is_empty(), "{b}: {before:?}");
        let month_total =
            |h: &super::ClientHistory| h.monthly.iter().fold(Counters::ZERO, |a, (_, c)| a.saturating_add(*c));
        assert_eq!(month_total(&before), moved, "{b}: the month's bytes still in the live state count: {before:?}");
        let other = super::test_support::test_server("other", Protocol::Wireguard);
        let other = store.insert_server(&other, t0).await.unwrap();
        assert!(
            store.client_history(client, other, &since).await.unwrap().pending.is_empty(),
            "{b}: its own server's polls only"
        );

        let rolled = crate::server::maintenance::roll_up(
            &*store,
            tz,
            at,
            std::time::Duration::from_secs(86_400),
            std::time::Duration::from_secs(86_400 * 35),
        )
        .await
        .unwrap();
        assert!(rolled > 0, "{b}");
        let after = store.client_history(client, server, &since).await.unwrap();
        assert!(after.pending.is_empty(), "{b}: {after:?}");
        assert_eq!(total(&after.hourly), moved, "{b}");
        assert_eq!(after.daily, vec![(day_key(t0, &tz), moved)], "{b}");
        assert_eq!(month_total(&after), moved, "{b}: the roll-up moves nothing between months");
        let later = HistorySince {
            hour: hour_key(t0) + 3600,
            day: day_key(t0 + TimeDelta::days(1), &tz),
            month: "2099-01".into(),
        };
        let none = store.client_history(client, server, &later).await.unwrap();
        assert!(none.hourly.is_empty() && none.daily.is_empty() && none.monthly.is_empty(), "{b}: the span is kept");

        assert_eq!(store.fleet_daily(None, &day_key(t0, &tz)).await.unwrap(), vec![(day_key(t0, &tz), moved)], "{b}");
        assert_eq!(store.fleet_daily(Some(server), &day_key(t0, &tz)).await.unwrap().len(), 1, "{b}");
        assert!(store.fleet_daily(Some(other), &day_key(t0, &tz)).await.unwrap().is_empty(), "{b}");
        store.finish().await;
    }
}
