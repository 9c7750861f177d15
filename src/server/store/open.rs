//! Choosing the backend by the database URL's scheme.

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreError};
use crate::server::bus::{EventBus, LocalBus};
use crate::server::sealer::Sealer;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The store of either backend, with what only opening and closing need.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens `url`: `postgres://` / `postgresql://` on PostgreSQL, anything
    /// else as a SQLite file. Pending migrations are applied.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if super::postgres::is_url(url) {
            Ok(Self::Postgres(PostgresStore::open(url).await?))
        } else {
            Ok(Self::Sqlite(SqliteStore::open(url).await?))
        }
    }

    pub fn with_sealer(self, sealer: Arc<Sealer>) -> Self {
        match self {
            Self::Sqlite(s) => Self::Sqlite(s.with_sealer(sealer)),
            Self::Postgres(s) => Self::Postgres(s.with_sealer(sealer)),
        }
    }

    /// Seals every secret still stored in plaintext; returns how many.
    pub async fn seal_plaintext_secrets(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.seal_plaintext_secrets().await,
            Self::Postgres(s) => s.seal_plaintext_secrets().await,
        }
    }

    /// The store behind the port.
    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The event bus of this store's panel (`me`: this replica's id):
    /// in-process on SQLite; across replicas on PostgreSQL, its tasks
    /// running until `cancel`.
    pub fn bus(&self, me: &str, cancel: CancellationToken) -> Arc<dyn EventBus> {
        match self {
            Self::Sqlite(_) => Arc::new(LocalBus::default()),
            Self::Postgres(s) => s.bus(me, cancel),
        }
    }

    pub fn as_store(&self) -> &dyn Store {
        &**self
    }
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

impl std::ops::Deref for AnyStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(s) => s,
        }
    }
}
