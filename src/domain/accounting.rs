//! Reset-aware traffic accounting.
//!
//! Hosts report cumulative counters per *source*: a WireGuard peer, or one
//! OpenVPN session. Counters start at zero when the source is created and are
//! lost when it goes away (peer removed, interface restarted, client
//! disconnected). From the last counters the panel applied and a new poll,
//! [`delta`] says how many bytes to add:
//!
//! - a source seen before and present in the previous poll: `new − last`;
//!   if either counter went down the source was reset in between, and the
//!   new value is all new traffic;
//! - a source that was absent from the previous poll and is back: a new
//!   counter object (WireGuard destroys a removed peer's counters), so its
//!   whole value is new traffic; what was counted before is not counted again;
//! - a source never seen before: on the server's first poll its counters
//!   predate the panel and are *carried in* (added to lifetime totals, never
//!   to a month); on any later poll it appeared since the previous poll, so
//!   its counters are new traffic.
//!
//! The one case no counter-based method can tell apart: a source reset and
//! then grown past its old value between two polls (the polls in between were
//! missed). It is then counted as `new − last`, under-counting the bytes sent
//! before the reset; polling more often than resets happen avoids it.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A pair of cumulative counters, from the host's point of view: `rx` is
/// what the host received from the client (the client's upload), `tx` what
/// it sent (the client's download).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counters {
    pub rx: u64,
    pub tx: u64,
}

impl Counters {
    pub const ZERO: Counters = Counters { rx: 0, tx: 0 };

    pub fn new(rx: u64, tx: u64) -> Self {
        Self { rx, tx }
    }

    pub fn is_zero(self) -> bool {
        self.rx == 0 && self.tx == 0
    }

    pub fn total(self) -> u64 {
        self.rx.saturating_add(self.tx)
    }

    pub fn saturating_add(self, other: Counters) -> Counters {
        Counters { rx: self.rx.saturating_add(other.rx), tx: self.tx.saturating_add(other.tx) }
    }

    pub fn saturating_sub(self, other: Counters) -> Counters {
        Counters { rx: self.rx.saturating_sub(other.rx), tx: self.tx.saturating_sub(other.tx) }
    }
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, other: Counters) {
        *self = self.saturating_add(other);
    }
}

/// What the panel remembers about a counter source between polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceState {
    /// The counters as of the last poll in which the source was present.
    pub last: Counters,
    /// Whether the source was present in the previous poll.
    pub present: bool,
}

/// Bytes to add for one source in one poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Traffic since the previous poll: counts everywhere (month, hour, day,
    /// lifetime, session).
    pub new: Counters,
    /// Counters that predate the panel: lifetime totals only.
    pub carried: Counters,
}

/// How a never-seen source's counters are treated; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstSight {
    /// The server's first poll: the counters predate the panel.
    CarryIn,
    /// A later poll: the source appeared since the previous poll.
    Count,
}

/// Whether a source's counters can start again from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterScope {
    /// A WireGuard peer: its counters are lost when the interface restarts
    /// or the peer is removed, so a lower reading is a reset.
    Resettable,
    /// An OpenVPN session: its key includes its start, so its counters only
    /// grow. A lower reading is stale data (a status file that lags the
    /// management interface) and adds nothing; an absence does not end the
    /// counters either.
    Monotonic,
}

/// The bytes to add for a source now reading `now`, given what was known.
pub fn delta(previous: Option<SourceState>, now: Counters, first_sight: FirstSight) -> Delta {
    scoped_delta(CounterScope::Resettable, previous, now, first_sight)
}

/// The counters to remember after reading `now`: for a monotonic source the
/// highest seen in each direction, else the reading itself.
pub fn remembered(scope: CounterScope, last: Option<Counters>, now: Counters) -> Counters {
    match (scope, last) {
        (CounterScope::Monotonic, Some(last)) => Counters::new(last.rx.max(now.rx), last.tx.max(now.tx)),
        _ => now,
    }
}

/// [`delta`] for a source of the given scope.
pub fn scoped_delta(
    scope: CounterScope,
    previous: Option<SourceState>,
    now: Counters,
    first_sight: FirstSight,
) -> Delta {
    if let (CounterScope::Monotonic, Some(state)) = (scope, previous) {
        return Delta { new: now.saturating_sub(state.last), carried: Counters::ZERO };
    }
    match previous {
        None => match first_sight {
            FirstSight::CarryIn => Delta { new: Counters::ZERO, carried: now },
            FirstSight::Count => Delta { new: now, carried: Counters::ZERO },
        },
        Some(state) if !state.present => Delta { new: now, carried: Counters::ZERO },
        Some(state) if now.rx < state.last.rx || now.tx < state.last.tx => Delta { new: now, carried: Counters::ZERO },
        Some(state) => {
            Delta { new: Counters::new(now.rx - state.last.rx, now.tx - state.last.tx), carried: Counters::ZERO }
        }
    }
}

