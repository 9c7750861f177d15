//! The store's traits, implemented for a backend by calling its modules:
//! every backend has the same modules (`admins`, `clients`, `cluster`,
//! `events`, `generated`, `ingest`'s callers `wireguard` and `openvpn`,
//! `reports`, `servers`, `users`) with the same functions, so one macro
//! writes the delegation for both. Names resolve where it is invoked.

macro_rules! impl_store_ports {
    ($store:ty) => {
        #[async_trait]
        impl AuthStore for $store {
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
        impl ServerStore for $store {
            async fn insert_server(&self, server: &NewServer, now: DateTime<Utc>) -> Result<ServerId, StoreError> {
                servers::insert_server(self, server, now).await
            }

            async fn servers(&self, now: DateTime<Utc>, month: &str) -> Result<Vec<ServerRecord>, StoreError> {
                servers::servers(self, now, month).await
            }

            async fn server(
                &self,
                id: ServerId,
                now: DateTime<Utc>,
                month: &str,
            ) -> Result<Option<ServerRecord>, StoreError> {
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

            async fn client_page(
                &self,
                server: ServerId,
                protocol: crate::domain::Protocol,
                month: &str,
                query: &crate::domain::listing::ClientQuery,
                now: DateTime<Utc>,
            ) -> Result<crate::server::store::ClientPage, StoreError> {
                clients::client_page(self, server, protocol, month, query, now).await
            }

            async fn update_client(
                &self,
                id: ClientId,
                update: &ClientUpdate,
                event: &NewEvent,
            ) -> Result<(), StoreError> {
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
                servers::set_push_token(self, id, hash, event).await
            }

            async fn push_token(&self, id: ServerId) -> Result<Option<Vec<u8>>, StoreError> {
                servers::push_token(self, id).await
            }

            async fn delete_client(
                &self,
                id: ClientId,
                keep_history: bool,
                event: &NewEvent,
            ) -> Result<(), StoreError> {
                clients::delete_client(self, id, keep_history, event.at.timestamp(), event).await
            }

            async fn client_config(&self, id: ClientId) -> Result<Option<Secret>, StoreError> {
                generated::client_config(self, id).await
            }

            async fn has_client_config(&self, id: ClientId) -> Result<bool, StoreError> {
                generated::has_client_config(self, id).await
            }

            async fn confirm_many(&self, confirmed: &[(ClientId, bool)]) -> Result<(), StoreError> {
                clients::confirm_access(self, confirmed).await
            }

            async fn record_drift(&self, id: ServerId, found: u32) -> Result<(), StoreError> {
                servers::record_drift(self, id, found).await
            }

            async fn start_period(
                &self,
                id: ClientId,
                mark: PeriodMark,
                event: Option<&NewEvent>,
            ) -> Result<(), StoreError> {
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
        impl UserStore for $store {
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
        impl EventStore for $store {
            async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError> {
                events::record_event(self, event).await
            }

            async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
                events::events(self, filter).await
            }
        }

        #[async_trait]
        impl IngestStore for $store {
            async fn apply_wireguard_poll(
                &self,
                id: ServerId,
                poll: &WireguardPoll<'_>,
            ) -> Result<PollOutcome, StoreError> {
                wireguard::apply_wireguard(self, id, poll).await
            }

            async fn apply_openvpn_poll(
                &self,
                id: ServerId,
                poll: &OpenvpnPoll<'_>,
            ) -> Result<PollOutcome, StoreError> {
                openvpn::apply_openvpn(self, id, poll).await
            }

            async fn record_poll_failure(
                &self,
                id: ServerId,
                at: DateTime<Utc>,
                error: &str,
            ) -> Result<(), StoreError> {
                servers::record_poll_failure(self, id, at, error).await
            }
        }

        #[async_trait]
        impl ReportStore for $store {
            async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
                reports::sessions(self, filter).await
            }

            async fn session(&self, id: i64) -> Result<Option<SessionRecord>, StoreError> {
                reports::session(self, id).await
            }

            async fn client_history(
                &self,
                client: ClientId,
                server: ServerId,
                since: &crate::server::store::HistorySince,
            ) -> Result<crate::server::store::ClientHistory, StoreError> {
                reports::client_history(self, client, server, since).await
            }

            async fn fleet_daily(
                &self,
                server: Option<ServerId>,
                since_day: &str,
            ) -> Result<Vec<(String, Counters)>, StoreError> {
                reports::fleet_daily(self, server, since_day).await
            }

            async fn open_sessions(&self, server: Option<ServerId>) -> Result<(u64, i64), StoreError> {
                reports::open_sessions(self, server).await
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
                checkpoint(self).await
            }
        }

        #[async_trait]
        impl ClusterStore for $store {
            async fn lease_round(
                &self,
                me: &Replica,
                now: DateTime<Utc>,
                ttl: Duration,
            ) -> Result<LeaseRound, StoreError> {
                cluster::lease_round(self, me, now, ttl).await
            }

            async fn leave(&self, me: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
                cluster::leave(self, me, now).await
            }

            async fn claim_job(
                &self,
                name: &str,
                me: &str,
                now: DateTime<Utc>,
                ttl: Duration,
            ) -> Result<bool, StoreError> {
                cluster::claim_job(self, name, me, now, ttl).await
            }

            async fn lease_owner(
                &self,
                server: ServerId,
                now: DateTime<Utc>,
            ) -> Result<Option<LeaseOwner>, StoreError> {
                cluster::lease_owner(self, server, now).await
            }

            async fn cluster(&self) -> Result<Vec<ReplicaRecord>, StoreError> {
                cluster::cluster(self).await
            }
        }
    };
}

pub(super) use impl_store_ports;
