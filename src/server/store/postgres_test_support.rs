//! A database of its own on a real PostgreSQL for each test that needs one.
//!
//! The server is given by `TOLLGATE_TEST_POSTGRES_URL` (`.ci/postgres.sh
//! start` sets it to a throwaway cluster; point it at your own server to run
//! the PostgreSQL half locally). Without it the PostgreSQL half is skipped
//! with a note, except where `TOLLGATE_REQUIRE_POSTGRES` is set (CI): there a
//! missing server fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A database created for one test; [`TestDatabase::drop`] removes it.
pub struct TestDatabase {
    pub url: String,
    pub pool: PgPool,
    name: String,
    server: PgConnectOptions,
}

/// A fresh, empty database for `test`, or `None` (with a note) when no
/// PostgreSQL server is configured and none is required.
pub async fn postgres_database(test: &str) -> Option<TestDatabase> {
    let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") else {
        if std::env::var_os("TOLLGATE_REQUIRE_POSTGRES").is_some() {
            panic!("{test}: TOLLGATE_TEST_POSTGRES_URL is not set, and PostgreSQL tests are required here");
        }
        eprintln!("{test}: skipped on PostgreSQL (set TOLLGATE_TEST_POSTGRES_URL, see .ci/postgres.sh)");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("tollgate_{}_{}_{}", test, std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let server = PgConnectOptions::from_str(&url).unwrap().disable_statement_logging();
    let mut admin = server.connect().await.unwrap_or_else(|e| panic!("{test}: connecting to {url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
    let options = server.clone().database(&name);
    let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.unwrap();
    Some(TestDatabase { url: super::postgres::url_with_database(&url, &name), pool, name, server })
}

#[test]
fn a_test_database_url_keeps_everything_but_the_database() {
    use super::postgres::url_with_database as with_database;
    assert_eq!(
        with_database("postgres://u:p@h:5432/db?sslmode=disable", "t"),
        "postgres://u:p@h:5432/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t"), "postgres://h/t");
}

impl TestDatabase {
    /// Closes the pool and drops the database.
    pub async fn drop(self) {
        self.pool.close().await;
        let mut admin = self.server.connect().await.unwrap();
        sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name)).execute(&mut admin).await.unwrap();
    }
}
