//! [`ClusterStore`](crate::server::store::ClusterStore) on SQLite.

use super::SqliteStore;
use crate::domain::ServerId;
use crate::server::store::cluster::{leases_fences, owner_of, plan_round, records, round_of, sql, until_ms};
use crate::server::store::{LeaseOwner, LeaseRound, Replica, ReplicaRecord, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

pub(super) async fn lease_round(
    store: &SqliteStore,
    me: &Replica,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<LeaseRound, StoreError> {
    let now_ms = now.timestamp_millis();
    let until = until_ms(now, ttl);
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(sql::HEARTBEAT)
        .bind(&me.id)
        .bind(&me.name)
        .bind(now_ms)
        .bind(me.address.as_deref())
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql::FORGET).bind(now_ms.saturating_sub((until - now_ms).saturating_mul(10))).execute(&mut *tx).await?;
    let servers: Vec<i64> = sqlx::query_scalar(sql::SERVERS).fetch_all(&mut *tx).await?;
    let leases = sqlx::query(sql::LEASES).fetch_all(&mut *tx).await?;
    let beats = sqlx::query(sql::BEATS).fetch_all(&mut *tx).await?;
    let plan = plan_round(&me.id, now_ms, ttl, &servers, &leases, &beats)?;
    sqlx::query(sql::RENEW).bind(until).bind(&me.id).bind(now_ms).execute(&mut *tx).await?;
    for &(server, fence) in &plan.take {
        sqlx::query(sql::TAKE).bind(server).bind(&me.id).bind(fence).bind(until).execute(&mut *tx).await?;
    }
    for &server in &plan.release {
        sqlx::query(sql::RELEASE).bind(now_ms).bind(server).bind(&me.id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(round_of(&plan, &leases_fences(&leases)?))
}

pub(super) async fn leave(store: &SqliteStore, me: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(sql::LEAVE).bind(now.timestamp_millis()).bind(me).execute(&mut *tx).await?;
    sqlx::query(sql::GONE).bind(me).execute(&mut *tx).await?;
    sqlx::query(sql::JOBS_GONE).bind(me).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn claim_job(
    store: &SqliteStore,
    name: &str,
    me: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let taken: Option<String> = sqlx::query_scalar(sql::CLAIM)
        .bind(name)
        .bind(me)
        .bind(until_ms(now, ttl))
        .bind(now.timestamp_millis())
        .fetch_optional(&store.write)
        .await?;
    Ok(taken.is_some())
}

pub(super) async fn cluster(store: &SqliteStore) -> Result<Vec<ReplicaRecord>, StoreError> {
    let replicas = sqlx::query(sql::REPLICAS).fetch_all(&store.read).await?;
    let leases = sqlx::query(sql::HELD).fetch_all(&store.read).await?;
    records(&replicas, &leases)
}

pub(super) async fn lease_owner(
    store: &SqliteStore,
    server: ServerId,
    now: DateTime<Utc>,
) -> Result<Option<LeaseOwner>, StoreError> {
    let row =
        sqlx::query(sql::OWNER).bind(server.get()).bind(now.timestamp_millis()).fetch_optional(&store.read).await?;
    owner_of(row.as_ref())
}
