//! [`Store`](super::Store) on an embedded SQLite file: WAL journal, a busy
//! timeout, one writer connection and a small pool of read-only readers.
//!
//! Files depend downward only: `ingest` (the
//! packed live state and what every poll writes) ← `servers`, `reports`,
//! `wireguard`, `openvpn`; `admins` stands alone. This file opens the pools
//! and implements the store's traits by calling them (`delegate::impl_store_ports`).

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer checkpoints the write-ahead log itself only past this many
/// pages (64 MiB); normally [`Store::checkpoint`], called in the background,
/// keeps it far smaller, so a poll's commit never pays for a checkpoint.
const WAL_BACKSTOP_PAGES: &str = "16384";

#[derive(Clone)]
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
    /// One connection that moves the write-ahead log into the database
    /// file, beside the writer rather than in its commits.
    checkpointer: SqlitePool,
    /// Seals and opens secrets at rest; without it none can be stored.
    sealer: Option<Arc<Sealer>>,
    /// Big servers' states between polls (`state_cache`).
    pub(in crate::server::store) states: Arc<StateCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`, applies pending
    /// migrations, and restricts the file to its owner: it holds password
    /// hashes and may hold SSH keys.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        restrict_permissions(options.get_filename().to_path_buf());
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let store = Self { write, read, checkpointer, sealer: None, states: Arc::default() };
        clients::free_deleted_keys(&store).await?;
        Ok(store)
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
    /// returned as it is (startup seals those, see
    /// [`SqliteStore::seal_plaintext_secrets`]).
    pub(super) fn unseal(&self, aad: &str, stored: &str) -> Result<Secret, StoreError> {
        if !is_sealed(stored) {
            return Ok(Secret::new(stored.to_owned()));
        }
        Ok(self.sealer()?.open(aad, stored)?)
    }

    /// Seals every secret still stored in plaintext (SSH private keys given
    /// inline, OpenVPN management passwords). Returns how many.
    pub async fn seal_plaintext_secrets(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ssh_private_key, openvpn_management_password FROM servers \
             WHERE ssh_private_key NOT LIKE 'v1:%' OR openvpn_management_password NOT LIKE 'v1:%'",
        )
        .fetch_all(&self.write)
        .await?;
        let mut sealed = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
            for column in ["ssh_private_key", "openvpn_management_password"] {
                let Some(plain) = row.try_get::<Option<String>, _>(column)?.filter(|v| !is_sealed(v)) else {
                    continue;
                };
                let value = self.seal(&format!("servers.{column}:{id}"), &plain)?;
                sqlx::query(&format!("UPDATE servers SET {column} = ? WHERE id = ?"))
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
        self.read.close().await;
        self.checkpointer.close().await;
        self.write.close().await;
    }
}

fn restrict_permissions(path: PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = vec![path.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        paths.push(PathBuf::from(p));
    }
    for p in paths {
        if p.exists() {
            if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %p.display(), error = %e, "could not restrict database file permissions");
            }
        }
    }
}

async fn checkpoint(store: &SqliteStore) -> Result<(), StoreError> {
    // PASSIVE: copies what it can without waiting for readers or the
    // writer, so it never holds up a poll.
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&store.checkpointer).await?;
    Ok(())
}

super::delegate::impl_store_ports!(SqliteStore);
