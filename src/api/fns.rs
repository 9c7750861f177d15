//! Server functions: what the pages call. Each checks the session (login
//! excepted) and goes through the same [`Panel`](crate::server::panel::Panel)
//! operations as the JSON API. Paths are fixed (`/rpc/<name>`) so plain HTML
//! forms work without JavaScript.

// A form's fields are its server function's arguments; the macro regenerates
// each function for the browser, so the allowance has to sit on the module.
#![allow(clippy::too_many_arguments)]

use super::{DashboardView, ServerView};
use crate::error::AppError;
use leptos::server;

#[server(prefix = "/rpc", endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    use crate::server::rpc;
    let state = rpc::state()?;
    let parts = rpc::request_parts()?;
    let address = crate::server::http::client_address(&state, &parts.extensions, &parts.headers);
    let cookie = state.panel.login(&address, &username, &password).await?;
    rpc::set_cookie(&cookie)?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    use crate::server::rpc;
    let state = rpc::state()?;
    let parts = rpc::request_parts()?;
    let cookie = state.panel.logout(&parts.headers).await?;
    rpc::set_cookie(&cookie)?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// The logged-in admin's name.
#[server(prefix = "/rpc", endpoint = "whoami")]
pub async fn whoami() -> Result<String, AppError> {
    let (_, admin) = crate::server::rpc::require_admin().await?;
    Ok(admin.username.to_string())
}

#[server(prefix = "/rpc", endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardView, AppError> {
    let (state, _) = crate::server::rpc::require_admin().await?;
    state.panel.dashboard().await
}

#[server(prefix = "/rpc", endpoint = "servers")]
pub async fn list_servers() -> Result<Vec<ServerView>, AppError> {
    let (state, _) = crate::server::rpc::require_admin().await?;
    state.panel.servers().await
}

/// A server and its clients, for the server page.
#[server(prefix = "/rpc", endpoint = "server_detail")]
pub async fn server_detail(id: i64) -> Result<super::ServerDetail, AppError> {
    use crate::server::store::SessionFilter;
    let (state, _) = crate::server::rpc::require_admin().await?;
    let id = crate::domain::ServerId::new(id);
    let server = state.panel.server(id).await?;
    let clients = state.panel.clients(id).await?;
    let open =
        state.panel.sessions(SessionFilter { server: Some(id), open: true, limit: 500, ..Default::default() }).await?;
    let since = chrono::Utc::now() - crate::server::panel::RECENT;
    let recent = state
        .panel
        .sessions(SessionFilter { server: Some(id), ended_since: Some(since), limit: 20, ..Default::default() })
        .await?;
    Ok(super::ServerDetail { server, clients, open_sessions: open, recently_disconnected: recent })
}

/// Ends an OpenVPN session (the dashboard's and server page's button).
#[server(prefix = "/rpc", endpoint = "disconnect")]
pub async fn disconnect_session(id: i64, halt: Option<String>) -> Result<String, AppError> {
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let reply = state.panel.disconnect(id, halt.is_some()).await?;
    tracing::info!(admin = %admin.username, session = id, "disconnected a session from the UI");
    Ok(reply)
}

/// The add-server form. Blank fields mean "not given".
#[server(prefix = "/rpc", endpoint = "add_server")]
pub async fn add_server(
    name: String,
    host: String,
    port: String,
    user: String,
    private_key_path: String,
    private_key: String,
    protocol: String,
    interface: String,
    command_prefix: String,
    status_path: String,
    management_port: String,
    management_password: String,
    host_key_fingerprint: String,
) -> Result<super::AddedServer, AppError> {
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let number = |field: &str, v: &str| match v.trim() {
        "" => Ok(None),
        p => p.parse::<u16>().map(Some).map_err(|_| AppError::bad_request(format!("{field}: must be 1 to 65535"))),
    };
    let port = number("port", &port)?;
    let management_port = number("management_port", &management_port)?;
    let some = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    let request = super::AddServerRequest {
        name,
        host,
        port,
        user,
        private_key_path: some(private_key_path),
        private_key: some(private_key),
        interface: some(interface),
        config_path: None,
        client_config_dir: None,
        endpoint: None,
        dns: None,
        protocol: some(protocol),
        command_prefix: some(command_prefix).map(serde_json::Value::String),
        status_path: some(status_path),
        management_port,
        management_password: some(management_password),
        host_key_fingerprint: some(host_key_fingerprint),
    };
    let added = state.panel.add_server(request).await?;
    tracing::info!(admin = %admin.username, server_id = %added.id, "added a server from the UI");
    leptos_axum::redirect(&format!("/servers/{}", added.id));
    Ok(added)
}
