//! The storage port. All SQL lives behind [`Store`]; each backend implements
//! it and owns its migrations folder (`migrations/<backend>/`).

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod bus_tests;
pub(crate) mod cluster;
#[cfg(test)]
mod cluster_tests;
mod delegate;
#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod listing_tests;
#[cfg(test)]
mod model_tests;
mod open;
#[cfg(test)]
mod ovpn_model_tests;
pub mod postgres;
#[cfg(test)]
mod postgres_schema_tests;
#[cfg(test)]
pub mod postgres_test_support;
mod records;
pub(crate) mod rows;
#[cfg(test)]
mod secrets_tests;
mod shared;
pub mod sqlite;
mod state;
mod state_cache;
#[cfg(test)]
mod state_cache_tests;
#[cfg(test)]
pub mod test_support;
#[cfg(test)]
mod upgrade_tests;

use crate::domain::accounting::Counters;
use crate::domain::policy::{DisableReason, PeriodMark};
use crate::domain::{ClientId, HostKeyPin, Secret, ServerId, UserId, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub use cluster::{ClusterStore, Fence, LeaseOwner, LeaseRecord, LeaseRound, Replica, ReplicaRecord};
pub use open::AnyStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the message names what collided.
    #[error("{0}")]
    Conflict(String),
    /// A poll's write carried a lease another replica has since taken.
    #[error("this replica no longer holds server {0}'s lease")]
    LeaseLost(i64),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database is busy (locked) beyond the busy timeout.
    #[error("the database is busy; try again")]
    Busy,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored value no longer parses (edited by hand, or a bug).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A secret could not be sealed or opened (see `sealer`).
    #[error("{0}")]
    Secrets(#[from] crate::server::sealer::SealError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
                if code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)) {
                    return StoreError::Busy;
                }
            } else if matches!(&*code, "55P03" | "40P01" | "40001" | "57014") {
                // PostgreSQL: lock not available, deadlock, serialisation
                // failure, statement timeout — worth trying again.
                return StoreError::Busy;
            }
        }
        StoreError::Database(e)
    }
}

pub use records::*;

