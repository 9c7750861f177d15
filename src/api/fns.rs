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

#[server(prefix = "/rpc", endpoint = "login", output = super::wire::Binary)]
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

#[server(prefix = "/rpc", endpoint = "logout", output = super::wire::Binary)]
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
#[server(prefix = "/rpc", endpoint = "whoami", output = super::wire::Binary)]
pub async fn whoami() -> Result<String, AppError> {
    let (_, admin) = crate::server::rpc::require_admin().await?;
    Ok(admin.username.to_string())
}

/// The dashboard, for the fleet or the server `server` names (blank: all).
#[server(prefix = "/rpc", endpoint = "dashboard", output = super::wire::Binary)]
pub async fn dashboard(server: String) -> Result<DashboardView, AppError> {
    let (state, _) = crate::server::rpc::require_admin().await?;
    let server = match server.trim() {
        "" => None,
        id => Some(crate::domain::ServerId::parse(id).ok_or_else(|| AppError::bad_request("server: a server id"))?),
    };
    state.panel.dashboard(server).await
}

#[server(prefix = "/rpc", endpoint = "servers", output = super::wire::Binary)]
pub async fn list_servers() -> Result<Vec<ServerView>, AppError> {
    let (state, _) = crate::server::rpc::require_admin().await?;
    state.panel.servers().await
}

/// A server and a page of its clients, for the server page: the listing's
/// query fields as in its URL (blank: the default).
#[server(prefix = "/rpc", endpoint = "server_detail", output = super::wire::Binary)]
pub async fn server_detail(
    id: i64,
    q: String,
    status: String,
    sort: String,
    dir: String,
    page: String,
    per_page: String,
) -> Result<super::ServerDetail, AppError> {
    use crate::domain::listing::ClientQuery;
    use crate::server::store::SessionFilter;
    let (state, _) = crate::server::rpc::require_admin().await?;
    let id = crate::domain::ServerId::new(id);
    let pairs = [
        ("q", q.as_str()),
        ("status", &status),
        ("sort", &sort),
        ("dir", &dir),
        ("page", &page),
        ("per_page", &per_page),
    ];
    let query = ClientQuery::parse(pairs).map_err(|e| AppError::bad_request(e.0))?;
    let server = state.panel.server(id).await?;
    let clients = state.panel.client_page(id, &query).await?;
    // One more than shown, to know whether there are more.
    let open = state
        .panel
        .sessions(SessionFilter { server: Some(id), open: true, limit: SESSIONS_SHOWN + 1, ..Default::default() })
        .await?;
    let since = chrono::Utc::now() - crate::server::panel::RECENT;
    let recent = state
        .panel
        .sessions(SessionFilter { server: Some(id), ended_since: Some(since), limit: 20, ..Default::default() })
        .await?;
    Ok(super::ServerDetail { server, clients, query, open_sessions: open, recently_disconnected: recent })
}

/// The newest open sessions a server page shows.
pub const SESSIONS_SHOWN: u32 = 50;

/// Polls a server now (the server page's Sync stats): what was read and
/// what it added.
#[server(prefix = "/rpc", endpoint = "sync_server", output = super::wire::Binary)]
pub async fn sync_server(id: i64) -> Result<String, AppError> {
    use crate::domain::ByteCount;
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let id = crate::domain::ServerId::new(id);
    let openvpn = state.panel.server(id).await?.protocol == crate::domain::Protocol::Openvpn;
    let o = state.panel.sync_now(id).await?;
    tracing::info!(admin = %admin.username, server_id = %id, "synced a server from the UI");
    let what = match (openvpn, o.sources) {
        (true, 1) => "session",
        (true, _) => "sessions",
        (false, 1) => "peer",
        (false, _) => "peers",
    };
    Ok(format!(
        "Synced {} {what}: ↑ {} · ↓ {} new; {} sessions opened, {} closed.",
        o.sources,
        ByteCount::new(o.new.rx).human(),
        ByteCount::new(o.new.tx).human(),
        o.sessions_opened,
        o.sessions_closed
    ))
}

/// Ends an OpenVPN session (the dashboard's and server page's button).
#[server(prefix = "/rpc", endpoint = "disconnect", output = super::wire::Binary)]
pub async fn disconnect_session(id: i64, halt: Option<String>) -> Result<String, AppError> {
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let reply = state.panel.disconnect(id, halt.is_some()).await?;
    tracing::info!(admin = %admin.username, session = id, "disconnected a session from the UI");
    Ok(reply)
}

/// The add-server form. Blank fields mean "not given".
#[server(prefix = "/rpc", endpoint = "add_server", output = super::wire::Binary)]
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
    config_path: String,
    client_config_dir: String,
    endpoint: String,
    dns: String,
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
        config_path: some(config_path),
        client_config_dir: some(client_config_dir),
        endpoint: some(endpoint),
        dns: some(dns),
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

/// Revokes (`action` = `revoke`) or restores a client: the server page's and
/// client page's buttons.
#[server(prefix = "/rpc", endpoint = "client_access", output = super::wire::Binary)]
pub async fn client_access(id: i64, action: String) -> Result<String, AppError> {
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let id = crate::domain::ClientId::new(id);
    let (_, pending) = match action.as_str() {
        "revoke" => state.panel.revoke(&admin, id).await?,
        "restore" => state.panel.restore(&admin, id).await?,
        _ => return Err(AppError::bad_request("action: revoke or restore")),
    };
    Ok(match pending {
        None => format!("Client {action}d."),
        Some(cause) => format!("Recorded; the host did not answer ({cause}): pending until it does."),
    })
}

