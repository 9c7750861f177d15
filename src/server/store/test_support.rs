//! Shared by the store's tests and by tests of what uses the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{NewServer, OpenVpnAccess, UsageQuery};
use crate::domain::accounting::Counters;
use crate::domain::Protocol;
use crate::domain::{CommandPrefix, HostAddress, InterfaceName, RemotePath, ServerId, ServerName, SshUser};
use crate::domain::{HostKeyPin, SshKeySource};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Applies the `wg show dump` text `text` to `server` as a poll at `at`
/// (months in UTC), and checks it was applied.
pub async fn apply_dump(store: &dyn super::Store, server: ServerId, text: &str, at: DateTime<Utc>, import: bool) {
    use crate::domain::wg_dump::{parse_dump, DumpFlavor};
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let month = crate::domain::accounting::month_key(at, &chrono_tz::UTC);
    let poll =
        super::WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import, fence: None };
    assert!(store.apply_wireguard_poll(server, &poll).await.unwrap().applied, "the poll at {at} was applied");
}

/// A server for tests of the store and of what uses it: no host is ever
/// contacted (the key file does not exist, the host key is a placeholder).
pub fn test_server(name: &str, protocol: Protocol) -> NewServer {
    let openvpn = (protocol == Protocol::Openvpn).then(|| OpenVpnAccess {
        status_path: Some(RemotePath::parse("/run/openvpn/status.log").unwrap()),
        management_port: Some(7505),
        management_password: None,
    });
    NewServer {
        name: ServerName::parse(name).unwrap(),
        protocol,
        host: HostAddress::parse("198.18.0.2").unwrap(),
        port: 22,
        user: SshUser::parse("root").unwrap(),
        key: SshKeySource::File("/nonexistent".into()),
        interface: (protocol != Protocol::Openvpn).then(|| InterfaceName::parse("wg0").unwrap()),
        command_prefix: CommandPrefix::empty(),
        openvpn,
        host_key: HostKeyPin { openssh: "ssh-ed25519 AAAA".into(), fingerprint: "SHA256:x".into() },
        config_path: None,
        client_config_dir: None,
        client_defaults: Default::default(),
    }
}

/// A client's bytes in one month, keyed by (identity, `YYYY-MM`).
pub type MonthlyLedger = BTreeMap<(String, String), Counters>;

/// An event for tests that need one to write a change.
pub fn test_event(action: &str) -> super::NewEvent {
    super::NewEvent {
        at: Utc::now(),
        actor: "test".into(),
        action: action.into(),
        reason: None,
        figures: None,
        client_id: None,
        user_id: None,
        server_id: None,
        label: String::new(),
    }
}

/// A store for one test on one backend, reopened as a restart would, and
/// removed at [`TestStore::finish`].
pub struct TestStore {
    pub store: super::AnyStore,
    backing: Backing,
}

enum Backing {
    Sqlite { _dir: tempfile::TempDir, url: String },
    Postgres(Box<super::postgres_test_support::TestDatabase>),
}

/// A store of every backend for `test`: SQLite always, PostgreSQL when a
/// server is configured (see [`super::postgres_test_support`]).
pub async fn test_stores(test: &str) -> Vec<TestStore> {
    let mut out = vec![sqlite_store().await];
    if let Some(pg) = postgres_store(test).await {
        out.push(pg);
    }
    out
}

/// A fresh SQLite store in a directory of its own.
pub async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = super::AnyStore::open(&url).await.unwrap();
    TestStore { store, backing: Backing::Sqlite { _dir: dir, url } }
}

/// A fresh PostgreSQL store, or `None` where none is configured.
pub async fn postgres_store(test: &str) -> Option<TestStore> {
    let db = super::postgres_test_support::postgres_database(test).await?;
    let store = super::AnyStore::open(&db.url).await.unwrap();
    Some(TestStore { store, backing: Backing::Postgres(Box::new(db)) })
}

