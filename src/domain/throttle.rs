//! Login throttling: failed attempts are counted per username and per client
//! address inside a sliding window; over the limit, logins wait until the
//! oldest counted failure leaves the window.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub failures: usize,
    pub window: TimeDelta,
}

/// A login attempt under way, counted as a failure until it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    address: String,
    username: String,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct LoginThrottle {
    per_user: Limit,
    per_address: Limit,
    /// Most keys tracked at once; beyond it the stalest key is forgotten.
    max_keys: usize,
    failures: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl Default for LoginThrottle {
    /// 5 failures per username and 20 per address in 15 minutes.
    fn default() -> Self {
        Self::new(
            Limit { failures: 5, window: TimeDelta::minutes(15) },
            Limit { failures: 20, window: TimeDelta::minutes(15) },
            100_000,
        )
    }
}

impl LoginThrottle {
    pub fn new(per_user: Limit, per_address: Limit, max_keys: usize) -> Self {
        Self { per_user, per_address, max_keys: max_keys.max(2), failures: HashMap::new() }
    }

    fn keys(address: &str, username: &str) -> [(String, bool); 2] {
        [(format!("user:{}", username.to_lowercase()), true), (format!("addr:{address}"), false)]
    }

    fn limit(&self, is_user: bool) -> Limit {
        if is_user {
            self.per_user
        } else {
            self.per_address
        }
    }

    /// `Err(seconds)` when a login from `address` as `username` must wait.
    pub fn check(&mut self, address: &str, username: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut wait = TimeDelta::zero();
        for (key, is_user) in Self::keys(address, username) {
            let limit = self.limit(is_user);
            if let Some(times) = self.failures.get_mut(&key) {
                prune(times, now, limit.window);
                if times.len() >= limit.failures {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(*oldest + limit.window - now);
                    }
                }
            }
        }
        if wait > TimeDelta::zero() {
            // Round up: "try again in 0 s" would be a lie.
            Err(u64::try_from((wait + TimeDelta::milliseconds(999)).num_seconds()).unwrap_or(1).max(1))
        } else {
            Ok(())
        }
    }

    /// Starts a login attempt: `Err(seconds)` when it must wait; otherwise
    /// the attempt is counted as a failure at once, before the password is
    /// checked, so that parallel attempts cannot all pass [`Self::check`].
    /// A right password takes it back with [`Self::succeeded`].
    pub fn begin(&mut self, address: &str, username: &str, now: DateTime<Utc>) -> Result<Attempt, u64> {
        self.check(address, username, now)?;
        self.record_failure(address, username, now);
        Ok(Attempt { address: address.to_owned(), username: username.to_owned(), at: now })
    }

    /// The attempt's password was right: the username's failures are
    /// cleared and the attempt no longer counts against the address.
    pub fn succeeded(&mut self, attempt: &Attempt) {
        self.record_success(&attempt.username);
        if let Some(times) = self.failures.get_mut(&format!("addr:{}", attempt.address)) {
            if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                times.remove(i);
            }
        }
    }

    pub fn record_failure(&mut self, address: &str, username: &str, now: DateTime<Utc>) {
        for (key, is_user) in Self::keys(address, username) {
            let limit = self.limit(is_user);
            let times = self.failures.entry(key).or_default();
            prune(times, now, limit.window);
            times.push_back(now);
            while times.len() > limit.failures {
                times.pop_front();
            }
        }
        if self.failures.len() > self.max_keys {
            self.evict(now);
        }
    }

    /// A successful login clears the username's failures (not the address's:
    /// one valid account must not unlock guessing at others).
    pub fn record_success(&mut self, username: &str) {
        self.failures.remove(&format!("user:{}", username.to_lowercase()));
    }

    fn evict(&mut self, now: DateTime<Utc>) {
        let window = self.per_user.window.max(self.per_address.window);
        self.failures.retain(|_, times| times.back().is_some_and(|t| now - *t < window));
        while self.failures.len() > self.max_keys {
            let stalest = self.failures.iter().min_by_key(|(_, times)| times.back().copied()).map(|(k, _)| k.clone());
            match stalest {
                Some(key) => {
                    self.failures.remove(&key);
                }
                None => break,
            }
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.failures.len()
    }
}

fn prune(times: &mut VecDeque<DateTime<Utc>>, now: DateTime<Utc>, window: TimeDelta) {
    while times.front().is_some_and(|t| now - *t >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_357_357 + secs, 0).unwrap()
    }

    #[test]
    fn the_sixth_wrong_password_for_a_user_waits_for_the_window() {
        let mut th = LoginThrottle::default();
        for i in 0..5 {
            assert_eq!(th.check("10.0.0.1", "admin", t(i)), Ok(()));
            th.record_failure("10.0.0.1", "admin", t(i));
        }
        // From another address too: the username is locked.
        assert_eq!(th.check("10.0.0.2", "Admin", t(10)), Err(15 * 60 - 10));
        assert_eq!(th.check("10.0.0.2", "other", t(10)), Ok(()));
        assert_eq!(th.check("10.0.0.2", "admin", t(15 * 60)), Ok(()));
    }

    #[test]
    fn attempts_count_before_their_passwords_are_checked() {
        let mut th = LoginThrottle::default();
        let started: Vec<_> = (0..50).map(|_| th.begin("10.0.0.1", "admin", t(0))).collect();
        assert_eq!(started.iter().filter(|a| a.is_ok()).count(), 5, "only five checked at once");
        // A right password among them frees the user and its own address slot.
        th.succeeded(started[0].as_ref().unwrap());
        assert!(th.begin("10.0.0.1", "admin", t(1)).is_ok());
        // The lockout ends with the window: the admin gets in afterwards.
        let mut th = LoginThrottle::default();
        for i in 0..5 {
            th.begin("10.0.0.1", "admin", t(i)).unwrap();
        }
        assert!(th.begin("10.0.0.2", "admin", t(60)).is_err());
        assert!(th.begin("10.0.0.2", "admin", t(15 * 60 + 4)).is_ok());
    }

    #[test]
    fn one_address_guessing_many_usernames_is_stopped() {
        let mut th = LoginThrottle::default();
        for i in 0..20 {
            th.record_failure("10.0.0.9", &format!("user{i}"), t(i));
        }
        assert!(th.check("10.0.0.9", "someone-new", t(30)).is_err());
        assert_eq!(th.check("10.0.0.8", "someone-new", t(30)), Ok(()));
    }

    #[test]
    fn success_clears_the_username_but_not_the_address() {
        let mut th = LoginThrottle::default();
        for i in 0..5 {
            th.record_failure("10.0.0.1", "admin", t(i));
        }
        th.record_success("admin");
        assert_eq!(th.check("10.0.0.1", "admin", t(6)), Ok(()));
        for i in 0..15 {
            th.record_failure("10.0.0.1", &format!("u{i}"), t(10 + i));
        }
        assert!(th.check("10.0.0.1", "admin", t(30)).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_usernames() {
        let mut th = LoginThrottle::new(
            Limit { failures: 5, window: TimeDelta::minutes(15) },
            Limit { failures: 1_000_000, window: TimeDelta::minutes(15) },
            100,
        );
        for i in 0..1_000 {
            th.record_failure("10.0.0.1", &format!("u{i}"), t(i));
        }
        assert!(th.tracked_keys() <= 100);
    }
}
