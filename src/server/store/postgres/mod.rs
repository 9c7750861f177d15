//! [`Store`](super::Store) on PostgreSQL, for a fleet served by several
//! replicas. The same tables and rules as SQLite (`migrations/postgres`),
//! and the same semantics: the packed live state, the one-transaction poll,
//! the monthly ledger, roll-ups and retention.
//!
//! Writes are serialised as SQLite's single writer serialises them: every
//! write transaction first takes one transaction-level advisory lock
//! ([`PostgresStore::begin_write`]), so the read-modify-write steps written
//! for one writer stay correct with many replicas, writers never deadlock,
//! and `traffic_polls.seq` is handed out in commit order (the roll-up
//! relies on it). Reads run in parallel on the pool. A poll holds the lock
//! for a few milliseconds (see docs/BENCHMARKS.md), so one lock carries a
//! fleet of hundreds of hosts.
//!
//! Files depend downward only, as in the SQLite store: `ingest` ←
//! `servers`, `reports`, `wireguard`, `openvpn`, `clients`; `admins`,
//! `events` and `users` stand alone. This file opens the pool and
//! implements the store's traits by calling them (`delegate::impl_store_ports`).

mod admins;
mod clients;
mod cluster;
mod events;
mod generated;
mod ingest;
pub mod notify;
mod openvpn;
mod reports;
mod servers;
mod users;
mod wireguard;

use super::state_cache::StateCache;
use super::{
    AccessChange, AdminRecord, AuthStore, ClientRecord, ClientUpdate, ClusterStore, EnforcementStamp, EventFilter,
    EventRecord, EventStore, GeneratedClient, IngestStore, LeaseOwner, LeaseRound, LiveDevice, NewEvent, NewServer,
    OpenvpnPoll, PendingSamples, PollOutcome, Replica, ReplicaRecord, ReportStore, ServerRecord, ServerStore,
    SessionFilter, SessionRecord, StoreError, UsageQuery, UsageRow, UserFields, UserRecord, UserStore, WireguardPoll,
};
use crate::domain::accounting::Counters;
use crate::domain::policy::PeriodMark;
use crate::domain::{ClientId, HostKeyPin, Secret, ServerId, UserId, Username};
use crate::server::sealer::{is_sealed, SealError, Sealer};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A write transaction holding the write lock until it ends.
pub(super) type Tx = Transaction<'static, Postgres>;

/// The advisory lock every write transaction holds (any fixed number; this
/// one spells "tollgate").
const WRITE_LOCK: i64 = 0x746f_6c6c_6761_7465;

#[derive(Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    /// The connections write transactions run on (see [`Self::begin_write`]).
    write: PgPool,
    /// Seals and opens secrets at rest; without it none can be stored.
    sealer: Option<Arc<Sealer>>,
    /// Big servers' states between polls (`state_cache`).
    pub(in crate::server::store) states: Arc<StateCache>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or
    /// `postgresql://`) and applies pending migrations; replicas starting
    /// together apply them once (the migrator holds an advisory lock).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("tollgate")
            // A replica frozen inside a transaction must not hold the write
            // lock for ever: PostgreSQL ends such a session.
            .options([("idle_in_transaction_session_timeout", "10s")])
            .disable_statement_logging()
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        // Writers wait for the write lock on connections of their own, so
        // that waiting never starves the readers.
        // The wait for the write lock is bounded as SQLite's busy timeout
        // bounds it (then `Busy`).
        let lock_timeout = format!("{}ms", super::sqlite::BUSY_TIMEOUT.as_millis());
        let write = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.options([("lock_timeout", lock_timeout)]))
            .await?;
        let store = Self { pool, write, sealer: None, states: Arc::default() };
        clients::free_deleted_keys(&store).await?;
        Ok(store)
    }

    /// Starts a write transaction: waits for the write lock (see the
    /// module's documentation), which the transaction's end releases.
    /// Read committed whatever the database's default, so reads after the
    /// lock see the previous writer's commit.
    pub(super) async fn begin_write(&self) -> Result<Tx, StoreError> {
        let mut tx = self.write.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// A read-only transaction on one snapshot, as SQLite's read
    /// transactions are: the rows and live states read in it agree.
    pub(super) async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
    }

    /// The store with the panel's secrets key: secrets are sealed when
    /// written and opened when read.
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// The secrets key, or the error that says it is missing.
    fn sealer(&self) -> Result<&Sealer, StoreError> {
        Ok(self.sealer.as_deref().ok_or(SealError::NoKey)?)
    }

    /// Seals `plain` for `aad`; without a key, refuses (never plaintext).
    pub(super) fn seal(&self, aad: &str, plain: &str) -> Result<String, StoreError> {
        Ok(self.sealer()?.seal(aad, plain)?)
    }

    /// Opens a stored secret; a value stored before sealing existed is
    /// returned as it is.
    pub(super) fn unseal(&self, aad: &str, stored: &str) -> Result<Secret, StoreError> {
        if !is_sealed(stored) {
            return Ok(Secret::new(stored.to_owned()));
        }
        Ok(self.sealer()?.open(aad, stored)?)
    }

    /// Seals every secret still stored in plaintext. Returns how many.
    pub async fn seal_plaintext_secrets(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ssh_private_key, openvpn_management_password FROM servers \
             WHERE ssh_private_key NOT LIKE 'v1:%' OR openvpn_management_password NOT LIKE 'v1:%'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sealed = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let mut tx = self.begin_write().await?;
            for column in ["ssh_private_key", "openvpn_management_password"] {
                let Some(plain) = row.try_get::<Option<String>, _>(column)?.filter(|v| !is_sealed(v)) else {
                    continue;
                };
                let value = self.seal(&format!("servers.{column}:{id}"), &plain)?;
                sqlx::query(&format!("UPDATE servers SET {column} = $1 WHERE id = $2 AND {column} NOT LIKE 'v1:%'"))
                    .bind(value)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sealed += 1;
            }
            tx.commit().await?;
        }
        Ok(sealed)
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.pool.close().await;
    }
}

/// Whether `url` names a PostgreSQL database (else it is a SQLite file).
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The PostgreSQL URL `url` naming database `name` instead of its own
/// (tests and benchmarks create databases of their own this way).
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_start..].find('/').map_or(base.len(), |i| host_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out = format!("{out}?{q}");
    }
    out
}

async fn checkpoint(_: &PostgresStore) -> Result<(), StoreError> {
    // PostgreSQL checkpoints its own write-ahead log.
    Ok(())
}

super::delegate::impl_store_ports!(PostgresStore);
