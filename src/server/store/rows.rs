//! Converting between database columns and the store's types, the same on
//! every backend: times are Unix seconds, byte counts signed 64-bit
//! integers, flags booleans (SQLite's 0/1). Row decoding goes through
//! [`Columns`], so code that turns a row into a record is written once.

use crate::domain::accounting::Counters;
use crate::domain::Protocol;
use crate::server::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The typed columns of a result row, on any backend.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn opt_blob(&self, column: &str) -> Result<Option<&[u8]>, StoreError>;
}

impl Columns for SqliteRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    /// SQLite has no boolean type: flags are integers, any non-zero true.
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }
    fn opt_blob(&self, column: &str) -> Result<Option<&[u8]>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for PgRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_blob(&self, column: &str) -> Result<Option<&[u8]>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

pub(crate) fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub(crate) fn instant(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| StoreError::Corrupt(format!("timestamp {secs}")))
}

pub(crate) fn opt_instant(secs: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    secs.map(instant).transpose()
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Database integers are signed; byte counts beyond 8 EiB are clamped.
pub(crate) fn db_bytes(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn counters(row: &impl Columns, rx: &str, tx: &str) -> Result<Counters, StoreError> {
    Ok(Counters::new(bytes(row.int(rx)?), bytes(row.int(tx)?)))
}

pub(crate) fn protocol(text: &str) -> Result<Protocol, StoreError> {
    Protocol::parse(text).ok_or_else(|| corrupt("protocol", text))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
