//! Sharing the fleet between replicas: which servers a replica keeps, takes
//! and gives up in one lease round. Pure: the store reads the leases and
//! the live replicas, asks [`plan_leases`], and writes the plan in the same
//! transaction.
//!
//! Each server has at most one lease: an owner, a fencing number and an
//! expiry. The owner renews its leases every round; a lease that expires
//! (its replica died or stalled) is free, and whoever takes it raises the
//! fence, so writes carrying the old fence are refused from then on. Every
//! replica aims at a fair share, `ceil(servers / live replicas)`: below it,
//! it takes free leases; above it, it gives up the excess, which the
//! replicas below their share then take.

/// One server's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub server: i64,
    pub owner: String,
    pub fence: i64,
    /// Unix milliseconds.
    pub expires_ms: i64,
}

/// A replica and its last heartbeat (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaBeat {
    pub id: String,
    pub heartbeat_ms: i64,
}

/// What one replica does in a round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeasePlan {
    /// Leases it holds and renews (by server id, ascending).
    pub keep: Vec<i64>,
    /// Free servers it takes (ascending), with the fence each then has.
    pub take: Vec<(i64, i64)>,
    /// Leases it holds and gives up now (they expire at once).
    pub release: Vec<i64>,
}

/// The fair share of `servers` among `replicas` (at least one: the caller).
pub fn fair_share(servers: usize, replicas: usize) -> usize {
    servers.div_ceil(replicas.max(1))
}

/// The round of replica `me` at `now_ms`. `servers` are all servers;
/// `replicas` those that have a heartbeat row (a heartbeat older than
/// `ttl_ms` is a dead replica's and does not count towards the share).
pub fn plan_leases(
    me: &str,
    now_ms: i64,
    ttl_ms: i64,
    servers: &[i64],
    leases: &[LeaseRow],
    replicas: &[ReplicaBeat],
) -> LeasePlan {
    let live = replicas.iter().filter(|r| r.id != me && r.heartbeat_ms + ttl_ms > now_ms).count() + 1;
    let share = fair_share(servers.len(), live);
    let lease_of = |server: i64| leases.iter().find(|l| l.server == server);
    let mut held = Vec::new();
    let mut free = Vec::new();
    for &server in servers {
        match lease_of(server) {
            Some(l) if l.expires_ms > now_ms && l.owner == me => held.push(server),
            Some(l) if l.expires_ms > now_ms => {}
            Some(l) => free.push((server, l.fence + 1)),
            None => free.push((server, 1)),
        }
    }
    held.sort_unstable();
    free.sort_unstable();
    let mut plan = LeasePlan::default();
    if held.len() > share {
        plan.release = held.split_off(share);
    } else {
        plan.take = free.into_iter().take(share - held.len()).collect();
    }
    plan.keep = held;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 30_000;

    fn lease(server: i64, owner: &str, fence: i64, expires_ms: i64) -> LeaseRow {
        LeaseRow { server, owner: owner.into(), fence, expires_ms }
    }

    fn beat(id: &str, at: i64) -> ReplicaBeat {
        ReplicaBeat { id: id.into(), heartbeat_ms: at }
    }

    #[test]
    fn a_lone_replica_takes_every_server() {
        let plan = plan_leases("a", 1_000, TTL, &[1, 2, 3], &[], &[]);
        assert_eq!(plan.take, [(1, 1), (2, 1), (3, 1)]);
        assert!(plan.keep.is_empty() && plan.release.is_empty());
    }

    #[test]
    fn a_second_replica_takes_a_fair_share_once_the_first_gives_up_its_excess() {
        let servers = [1, 2, 3, 4, 5];
        let now = 100_000;
        let mut leases: Vec<LeaseRow> = servers.iter().map(|&s| lease(s, "a", 1, now + TTL)).collect();
        let beats = [beat("a", now), beat("b", now)];
        // b arrives: nothing is free yet.
        let b = plan_leases("b", now, TTL, &servers, &leases, &beats);
        assert_eq!(b, LeasePlan::default());
        // a's round: share is 3 of 5, it gives up 4 and 5.
        let a = plan_leases("a", now, TTL, &servers, &leases, &beats);
        assert_eq!((a.keep, a.release), (vec![1, 2, 3], vec![4, 5]));
        for l in leases.iter_mut().filter(|l| l.server > 3) {
            l.expires_ms = now;
        }
        // b takes them, raising their fences.
        let b = plan_leases("b", now + 1, TTL, &servers, &leases, &beats);
        assert_eq!(b.take, [(4, 2), (5, 2)]);
    }

    #[test]
    fn a_dead_replicas_servers_are_taken_after_its_leases_expire() {
        let servers = [1, 2, 3, 4];
        let leases =
            [lease(1, "a", 3, 50_000), lease(2, "a", 3, 50_000), lease(3, "b", 1, 90_000), lease(4, "b", 1, 90_000)];
        // a stopped beating at 20 000; at 49 999 its leases still hold.
        let beats = [beat("a", 20_000), beat("b", 49_999)];
        let early = plan_leases("b", 49_999, TTL, &servers, &leases, &beats);
        assert_eq!((early.keep, early.take), (vec![3, 4], vec![]));
        // Expired: b is the only live replica, its share is all four.
        let late = plan_leases("b", 50_000, TTL, &servers, &leases, &beats);
        assert_eq!(late.take, [(1, 4), (2, 4)]);
        assert_eq!(late.keep, [3, 4]);
    }

    #[test]
    fn a_live_owners_lease_is_never_taken_even_above_its_share() {
        let leases = [lease(1, "a", 1, 60_000), lease(2, "a", 1, 60_000)];
        let beats = [beat("a", 40_000)];
        let b = plan_leases("b", 40_000, TTL, &[1, 2], &leases, &beats);
        assert_eq!(b, LeasePlan::default());
    }

    #[test]
    fn the_fair_share_rounds_up() {
        assert_eq!(fair_share(0, 2), 0);
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(200, 3), 67);
        assert_eq!(fair_share(3, 0), 3);
    }
}