impl std::ops::Deref for TestStore {
    type Target = dyn super::Store;
    fn deref(&self) -> &Self::Target {
        self.store.as_store()
    }
}

impl TestStore {
    /// "sqlite" or "postgres", for messages.
    pub fn backend(&self) -> &'static str {
        match self.backing {
            Backing::Sqlite { .. } => "sqlite",
            Backing::Postgres(_) => "postgres",
        }
    }

    pub fn url(&self) -> &str {
        match &self.backing {
            Backing::Sqlite { url, .. } => url,
            Backing::Postgres(db) => &db.url,
        }
    }

    /// Closes the store and opens it again, as a restarted panel does.
    pub async fn reopen(&mut self) {
        self.store.close().await;
        self.store = super::AnyStore::open(self.url()).await.unwrap();
    }

    /// The store with `sealer` (reopened).
    pub async fn sealed(&mut self, sealer: std::sync::Arc<crate::server::sealer::Sealer>) {
        self.reopen().await;
        self.store = self.store.clone().with_sealer(sealer);
    }

    /// Runs test-only SQL (`$1`… placeholders work on both backends) with
    /// integer parameters; returns the rows affected.
    pub async fn exec(&self, sql: &str, binds: &[i64]) -> u64 {
        match &self.store {
            super::AnyStore::Sqlite(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&s.write).await.unwrap().rows_affected()
            }
            super::AnyStore::Postgres(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&s.pool).await.unwrap().rows_affected()
            }
        }
    }

    /// The rows of a test-only query, every column read as an optional
    /// integer (write `CAST(… AS BIGINT)` around sums: PostgreSQL sums
    /// integers as numeric).
    pub async fn ints(&self, sql: &str, binds: &[i64]) -> Vec<Vec<Option<i64>>> {
        use sqlx::Row;
        match &self.store {
            super::AnyStore::Sqlite(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&s.write).await.unwrap();
                rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<i64>, _>(i)).collect()).collect()
            }
            super::AnyStore::Postgres(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&s.pool).await.unwrap();
                rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<i64>, _>(i)).collect()).collect()
            }
        }
    }

    /// As [`TestStore::ints`], every column read as optional text.
    pub async fn texts(&self, sql: &str, binds: &[i64]) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        match &self.store {
            super::AnyStore::Sqlite(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&s.write).await.unwrap();
                rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
            }
            super::AnyStore::Postgres(s) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&s.pool).await.unwrap();
                rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
            }
        }
    }

    /// Closes the store and removes its database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Backing::Postgres(db) = self.backing {
            super::postgres_test_support::TestDatabase::drop(*db).await;
        }
    }
}

/// Compares the stored monthly ledger (non-zero rows) and the server's
/// lifetime and current-month totals with a model's, on either backend.
pub async fn compare_store_ledgers(
    store: &dyn super::Store,
    id: ServerId,
    now: DateTime<Utc>,
    month: &str,
    model: &MonthlyLedger,
    server_total: Counters,
    server_month: Counters,
) -> Result<(), String> {
    let rows = store.usage(&UsageQuery::default()).await.map_err(|e| e.to_string())?;
    let stored: MonthlyLedger = rows
        .into_iter()
        .filter(|r| !r.bytes.is_zero())
        .map(|r| ((r.identity, r.month.unwrap_or_default()), r.bytes))
        .collect();
    let model: MonthlyLedger = model.iter().filter(|(_, c)| !c.is_zero()).map(|(k, c)| (k.clone(), *c)).collect();
    if stored != model {
        return Err(format!("monthly ledger: stored {stored:?}, model {model:?}"));
    }
    let server = store.server(id, now, month).await.map_err(|e| e.to_string())?.ok_or("server vanished")?;
    if server.total != server_total || server.month != server_month {
        return Err(format!(
            "server: stored {:?}/{:?}, model {server_total:?}/{server_month:?}",
            server.total, server.month
        ));
    }
    Ok(())
}
