//! Building and running the panel from a bound listener and a shutdown
//! future, so tests can bind port 0 and stop the panel when they like.

use crate::app::{shell, App};
use crate::server::cluster;
use crate::server::config::Config;
use crate::server::forward::{self, Forwarder};
use crate::server::panel::Panel;
use crate::server::poller::{PollSettings, Supervisor};
use crate::server::sealer::Sealer;
use crate::server::store::AnyStore;
use crate::server::store::Store;
use crate::server::transport::ssh::SshTimeouts;
use crate::server::{http, maintenance, AppState};
use anyhow::Context;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The Leptos options for this run: what cargo-leptos compiled in (output
/// name, site layout), with the listener's address and the configured site root.
fn leptos_options(config: &Config, addr: SocketAddr) -> anyhow::Result<LeptosOptions> {
    let mut options = match option_env!("LEPTOS_OUTPUT_NAME") {
        Some(_) => leptos::config::get_configuration(None).context("reading the Leptos options")?.leptos_options,
        // Built by plain cargo (tests): no site was built; pages still render.
        None => LeptosOptions::builder().output_name(env!("CARGO_PKG_NAME")).build(),
    };
    options.site_addr = addr;
    if let Some(root) = &config.site_root {
        options.site_root = root.to_string_lossy().as_ref().into();
    }
    Ok(options)
}

/// Polling settings from the configuration.
pub fn poll_settings(config: &Config) -> PollSettings {
    PollSettings {
        interval: config.poll_interval,
        max_backoff: config.max_backoff,
        ssh: SshTimeouts {
            connect: config.ssh_connect_timeout,
            authenticate: config.ssh_auth_timeout,
            command: config.ssh_command_timeout,
        },
        deadline: config.poll_deadline,
        timezone: config.timezone,
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .merge(http::api_routes())
        .leptos_routes_with_context(&state, routes, || {}, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn_with_state(state.clone(), http::require_session))
        .layer(from_fn(http::same_origin_only))
        .layer(from_fn(http::security_headers))
        .with_state(state)
}

/// Removes expired sessions once an hour until cancelled.
async fn sweep_sessions(store: Arc<dyn Store>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => match store.delete_expired_sessions(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
            },
        }
    }
}

/// How long a replica's lease on a server lasts: one poll interval, so a
/// dead replica's servers are polled again within two; at least 3 s, so
/// that rounds a third of it apart are not crowded.
fn lease_time(config: &Config) -> Duration {
    config.poll_interval.max(Duration::from_secs(3))
}

/// Opens the database, starts the pollers and serves on `listener` until
/// `shutdown` resolves; then stops the pollers within the configured grace.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the listener's address")?;
    let key = config.secrets_key_path();
    let sealer = Sealer::load(&key).with_context(|| format!("loading the secrets key {}", key.display()))?;
    let sealer = Arc::new(sealer);
    let opened =
        AnyStore::open(&config.database_url).await.context("opening the database")?.with_sealer(sealer.clone());
    let sealed = opened.seal_plaintext_secrets().await.context("sealing stored secrets")?;
    if sealed > 0 {
        tracing::info!(sealed, "secrets stored in plaintext were sealed");
    }
    let store: Arc<dyn Store> = opened.shared();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let me = cluster::this_replica(&host_name, config.replica_address(addr, &host_name));
    match &me.address {
        Some(a) if a.starts_with("http://127.") || a.starts_with("http://[::1]") => tracing::warn!(
            address = %a,
            "other replicas reach this one at a loopback address: only replicas on this machine can; \
             set TOLLGATE_REPLICA_URL if others run elsewhere"
        ),
        Some(_) => {}
        None => tracing::warn!("no address for other replicas to reach this one; set TOLLGATE_REPLICA_URL"),
    }
    let background = CancellationToken::new();
    let bus = opened.bus(&me.id, background.clone());
    let poller = Supervisor::new(store.clone(), bus, poll_settings(&config));
    let state = AppState {
        leptos_options: leptos_options(&config, addr)?,
        panel: Arc::new(Panel::new(store.clone(), config.clone(), poller.clone()).with_forwarder(Arc::new(
            Forwarder::new(store.clone(), sealer, &me.id, forward::owner_time(config.poll_deadline)),
        ))),
        closing: CancellationToken::new(),
    };
    let closing = state.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.cancel();
    };
    // The pollers start from the first lease round: every server on a
    // lone replica, a fair share of them beside others.
    let leases = tokio::spawn(
        cluster::run(
            store.clone(),
            poller.clone(),
            me.clone(),
            lease_time(&config),
            config.timezone,
            background.clone(),
        )
        .instrument(tracing::info_span!("leases", replica = %me.id)),
    );
    let sweeper = tokio::spawn(
        sweep_sessions(store.clone(), background.clone()).instrument(tracing::info_span!("session_sweeper")),
    );
    let rollup = tokio::spawn(
        maintenance::run(
            store.clone(),
            me.id.clone(),
            config.timezone,
            maintenance::Retention {
                samples: config.sample_retention,
                hourly: config.hourly_retention,
                sessions: config.session_history,
            },
            background.clone(),
        )
        .instrument(tracing::info_span!("rollup")),
    );

    let checkpointer = tokio::spawn(
        maintenance::checkpoints(store.clone(), maintenance::CHECKPOINT_EVERY, background.clone())
            .instrument(tracing::info_span!("checkpointer")),
    );

    tracing::info!(%addr, replica = %me.id, poll_interval_secs = config.poll_interval.as_secs(), "Tollgate is listening");
    let served = axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;

    tracing::info!("shutting down");
    // The lease rounds stop first (no poller starts after this), then the
    // pollers; only once they all stopped are the leases given up — the
    // others then take the servers at once. Otherwise they lapse.
    background.cancel();
    let pollers_stopped = poller.shutdown(config.shutdown_grace).await;
    let tasks = [("session sweeper", sweeper), ("rollup", rollup), ("checkpointer", checkpointer), ("leases", leases)];
    for (name, task) in tasks {
        if tokio::time::timeout(config.shutdown_grace, task).await.is_err() {
            tracing::warn!(task = name, "a background task did not stop in time");
        }
    }
    if pollers_stopped {
        cluster::leave(store.as_ref(), &me).await;
    }
    opened.close().await;
    served.context("serving HTTP")
}