/// The calendar month of `at` in `tz`, as `YYYY-MM`: the monthly ledger's key.
pub fn month_key<Tz: TimeZone>(at: DateTime<Utc>, tz: &Tz) -> String {
    let local = at.with_timezone(tz);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The calendar day of `at` in `tz`, as `YYYY-MM-DD`: the daily rollup's key.
pub fn day_key<Tz: TimeZone>(at: DateTime<Utc>, tz: &Tz) -> String {
    let local = at.with_timezone(tz);
    format!("{:04}-{:02}-{:02}", local.year(), local.month(), local.day())
}

/// The start of the UTC hour containing `at`, in Unix seconds: the hourly
/// rollup's key.
pub fn hour_key(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600) * 3600
}

/// Parses a `YYYY-MM` month as typed on a command line.
pub fn parse_month(text: &str) -> Option<String> {
    let (y, m) = text.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = m.parse().ok()?;
    (1..=12).contains(&month).then(|| format!("{y}-{m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn seen(rx: u64, tx: u64) -> Option<SourceState> {
        Some(SourceState { last: Counters::new(rx, tx), present: true })
    }

    #[test]
    fn growing_counters_add_their_growth() {
        let d = delta(seen(1000, 50), Counters::new(1500, 80), FirstSight::Count);
        assert_eq!(d, Delta { new: Counters::new(500, 30), carried: Counters::ZERO });
    }

    #[test]
    fn a_poll_applied_twice_adds_nothing_the_second_time() {
        let d = delta(seen(1500, 80), Counters::new(1500, 80), FirstSight::Count);
        assert!(d.new.is_zero() && d.carried.is_zero());
    }

    #[test]
    fn a_counter_reset_counts_the_new_value_as_new_traffic() {
        let d = delta(seen(1_000_000, 2_000_000), Counters::new(300, 2_500_000), FirstSight::Count);
        assert_eq!(d.new, Counters::new(300, 2_500_000), "either counter going down means a reset");
    }

    #[test]
    fn a_source_back_after_an_absence_is_a_new_counter_object() {
        let gone = Some(SourceState { last: Counters::new(400, 400), present: false });
        assert_eq!(delta(gone, Counters::new(900, 100), FirstSight::Count).new, Counters::new(900, 100));
    }

    #[test]
    fn a_lower_reading_of_a_session_counter_is_stale_and_adds_nothing() {
        let last = Counters::new(200_000, 300_000);
        let state = Some(SourceState { last, present: true });
        let stale = Counters::new(150_000, 250_000);
        let d = scoped_delta(CounterScope::Monotonic, state, stale, FirstSight::Count);
        assert_eq!(d, Delta::default());
        assert_eq!(remembered(CounterScope::Monotonic, Some(last), stale), last);
        // A reading lower in one direction only still counts the other's growth once.
        let mixed = Counters::new(199_000, 300_500);
        assert_eq!(scoped_delta(CounterScope::Monotonic, state, mixed, FirstSight::Count).new, Counters::new(0, 500));
        assert_eq!(remembered(CounterScope::Monotonic, Some(last), mixed), Counters::new(200_000, 300_500));
        // Absent from the previous poll and back: only its growth counts.
        let back = Some(SourceState { last, present: false });
        let grown = Counters::new(201_000, 302_000);
        assert_eq!(
            scoped_delta(CounterScope::Monotonic, back, grown, FirstSight::Count).new,
            Counters::new(1_000, 2_000)
        );
    }

    #[test]
    fn first_sight_carries_in_on_the_first_poll_and_counts_later() {
        let first = delta(None, Counters::new(7, 9), FirstSight::CarryIn);
        assert_eq!(first, Delta { new: Counters::ZERO, carried: Counters::new(7, 9) });
        let later = delta(None, Counters::new(7, 9), FirstSight::Count);
        assert_eq!(later, Delta { new: Counters::new(7, 9), carried: Counters::ZERO });
    }

    #[test]
    fn months_and_days_follow_the_configured_time_zone() {
        // 2026-11-30 23:30 UTC is already December in UTC+02:00.
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap();
        assert_eq!(month_key(at, &Utc), "2026-11");
        let east = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(month_key(at, &east), "2026-12");
        assert_eq!(day_key(at, &east), "2026-12-01");
        assert_eq!(hour_key(at), Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap().timestamp());
    }

    #[test]
    fn months_parse_only_in_the_yyyy_mm_form() {
        assert_eq!(parse_month("2025-04"), Some("2025-04".into()));
        for bad in ["2025-4", "2025-13", "25-04", "2025/04", "2025-00", "abcd-ef"] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }
}
