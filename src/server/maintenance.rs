//! Housekeeping: rolling raw samples up into hourly and daily buckets and
//! dropping what is past its retention.

use crate::domain::accounting::{day_key, Counters};
use crate::server::store::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sums hourly buckets into calendar days of `tz`. An hour belongs to the day
/// its start falls on (for zones off by a fraction of an hour, a bucket is not
/// split).
pub fn daily_from_hourly(buckets: &[crate::server::store::HourlyBucket], tz: &Tz) -> Vec<(i64, String, Counters)> {
    let mut days: BTreeMap<(i64, String), Counters> = BTreeMap::new();
    for b in buckets {
        let Some(start) = DateTime::from_timestamp(b.hour, 0) else { continue };
        *days.entry((b.client_id, day_key(start, tz))).or_default() += b.bytes;
    }
    days.into_iter().map(|((c, d), bytes)| (c, d, bytes)).collect()
}

/// Rolls up every raw sample committed since the last roll-up, whatever
/// time its poll began at: hourly and daily sums always equal the monthly
/// ledger. Returns the number of hourly buckets written.
pub async fn roll_up(
    store: &dyn Store,
    tz: Tz,
    now: DateTime<Utc>,
    sample_retention: Duration,
    hourly_retention: Duration,
) -> Result<usize, StoreError> {
    let pending = store.pending_samples().await?;
    if pending.to <= pending.from {
        return Ok(0);
    }
    let daily = daily_from_hourly(&pending.hourly, &tz);
    let keep = |d: Duration| now - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let done = store.store_rollup(&pending, &daily, keep(sample_retention), keep(hourly_retention)).await?;
    Ok(if done { pending.hourly.len() } else { 0 })
}

/// What the maintenance task keeps, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub samples: Duration,
    pub hourly: Duration,
    /// Ended VPN sessions.
    pub sessions: Duration,
}

/// Deletes sessions that ended more than `keep` before `now`.
pub async fn prune_sessions(store: &dyn Store, now: DateTime<Utc>, keep: Duration) -> Result<u64, StoreError> {
    store.delete_sessions_ended_before(now - TimeDelta::from_std(keep).unwrap_or(TimeDelta::MAX)).await
}

/// How often [`run`] runs.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);

/// Runs [`roll_up`] and [`prune_sessions`] every ten minutes until
/// cancelled, on one replica at a time: the one holding the maintenance
/// job (`me` renews it every round; another takes it once it lapses).
pub async fn run(store: Arc<dyn Store>, me: String, tz: Tz, keep: Retention, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                match store.claim_job("maintenance", &me, Utc::now(), MAINTENANCE_EVERY * 3 / 2).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim the maintenance job");
                        continue;
                    }
                }
                match roll_up(store.as_ref(), tz, Utc::now(), keep.samples, keep.hourly).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(buckets = n, "rolled up traffic samples"),
                    Err(e) => tracing::warn!(error = %e, "could not roll up traffic samples"),
                }
                match prune_sessions(store.as_ref(), Utc::now(), keep.sessions).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "deleted old ended sessions"),
                    Err(e) => tracing::warn!(error = %e, "could not delete old ended sessions"),
                }
            }
        }
    }
}

/// How often [`checkpoints`] runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// Checkpoints the store every `every` until cancelled, so polls' commits
/// never do it themselves.
pub async fn checkpoints(store: Arc<dyn Store>, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                // Shutdown does not wait for a slow checkpoint: the next
                // start (or closing the last connection) finishes it.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    done = store.checkpoint() => {
                        if let Err(e) = done {
                            tracing::warn!(error = %e, "could not checkpoint the database");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::HourlyBucket;

    #[test]
    fn hours_fall_into_the_local_calendar_day() {
        let h = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        let buckets = [
            HourlyBucket { client_id: 1, hour: h("2026-11-30T22:00:00Z"), bytes: Counters::new(1, 2) },
            HourlyBucket { client_id: 1, hour: h("2026-11-30T23:00:00Z"), bytes: Counters::new(10, 20) },
            HourlyBucket { client_id: 2, hour: h("2026-11-30T23:00:00Z"), bytes: Counters::new(5, 5) },
        ];
        let berlin = daily_from_hourly(&buckets, &chrono_tz::Europe::Berlin);
        assert_eq!(
            berlin,
            vec![
                (1, "2026-11-30".to_owned(), Counters::new(1, 2)),
                (1, "2026-12-01".to_owned(), Counters::new(10, 20)),
                (2, "2026-12-01".to_owned(), Counters::new(5, 5)),
            ]
        );
        let utc = daily_from_hourly(&buckets, &Tz::UTC);
        assert_eq!(utc[0], (1, "2026-11-30".to_owned(), Counters::new(11, 22)));
    }
}
