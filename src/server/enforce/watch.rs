//! What the enforcer remembers between passes, so that a pass with nothing
//! to do reads one row and walks the poll's figures instead of reading and
//! judging every client.
//!
//! A full pass that leaves nothing pending remembers, per client, the
//! lifetime total at which it next needs a look (its traffic verdict changes
//! kind: see [`next_traffic_change`]) and whether it is a disabled WireGuard
//! peer (back on the host is drift); per server, the first moment a verdict
//! can change with time alone (an expiry window, a local midnight in it, a
//! monthly reset; at most [`TRUST`] ahead); and the stamp it was read at. A
//! later pass is *quiet* — it has nothing to do — while the stamp's policy
//! version is the same (any change to a client's policy, access, owner,
//! warnings or period, or to an owner's device limit, bumps it), that
//! moment has not come, and no figure of a new poll reached its boundary.

use crate::domain::policy::{next_expiry_check, next_reset, next_traffic_change, DisableReason, LimitPeriod};
use crate::domain::{ClientId, UserId};
use crate::server::enforce::period_usage;
use crate::server::store::{ClientRecord, EnforcementStamp, PollFigures};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// The longest a remembered pass is trusted: a full pass runs at least this
/// often, whatever the watch says (a net under the policy version, which
/// every change to what a pass decides by already bumps).
pub const TRUST: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone, Copy)]
struct Look {
    /// The lifetime total (sent + received) at which the client needs a
    /// look; `u64::MAX`: not by traffic.
    at_total: u64,
    /// Must stay off the host (a disabled WireGuard peer).
    off_host: bool,
}

/// A user with devices on this server whose device limit a quiet pass
/// still checks (live sessions change on every server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedUser {
    pub id: UserId,
    /// 0: no limit.
    pub max: u32,
    /// This server's devices of the user disabled for the device limit.
    pub held_here: usize,
}

#[derive(Debug)]
struct Basis {
    stamp: EnforcementStamp,
    until: DateTime<Utc>,
    clients: HashMap<ClientId, Look>,
    users: Vec<WatchedUser>,
}

/// The enforcer's memory of one server's last full pass.
#[derive(Debug, Default)]
pub struct Watch {
    basis: Option<Basis>,
    /// Full passes remembered so far.
    full_passes: u64,
}

impl Watch {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next pass reads everything.
    pub fn forget(&mut self) {
        self.basis = None;
    }

    /// Whether a pass at `now` has nothing to do, given the server's stamp
    /// and, when a poll was applied since the last pass, its figures. The
    /// device limits of [`Watch::users`] are not part of it.
    pub fn quiet(&self, stamp: EnforcementStamp, figures: Option<&PollFigures>, now: DateTime<Utc>) -> bool {
        let Some(basis) = &self.basis else { return false };
        if stamp.policy_version != basis.stamp.policy_version || now >= basis.until {
            return false;
        }
        let Some(figures) = figures else {
            // Without figures, only if no poll was applied since.
            return stamp.polls_applied == basis.stamp.polls_applied;
        };
        // The figures of the latest poll only (another process may have
        // applied one since).
        if figures.polls_applied != stamp.polls_applied {
            return false;
        }
        figures.clients.iter().all(|f| match basis.clients.get(&f.client) {
            Some(look) => f.total < look.at_total && !(look.off_host && f.on_host),
            // A client the pass did not list (a WireGuard peer off the host):
            // back on the host, it needs judging.
            None => !f.on_host,
        })
    }

    /// Notes a quiet pass at `stamp`: its figures were judged.
    pub fn advance(&mut self, stamp: EnforcementStamp) {
        if let Some(basis) = &mut self.basis {
            basis.stamp = stamp;
        }
    }

    /// How many full passes were remembered (quiet passes are not).
    pub fn full_passes(&self) -> u64 {
        self.full_passes
    }

    /// The users whose device limits a quiet pass checks.
    pub fn users(&self) -> &[WatchedUser] {
        self.basis.as_ref().map_or(&[], |b| b.users.as_slice())
    }

    /// Remembers a full pass that read `clients` at `stamp` (before
    /// changing anything), with the figures of the poll before it if any
    /// (used only if they are of the stamp's poll). A pass that left a
    /// change pending is not remembered.
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &mut self,
        stamp: EnforcementStamp,
        clients: &[ClientRecord],
        figures: Option<&PollFigures>,
        users: Vec<WatchedUser>,
        wireguard: bool,
        now: DateTime<Utc>,
        tz: &Tz,
    ) {
        self.basis = None;
        self.full_passes += 1;
        if clients.iter().any(|c| c.pending) {
            return;
        }
        let mut until = now + TRUST;
        let mut looks = HashMap::with_capacity(clients.len());
        for c in clients {
            if let LimitPeriod::Monthly { reset_day } = c.policy.limit_period {
                until = until.min(next_reset(reset_day, now, tz));
            }
            let look = if c.disabled {
                Look { at_total: u64::MAX, off_host: wireguard }
            } else {
                if let Some(at) = next_expiry_check(c.policy.expiry_date, now, tz) {
                    until = until.min(at);
                }
                let (used, limit) = period_usage(c, now, tz);
                let base = c.total.total().saturating_sub(used);
                let at_total = next_traffic_change(used, limit, c.policy.traffic_warn_threshold)
                    .map_or(u64::MAX, |next| base.saturating_add(next));
                Look { at_total, off_host: false }
            };
            looks.insert(c.id, look);
        }
        // Listed nowhere but in the state (a deleted client): never judged.
        let current = figures.filter(|f| f.polls_applied == stamp.polls_applied);
        for f in current.map_or(&[][..], |f| f.clients.as_slice()) {
            looks.entry(f.client).or_insert(Look { at_total: u64::MAX, off_host: !f.on_host });
        }
        self.basis = Some(Basis { stamp, until, clients: looks, users });
    }
}

/// The users of `clients` a quiet pass keeps checking: those with a device
/// limit, and those with devices here disabled for it.
pub fn watched_users(clients: &[ClientRecord], max_of: impl Fn(UserId) -> Option<u32>) -> Vec<WatchedUser> {
    let mut users: HashMap<UserId, usize> = HashMap::new();
    for c in clients {
        if let Some(uid) = c.user_id {
            *users.entry(uid).or_default() += usize::from(c.disabled_reason == Some(DisableReason::DeviceLimit));
        }
    }
    let mut watched: Vec<WatchedUser> = users
        .into_iter()
        .filter_map(|(id, held_here)| {
            let max = max_of(id)?;
            (max > 0 || held_here > 0).then_some(WatchedUser { id, max, held_here })
        })
        .collect();
    watched.sort_by_key(|u| u.id);
    watched
}
