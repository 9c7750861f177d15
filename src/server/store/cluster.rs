//! The port for replicas sharing one database: heartbeats, server leases
//! with fencing numbers, and jobs that run on one replica at a time. The
//! decisions are [`crate::domain::cluster`]'s; the stores write them.

use super::StoreError;
use crate::domain::ServerId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// This process, as the other replicas see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Random, new at every start.
    pub id: String,
    /// Host name and process id, for people.
    pub name: String,
    /// Where the others reach it (`http://host:port`), if they can.
    pub address: Option<String>,
}

/// The replica that holds a server's live lease, and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    pub replica: String,
    pub address: Option<String>,
}

/// The right to write one server's polls: the owner and the fencing number
/// its lease had when taken. A poll carrying a fence that is no longer the
/// lease's (another replica took it over) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub number: i64,
}

/// What a replica holds after a lease round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRound {
    /// Servers it holds, with their fences (kept and newly taken).
    pub held: Vec<(ServerId, i64)>,
    /// Servers it gave up this round (to replicas below their share).
    pub released: Vec<ServerId>,
}

/// A replica and the leases it holds, for `GET /api/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaRecord {
    pub id: String,
    pub name: String,
    pub address: Option<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub leases: Vec<LeaseRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRecord {
    pub server_id: ServerId,
    pub fence: i64,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// One round for `me` at `now`: records its heartbeat, renews its
    /// leases for `ttl`, takes free ones up to its fair share and gives up
    /// any above it — one transaction.
    async fn lease_round(&self, me: &Replica, now: DateTime<Utc>, ttl: Duration) -> Result<LeaseRound, StoreError>;

    /// `me` stops: its leases expire now, its job claims and heartbeat row
    /// go, so the others take its servers and jobs in their next round.
    async fn leave(&self, me: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Takes or renews job `name` for `me` until `now + ttl`; false while
    /// another replica holds it.
    async fn claim_job(&self, name: &str, me: &str, now: DateTime<Utc>, ttl: Duration) -> Result<bool, StoreError>;

    /// The replicas with a heartbeat and their leases.
    async fn cluster(&self) -> Result<Vec<ReplicaRecord>, StoreError>;

    /// Who holds `server`'s lease at `now`, if anyone.
    async fn lease_owner(&self, server: ServerId, now: DateTime<Utc>) -> Result<Option<LeaseOwner>, StoreError>;
}

/// `now + ttl` in Unix milliseconds.
pub(super) fn until_ms(now: DateTime<Utc>, ttl: Duration) -> i64 {
    now.timestamp_millis().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The statements of a lease round, the same text on both backends
/// (SQLite binds `$N` by number too).
pub(super) mod sql {
    pub const HEARTBEAT: &str = "INSERT INTO replicas (id, name, started_at, heartbeat_at, address) \
        VALUES ($1, $2, $3, $3, $4) \
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, address = EXCLUDED.address";
    /// Heartbeat rows of replicas gone for ten lease times are forgotten.
    pub const FORGET: &str = "DELETE FROM replicas WHERE heartbeat_at < $1";
    pub const SERVERS: &str = "SELECT id FROM servers ORDER BY id";
    pub const LEASES: &str = "SELECT server_id, owner, fence, expires_at FROM server_leases";
    pub const BEATS: &str = "SELECT id, heartbeat_at FROM replicas";
    pub const RENEW: &str = "UPDATE server_leases SET expires_at = $1 WHERE owner = $2 AND expires_at > $3";
    pub const TAKE: &str = "INSERT INTO server_leases (server_id, owner, fence, expires_at) VALUES ($1, $2, $3, $4) \
        ON CONFLICT (server_id) DO UPDATE SET owner = EXCLUDED.owner, fence = EXCLUDED.fence, \
        expires_at = EXCLUDED.expires_at";
    pub const RELEASE: &str = "UPDATE server_leases SET expires_at = $1 WHERE server_id = $2 AND owner = $3";
    pub const LEAVE: &str = "UPDATE server_leases SET expires_at = $1 WHERE owner = $2 AND expires_at > $1";
    pub const GONE: &str = "DELETE FROM replicas WHERE id = $1";
    pub const JOBS_GONE: &str = "DELETE FROM job_leases WHERE owner = $1";
    /// Takes the job when free, expired or already ours; returns a row when taken.
    pub const CLAIM: &str = "INSERT INTO job_leases (name, owner, expires_at) VALUES ($1, $2, $3) \
        ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
        WHERE job_leases.owner = EXCLUDED.owner OR job_leases.expires_at <= $4 RETURNING name";
    pub const REPLICAS: &str =
        "SELECT id, name, address, started_at, heartbeat_at FROM replicas ORDER BY started_at, id";
    pub const OWNER: &str = "SELECT l.owner, r.address FROM server_leases l LEFT JOIN replicas r ON r.id = l.owner \
        WHERE l.server_id = $1 AND l.expires_at > $2";
    pub const HELD: &str = "SELECT server_id, owner, fence, expires_at FROM server_leases ORDER BY server_id";
}

/// Turns the replica and lease rows into records.
pub(super) fn records(
    replicas: &[impl super::rows::Columns],
    leases: &[impl super::rows::Columns],
) -> Result<Vec<ReplicaRecord>, StoreError> {
    let ms = |v: i64| DateTime::from_timestamp_millis(v).ok_or_else(|| super::rows::corrupt("time", v));
    let mut out = Vec::with_capacity(replicas.len());
    for r in replicas {
        let id = r.text("id")?;
        let mut held = Vec::new();
        for l in leases.iter().filter(|l| l.text("owner").is_ok_and(|o| o == id)) {
            held.push(LeaseRecord {
                server_id: ServerId::new(l.int("server_id")?),
                fence: l.int("fence")?,
                expires_at: ms(l.int("expires_at")?)?,
            });
        }
        out.push(ReplicaRecord {
            name: r.text("name")?,
            address: r.opt_text("address")?,
            started_at: ms(r.int("started_at")?)?,
            heartbeat_at: ms(r.int("heartbeat_at")?)?,
            leases: held,
            id,
        });
    }
    Ok(out)
}

/// The plan of `me`'s round from the rows read in its transaction.
pub(super) fn plan_round(
    me: &str,
    now_ms: i64,
    ttl: Duration,
    servers: &[i64],
    leases: &[impl super::rows::Columns],
    beats: &[impl super::rows::Columns],
) -> Result<crate::domain::cluster::LeasePlan, StoreError> {
    use crate::domain::cluster::{plan_leases, LeaseRow, ReplicaBeat};
    let leases = leases
        .iter()
        .map(|l| {
            Ok(LeaseRow {
                server: l.int("server_id")?,
                owner: l.text("owner")?,
                fence: l.int("fence")?,
                expires_ms: l.int("expires_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let beats = beats
        .iter()
        .map(|b| Ok(ReplicaBeat { id: b.text("id")?, heartbeat_ms: b.int("heartbeat_at")? }))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    Ok(plan_leases(me, now_ms, ttl_ms, servers, &leases, &beats))
}

/// The lease owner from its row ([`sql::OWNER`]).
pub(super) fn owner_of(row: Option<&impl super::rows::Columns>) -> Result<Option<LeaseOwner>, StoreError> {
    row.map(|r| Ok(LeaseOwner { replica: r.text("owner")?, address: r.opt_text("address")? })).transpose()
}

/// The fences of the leases read, by server.
pub(super) fn leases_fences(leases: &[impl super::rows::Columns]) -> Result<Vec<(i64, i64)>, StoreError> {
    leases.iter().map(|l| Ok((l.int("server_id")?, l.int("fence")?))).collect()
}

/// The round's outcome: kept leases with their fences, taken ones with
/// their new fences, and the released.
pub(super) fn round_of(plan: &crate::domain::cluster::LeasePlan, fences: &[(i64, i64)]) -> LeaseRound {
    let fence_of = |server: i64| fences.iter().find(|(s, _)| *s == server).map_or(0, |(_, f)| *f);
    let mut held: Vec<(ServerId, i64)> = plan.keep.iter().map(|&s| (ServerId::new(s), fence_of(s))).collect();
    held.extend(plan.take.iter().map(|&(s, f)| (ServerId::new(s), f)));
    held.sort_unstable_by_key(|(s, _)| s.get());
    LeaseRound { held, released: plan.release.iter().copied().map(ServerId::new).collect() }
}
