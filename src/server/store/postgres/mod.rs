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
//! implements the store's traits by calling them.

mod admins;
mod clients;
mod cluster;
mod events;
mod generated;
mod ingest;
mod openvpn;
mod reports;
mod servers;
mod users;
mod wireguard;

use super::{
    AccessChange, AdminRecord, AuthStore, ClientRecord, ClientUpdate, ClusterStore, EnforcementStamp, EventFilter,
    EventRecord, EventStore, GeneratedClient, IngestStore, LeaseRound, LiveDevice, NewEvent, NewServer, OpenvpnPoll,
    PendingSamples, PollOutcome, Replica, ReplicaRecord, ReportStore, ServerRecord, ServerStore, SessionFilter,
    SessionRecord, StoreError, UsageQuery, UsageRow, UserFields, UserRecord, UserStore, WireguardPoll,
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
        let store = Self { pool, write, sealer: None };
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

#[async_trait]
impl AuthStore for PostgresStore {
    async fn create_admin(
        &self,
        username: &Username,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError> {
        admins::create_admin(self, username, password_hash, now).await
    }

    async fn set_admin_password(&self, username: &Username, password_hash: &str) -> Result<(), StoreError> {
        admins::set_admin_password(self, username, password_hash).await
    }

    async fn delete_admin(&self, username: &Username) -> Result<(), StoreError> {
        admins::delete_admin(self, username).await
    }

    async fn admins(&self) -> Result<Vec<Username>, StoreError> {
        admins::admins(self).await
    }

    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError> {
        admins::admin_by_username(self, username).await
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        admin: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        admins::create_session(self, token_hash, admin, now, expires_at).await
    }

    async fn session_admin(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(UserId, Username)>, StoreError> {
        admins::session_admin(self, token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        admins::delete_session(self, token_hash).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        admins::delete_expired_sessions(self, now).await
    }
}

#[async_trait]
impl ServerStore for PostgresStore {
    async fn insert_server(&self, server: &NewServer, now: DateTime<Utc>) -> Result<ServerId, StoreError> {
        servers::insert_server(self, server, now).await
    }

    async fn servers(&self, now: DateTime<Utc>, month: &str) -> Result<Vec<ServerRecord>, StoreError> {
        servers::servers(self, now, month).await
    }

    async fn server(&self, id: ServerId, now: DateTime<Utc>, month: &str) -> Result<Option<ServerRecord>, StoreError> {
        servers::server(self, id, now, month).await
    }

    async fn pin_host_key(&self, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError> {
        servers::pin_host_key(self, id, pin).await
    }

    async fn clients(&self, server: ServerId, month: &str) -> Result<Vec<ClientRecord>, StoreError> {
        clients::clients(self, server, month).await
    }

    async fn client(&self, id: ClientId, month: &str) -> Result<Option<ClientRecord>, StoreError> {
        clients::client(self, id, month).await
    }

    async fn update_client(&self, id: ClientId, update: &ClientUpdate, event: &NewEvent) -> Result<(), StoreError> {
        clients::update_client(self, id, update, event).await
    }

    async fn set_access_many(&self, changes: &[AccessChange]) -> Result<Vec<bool>, StoreError> {
        clients::set_access_many(self, changes).await
    }

    fn secrets_ready(&self) -> Result<(), StoreError> {
        self.sealer().map(|_| ())
    }

    async fn insert_generated_client(
        &self,
        server: ServerId,
        client: &GeneratedClient,
        event: &NewEvent,
    ) -> Result<ClientId, StoreError> {
        generated::insert_generated_client(self, server, client, event).await
    }

    async fn set_push_token(&self, id: ServerId, hash: &[u8; 32], event: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE servers SET push_token_hash = $1 WHERE id = $2")
            .bind(hash.as_slice())
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        events::insert(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_token(&self, id: ServerId) -> Result<Option<Vec<u8>>, StoreError> {
        let hash: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT push_token_hash FROM servers WHERE id = $1")
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash.flatten())
    }

    async fn delete_client(&self, id: ClientId, keep_history: bool, event: &NewEvent) -> Result<(), StoreError> {
        clients::delete_client(self, id, keep_history, event.at.timestamp(), event).await
    }

    async fn client_config(&self, id: ClientId) -> Result<Option<Secret>, StoreError> {
        generated::client_config(self, id).await
    }

    async fn has_client_config(&self, id: ClientId) -> Result<bool, StoreError> {
        let has: Option<bool> =
            sqlx::query_scalar("SELECT client_config_sealed IS NOT NULL FROM clients WHERE id = $1")
                .bind(id.get())
                .fetch_optional(&self.pool)
                .await?;
        Ok(has.unwrap_or(false))
    }

    async fn confirm_many(&self, confirmed: &[(ClientId, bool)]) -> Result<(), StoreError> {
        clients::confirm_access(self, confirmed).await
    }

    async fn record_drift(&self, id: ServerId, found: u32) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE servers SET drift_count = drift_count + $1 WHERE id = $2")
            .bind(i64::from(found))
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_period(&self, id: ClientId, mark: PeriodMark, event: Option<&NewEvent>) -> Result<(), StoreError> {
        clients::start_period(self, id, mark, event).await
    }

    async fn record_warning(
        &self,
        id: ClientId,
        usage: Option<&str>,
        expiry_day: Option<&str>,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        clients::record_warning(self, id, usage, expiry_day, event).await
    }

    async fn clients_by_identity(
        &self,
        identity: &str,
        interface: &str,
        server: Option<ServerId>,
    ) -> Result<Vec<(ClientId, ServerId)>, StoreError> {
        clients::clients_by_identity(self, identity, interface, server).await
    }

    async fn set_managed(&self, server: ServerId, peers: &[(String, Vec<String>)]) -> Result<(), StoreError> {
        clients::set_managed(self, server, peers).await
    }
    async fn enforcement_stamp(&self, id: ServerId) -> Result<EnforcementStamp, StoreError> {
        servers::enforcement_stamp(self, id).await
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: &UserFields, event: &NewEvent) -> Result<UserId, StoreError> {
        users::create_user(self, user, event).await
    }

    async fn update_user(&self, id: UserId, user: &UserFields, event: &NewEvent) -> Result<(), StoreError> {
        users::update_user(self, id, user, event).await
    }

    async fn delete_user(&self, id: UserId, event: &NewEvent) -> Result<(), StoreError> {
        users::delete_user(self, id, event).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        users::users(self).await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        users::user(self, id).await
    }

    async fn live_sessions_of(
        &self,
        ids: &[UserId],
        now: DateTime<Utc>,
    ) -> Result<HashMap<UserId, Vec<LiveDevice>>, StoreError> {
        users::live_sessions_of(self, ids, now).await
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        events::record_event(self, event).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        events::events(self, filter).await
    }
}

#[async_trait]
impl IngestStore for PostgresStore {
    async fn apply_wireguard_poll(&self, id: ServerId, poll: &WireguardPoll<'_>) -> Result<PollOutcome, StoreError> {
        wireguard::apply_wireguard(self, id, poll).await
    }

    async fn apply_openvpn_poll(&self, id: ServerId, poll: &OpenvpnPoll<'_>) -> Result<PollOutcome, StoreError> {
        openvpn::apply_openvpn(self, id, poll).await
    }

    async fn record_poll_failure(&self, id: ServerId, at: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        servers::record_poll_failure(self, id, at, error).await
    }
}

#[async_trait]
impl ReportStore for PostgresStore {
    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        reports::sessions(self, filter).await
    }

    async fn session(&self, id: i64) -> Result<Option<SessionRecord>, StoreError> {
        reports::session(self, id).await
    }

    async fn delete_sessions_ended_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        reports::delete_sessions_ended_before(self, before).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        reports::usage(self, query).await
    }

    async fn pending_samples(&self) -> Result<PendingSamples, StoreError> {
        reports::pending_samples(self).await
    }

    async fn store_rollup(
        &self,
        pending: &PendingSamples,
        daily: &[(i64, String, Counters)],
        keep_samples_since: DateTime<Utc>,
        keep_hourly_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        reports::store_rollup(self, pending, daily, keep_samples_since, keep_hourly_since).await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        // PostgreSQL checkpoints its own write-ahead log.
        Ok(())
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn lease_round(&self, me: &Replica, now: DateTime<Utc>, ttl: Duration) -> Result<LeaseRound, StoreError> {
        cluster::lease_round(self, me, now, ttl).await
    }

    async fn leave(&self, me: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        cluster::leave(self, me, now).await
    }

    async fn claim_job(&self, name: &str, me: &str, now: DateTime<Utc>, ttl: Duration) -> Result<bool, StoreError> {
        cluster::claim_job(self, name, me, now, ttl).await
    }

    async fn cluster(&self) -> Result<Vec<ReplicaRecord>, StoreError> {
        cluster::cluster(self).await
    }
}