/// Deletes a client (usage history kept) and goes back to its server.
#[server(prefix = "/rpc", endpoint = "delete_client", output = super::wire::Binary)]
pub async fn delete_client(id: i64, server: i64) -> Result<(), AppError> {
    let (state, admin) = crate::server::rpc::require_admin().await?;
    state.panel.delete_client(&admin, crate::domain::ClientId::new(id), true).await?;
    leptos_axum::redirect(&format!("/servers/{server}"));
    Ok(())
}

/// A client, for its page.
#[server(prefix = "/rpc", endpoint = "client_detail", output = super::wire::Binary)]
pub async fn client_detail(id: i64) -> Result<super::ClientDetail, AppError> {
    use crate::server::store::EventFilter;
    let (state, _) = crate::server::rpc::require_admin().await?;
    let id = crate::domain::ClientId::new(id);
    let client = state.panel.client(id).await?;
    let server_name = state.panel.server(client.server_id).await?.name;
    let has_config = state.panel.has_client_config(id).await?;
    let events = state.panel.events(EventFilter { client: Some(id), limit: 20, ..Default::default() }).await?;
    let history = state.panel.client_history(&client).await?;
    let filter = crate::server::store::SessionFilter { client: Some(id), limit: 20, ..Default::default() };
    let sessions = state.panel.sessions(filter).await?;
    Ok(super::ClientDetail { client, history, sessions, server_name, has_config, events })
}

/// The client page's policy form (and note). Blank fields clear the value.
#[server(prefix = "/rpc", endpoint = "client_policy", output = super::wire::Binary)]
pub async fn client_policy(
    id: i64,
    traffic_limit: String,
    traffic_warn_threshold: String,
    limit_period: String,
    reset_day: String,
    expiry_date: String,
    #[server(default)] note: String,
) -> Result<String, AppError> {
    use serde_json::{json, Value};
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let mut body = serde_json::Map::new();
    let limit = match traffic_limit.trim() {
        "" => Value::Null,
        t => json!(crate::domain::ByteCount::parse_size(t)
            .map_err(|_| AppError::bad_request("traffic_limit: a size such as 10GB, 500M or bytes"))?
            .get()),
    };
    body.insert("traffic_limit".into(), limit);
    if let Ok(t) = traffic_warn_threshold.trim().parse::<i64>() {
        body.insert("traffic_warn_threshold".into(), json!(t));
    }
    body.insert("limit_period".into(), json!(if limit_period == "monthly" { "monthly" } else { "lifetime" }));
    if limit_period == "monthly" {
        let day = reset_day.trim().parse::<i64>().map_err(|_| AppError::bad_request("reset_day: 1 to 31"))?;
        body.insert("reset_day".into(), json!(day));
    }
    let expiry = match expiry_date.trim() {
        "" => Value::Null,
        d => json!(d),
    };
    body.insert("expiry_date".into(), expiry);
    body.insert("note".into(), json!(note));
    state.panel.update_client(&admin, crate::domain::ClientId::new(id), &body).await?;
    Ok("Saved.".to_owned())
}

/// Generates a peer and opens its page (config and QR code).
#[server(prefix = "/rpc", endpoint = "generate_peer", output = super::wire::Binary)]
pub async fn generate_peer(server: i64, name: String, email: String) -> Result<(), AppError> {
    use serde_json::json;
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    if !email.trim().is_empty() {
        body.insert("email".into(), json!(email.trim()));
    }
    let made = state.panel.generate_peer(&admin, crate::domain::ServerId::new(server), &body).await?;
    leptos_axum::redirect(&format!("/clients/{}", made.client.id));
    Ok(())
}

/// The latest events, for the events page.
#[server(prefix = "/rpc", endpoint = "events", output = super::wire::Binary)]
pub async fn recent_events() -> Result<Vec<super::EventView>, AppError> {
    use crate::server::store::EventFilter;
    let (state, _) = crate::server::rpc::require_admin().await?;
    state.panel.events(EventFilter { limit: 200, ..Default::default() }).await
}

/// Every user, for the users page.
#[server(prefix = "/rpc", endpoint = "users", output = super::wire::Binary)]
pub async fn list_users() -> Result<Vec<super::UserView>, AppError> {
    let (state, _) = crate::server::rpc::require_admin().await?;
    state.panel.users().await
}

/// The users page's form. A blank email or limit means none.
#[server(prefix = "/rpc", endpoint = "create_user", output = super::wire::Binary)]
pub async fn create_user(name: String, email: String, max_connections: String) -> Result<(), AppError> {
    use serde_json::json;
    let (state, admin) = crate::server::rpc::require_admin().await?;
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    if !email.trim().is_empty() {
        body.insert("email".into(), json!(email.trim()));
    }
    if !max_connections.trim().is_empty() {
        let max = max_connections
            .trim()
            .parse::<i64>()
            .map_err(|_| AppError::bad_request("max_connections: a whole number (0: no limit)"))?;
        body.insert("max_connections".into(), json!(max));
    }
    state.panel.create_user(&admin, &body).await?;
    Ok(())
}