/// Admins and their login sessions.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    async fn create_admin(
        &self,
        username: &Username,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError>;
    async fn set_admin_password(&self, username: &Username, password_hash: &str) -> Result<(), StoreError>;
    /// Deletes the admin and all their sessions.
    async fn delete_admin(&self, username: &Username) -> Result<(), StoreError>;
    async fn admins(&self) -> Result<Vec<Username>, StoreError>;
    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError>;

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        admin: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The admin a live session belongs to.
    async fn session_admin(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(UserId, Username)>, StoreError>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Servers and their clients.
#[async_trait]
pub trait ServerStore: Send + Sync + 'static {
    async fn insert_server(&self, server: &NewServer, now: DateTime<Utc>) -> Result<ServerId, StoreError>;
    async fn servers(&self, now: DateTime<Utc>, month: &str) -> Result<Vec<ServerRecord>, StoreError>;
    async fn server(&self, id: ServerId, now: DateTime<Utc>, month: &str) -> Result<Option<ServerRecord>, StoreError>;
    async fn pin_host_key(&self, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError>;

    /// A server's clients: WireGuard peers on the host or managed, every
    /// OpenVPN user ever seen. `month` picks the monthly figures.
    async fn clients(&self, server: ServerId, month: &str) -> Result<Vec<ClientRecord>, StoreError>;
    async fn client(&self, id: ClientId, month: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// One page of the clients [`clients`](Self::clients) lists, chosen by
    /// `query` as they are at `now`, with the counts around it; only the
    /// page's rows are read in full.
    async fn client_page(
        &self,
        server: ServerId,
        protocol: crate::domain::Protocol,
        month: &str,
        query: &crate::domain::listing::ClientQuery,
        now: DateTime<Utc>,
    ) -> Result<ClientPage, StoreError>;
    /// Writes a client's new name, email, owner and policy, and `event`, in
    /// one transaction. An unknown `user_id` is `NotFound("user")`.
    async fn update_client(&self, id: ClientId, update: &ClientUpdate, event: &NewEvent) -> Result<(), StoreError>;
    /// Changes the access of many clients in one transaction, each with
    /// its event (disabled for a reason, or active with `None`); every
    /// change is pending until confirmed. Returns, per change, whether it
    /// was made (one with an expected access is skipped when the client no
    /// longer has it).
    async fn set_access_many(&self, changes: &[AccessChange]) -> Result<Vec<bool>, StoreError>;
    /// Disables a client for `reason`, or (`None`) makes it active again,
    /// with `event`. The change is pending until confirmed.
    async fn set_client_access(
        &self,
        id: ClientId,
        reason: Option<DisableReason>,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        self.set_access_many(&[AccessChange { id, reason, expected: None, event: event.clone() }]).await?;
        Ok(())
    }
    /// Whether secrets can be stored (the secrets key is loaded).
    fn secrets_ready(&self) -> Result<(), StoreError>;
    /// Adds a peer the panel generated (already on its host), its keys
    /// sealed, with `event`. Returns its id.
    async fn insert_generated_client(
        &self,
        server: ServerId,
        client: &GeneratedClient,
        event: &NewEvent,
    ) -> Result<ClientId, StoreError>;
    /// Sets the SHA-256 of the server's push token, with `event`.
    async fn set_push_token(&self, id: ServerId, hash: &[u8; 32], event: &NewEvent) -> Result<(), StoreError>;
    /// The SHA-256 of the server's push token (`None`: it has none).
    async fn push_token(&self, id: ServerId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes a client, with `event`; its usage history stays (the row is
    /// kept, marked deleted) unless `keep_history` is false.
    async fn delete_client(&self, id: ClientId, keep_history: bool, event: &NewEvent) -> Result<(), StoreError>;
    /// The client config of a peer the panel generated (`None`: it did not).
    async fn client_config(&self, id: ClientId) -> Result<Option<Secret>, StoreError>;
    /// Whether the panel generated this peer (it has a config), without
    /// opening the config.
    async fn has_client_config(&self, id: ClientId) -> Result<bool, StoreError>;
    /// Marks clients' access as carried out on their host, each if it is
    /// still `disabled` (or active): a newer change stays pending.
    async fn confirm_many(&self, confirmed: &[(ClientId, bool)]) -> Result<(), StoreError>;
    async fn confirm_access(&self, id: ClientId, disabled: bool) -> Result<(), StoreError> {
        self.confirm_many(&[(id, disabled)]).await
    }
    /// Counts `found` more drifts on a server.
    async fn record_drift(&self, id: ServerId, found: u32) -> Result<(), StoreError>;
    /// Starts a client's new limit period, with `event` when given; an
    /// older period than the stored one changes nothing.
    async fn start_period(&self, id: ClientId, mark: PeriodMark, event: Option<&NewEvent>) -> Result<(), StoreError>;
    /// Records a warning given: the crossing and/or the day, with `event`.
    async fn record_warning(
        &self,
        id: ClientId,
        usage: Option<&str>,
        expiry_day: Option<&str>,
        event: &NewEvent,
    ) -> Result<(), StoreError>;
    /// Clients with this identity (public key) on servers whose interface is
    /// `interface`, optionally on one server only.
    async fn clients_by_identity(
        &self,
        identity: &str,
        interface: &str,
        server: Option<ServerId>,
    ) -> Result<Vec<(ClientId, ServerId)>, StoreError>;
    /// Marks clients managed, with the allowed IPs the host should have.
    async fn set_managed(&self, server: ServerId, peers: &[(String, Vec<String>)]) -> Result<(), StoreError>;
    /// The server's [`EnforcementStamp`] now.
    async fn enforcement_stamp(&self, id: ServerId) -> Result<EnforcementStamp, StoreError>;
}

/// Applying polls.
#[async_trait]
pub trait IngestStore: Send + Sync + 'static {
    /// Applies a WireGuard/AmneziaWG poll in one transaction: accounting,
    /// ledgers, samples, sessions and the server's poll state.
    async fn apply_wireguard_poll(&self, id: ServerId, poll: &WireguardPoll<'_>) -> Result<PollOutcome, StoreError>;
    /// The same for an OpenVPN poll.
    async fn apply_openvpn_poll(&self, id: ServerId, poll: &OpenvpnPoll<'_>) -> Result<PollOutcome, StoreError>;
    async fn record_poll_failure(&self, id: ServerId, at: DateTime<Utc>, error: &str) -> Result<(), StoreError>;
}

/// Sessions, usage and the roll-up of raw samples.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError>;
    async fn session(&self, id: i64) -> Result<Option<SessionRecord>, StoreError>;
    /// How many sessions are open (on `server`, or anywhere) and the sum of
    /// their start times in Unix seconds.
    async fn open_sessions(&self, server: Option<ServerId>) -> Result<(u64, i64), StoreError>;
    /// A client's rolled-up hours, days and months from `since`, and the
    /// hours of its samples not rolled up yet, read in one snapshot.
    async fn client_history(
        &self,
        client: ClientId,
        server: ServerId,
        since: &HistorySince,
    ) -> Result<ClientHistory, StoreError>;
    /// Rolled-up daily traffic from `since_day` of every client, or of one
    /// server's.
    async fn fleet_daily(
        &self,
        server: Option<ServerId>,
        since_day: &str,
    ) -> Result<Vec<(String, Counters)>, StoreError>;
    /// Deletes sessions that ended before `before` (open ones are kept);
    /// returns how many.
    async fn delete_sessions_ended_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;

    /// The raw samples committed since the last roll-up, summed per client
    /// and hour. Samples are taken in commit order, so a poll that began
    /// before an hour was rolled up but committed after is not skipped.
    async fn pending_samples(&self) -> Result<PendingSamples, StoreError>;
    /// Adds `pending`'s buckets and `daily`, moves the roll-up mark from
    /// `pending.from` to `pending.to`, and drops rolled-up samples older than
    /// `keep_samples_since` and hourly buckets older than `keep_hourly_since`,
    /// in one transaction. Returns false (and changes nothing) if the mark is
    /// no longer at `pending.from`: another process rolled up meanwhile.
    async fn store_rollup(
        &self,
        pending: &PendingSamples,
        daily: &[(i64, String, Counters)],
        keep_samples_since: DateTime<Utc>,
        keep_hourly_since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Moves written data from a write-ahead log into the database proper,
    /// off the path of polls (a no-op for backends without one).
    async fn checkpoint(&self) -> Result<(), StoreError>;
}

/// Users and the devices they have online.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// A taken email is a `Conflict`.
    async fn create_user(&self, user: &UserFields, event: &NewEvent) -> Result<UserId, StoreError>;
    async fn update_user(&self, id: UserId, user: &UserFields, event: &NewEvent) -> Result<(), StoreError>;
    /// Its clients stay, without an owner.
    async fn delete_user(&self, id: UserId, event: &NewEvent) -> Result<(), StoreError>;
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    /// The user's live sessions at `now` across every server, of its active
    /// clients: open OpenVPN sessions, and WireGuard peers on their host with
    /// a handshake within the online window.
    async fn live_sessions(&self, id: UserId, now: DateTime<Utc>) -> Result<Vec<LiveDevice>, StoreError> {
        Ok(self.live_sessions_of(&[id], now).await?.remove(&id).unwrap_or_default())
    }
    /// [`UserStore::live_sessions`] of many users at once, each server's
    /// state read once; users without a live session are left out.
    async fn live_sessions_of(
        &self,
        ids: &[UserId],
        now: DateTime<Utc>,
    ) -> Result<HashMap<UserId, Vec<LiveDevice>>, StoreError>;
}

/// The log of actions.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError>;
    /// Newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;
}

/// Everything the panel keeps, split by capability; one backend implements
/// every part.
pub trait Store: AuthStore + ServerStore + IngestStore + ReportStore + EventStore + UserStore + ClusterStore {}

impl<T: AuthStore + ServerStore + IngestStore + ReportStore + EventStore + UserStore + ClusterStore> Store for T {}
