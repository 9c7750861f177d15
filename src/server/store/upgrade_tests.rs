//! The upgrade path on both backends: a database left at each earlier
//! schema (every prefix of its migrations folder), holding an admin and a
//! server written in the first schema's terms, opens with the current code,
//! is migrated, keeps both, and takes polls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::postgres_test_support::postgres_database;
use super::{AnyStore, WireguardPoll};
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::Protocol;
use chrono::Utc;
use std::path::{Path, PathBuf};

/// The migration files of `backend`, in order.
fn migrations(backend: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// A folder holding the first `n` of `files`.
fn prefix(files: &[PathBuf], n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in &files[..n] {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

const ADMIN: &str = "INSERT INTO admins (username, password_hash, created_at) VALUES ('old', 'x', 1)";
const SERVER: &str = "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, interface, \
    host_key, host_key_fingerprint, created_at) VALUES ('old', 'wireguard', '198.18.0.2', 22, 'root', \
    '/nonexistent', 'wg0', 'ssh-ed25519 AAAA', 'SHA256:x', 1)";

/// The current code on a database at an earlier schema.
async fn check_upgraded(url: &str, what: &str) {
    let store = AnyStore::open(url).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(store.admins().await.unwrap().len(), 1, "{what}");
    let servers = store.servers(Utc::now(), "2026-11").await.unwrap();
    assert_eq!(servers.len(), 1, "{what}");
    let text = include_str!("../../domain/fixtures/wg_show_server_dump.txt");
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let poll = WireguardPoll {
        protocol: Protocol::Wireguard,
        at: Utc::now(),
        month: "2026-11",
        dump: &dump,
        import: true,
        fence: None,
    };
    assert!(store.apply_wireguard_poll(servers[0].id, &poll).await.unwrap().applied, "{what}");
    assert_eq!(store.clients(servers[0].id, "2026-11").await.unwrap().len(), dump.peers.len(), "{what}");
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_database_at_every_earlier_schema_is_migrated_and_keeps_its_rows() {
    let files = migrations("sqlite");
    for n in 1..=files.len() {
        let folder = prefix(&files, n);
        let db = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", db.path().join("old.db").display());
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(db.path().join("old.db")).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(folder.path()).await.unwrap().run(&pool).await.unwrap();
        sqlx::query(ADMIN).execute(&pool).await.unwrap();
        sqlx::query(SERVER).execute(&pool).await.unwrap();
        pool.close().await;
        check_upgraded(&url, &format!("sqlite after {n} of {} migrations", files.len())).await;
    }
}

#[tokio::test]
async fn a_postgresql_database_at_every_earlier_schema_is_migrated_and_keeps_its_rows() {
    let files = migrations("postgres");
    for n in 1..=files.len() {
        let Some(db) = postgres_database("upgrade").await else { return };
        let folder = prefix(&files, n);
        sqlx::migrate::Migrator::new(folder.path()).await.unwrap().run(&db.pool).await.unwrap();
        sqlx::query(ADMIN).execute(&db.pool).await.unwrap();
        sqlx::query(SERVER).execute(&db.pool).await.unwrap();
        check_upgraded(&db.url, &format!("postgres after {n} of {} migrations", files.len())).await;
        db.drop().await;
    }
}
