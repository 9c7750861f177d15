//! Converting between SQLite columns and the store's types.

use crate::domain::accounting::Counters;
use crate::domain::Protocol;
use crate::server::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub(super) fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub(super) fn instant(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| StoreError::Corrupt(format!("timestamp {secs}")))
}

pub(super) fn opt_instant(secs: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    secs.map(instant).transpose()
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// SQLite integers are signed; byte counts beyond 8 EiB are clamped.
pub(super) fn db_bytes(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn counters(row: &SqliteRow, rx: &str, tx: &str) -> Result<Counters, StoreError> {
    Ok(Counters::new(bytes(row.try_get(rx)?), bytes(row.try_get(tx)?)))
}

pub(super) fn protocol(text: &str) -> Result<Protocol, StoreError> {
    Protocol::parse(text).ok_or_else(|| corrupt("protocol", text))
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
