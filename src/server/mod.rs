//! Everything that runs only on the server: configuration, storage, host
//! transports, the poller, authentication and the HTTP layer.

pub mod auth;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod enforce;
pub mod forward;
pub mod generate;
pub mod http;
pub mod maintenance;
pub mod openvpn;
pub mod panel;
pub mod peer_commands;
pub mod peers;
pub mod poll;
pub mod poller;
pub mod reconcile;
pub mod rpc;
pub mod sealer;
pub mod shared;
pub mod startup;
pub mod store;
pub mod transport;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;

/// State shared by every request: handed to axum handlers as `State` and to
/// server functions and pages as Leptos context.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub panel: Arc<panel::Panel>,
    /// Cancelled when the panel starts shutting down: long-lived responses
    /// (live streams) end, so the server can finish.
    pub closing: tokio_util::sync::CancellationToken,
}
