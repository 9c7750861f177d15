//! The JSON API (`/api/…`), the login gate for pages, and response headers.
//! Every handler except login takes [`Admin`], so no route forgets the session.

mod generate;
mod guard;
mod internal;
mod live;
mod reports;

pub use guard::{require_session, same_origin_only, security_headers};

use crate::api::{AddServerRequest, ClientView};
use crate::domain::net::request_origin;
use crate::domain::{ClientId, ServerId, UserId};
use crate::error::AppError;
use crate::server::panel::{Admin, PeerField};
use crate::server::store::EventFilter;
use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// JSON bodies whose errors come back in the API's own error shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(AppError::bad_request(rejection.body_text())),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.panel.authenticate(&parts.headers).await
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says.
pub fn client_address(state: &AppState, extensions: &axum::http::Extensions, headers: &HeaderMap) -> String {
    let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
        return "unknown".to_owned();
    };
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    request_origin(peer.ip(), forwarded, &state.panel.config.trusted_proxies).to_string()
}

fn server_id(raw: &str) -> Result<ServerId, AppError> {
    ServerId::parse(raw).ok_or_else(|| AppError::not_found("Server"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(state): State<AppState>, request: Request) -> Result<Response, AppError> {
    let address = client_address(&state, request.extensions(), request.headers());
    let ApiJson(body) = ApiJson::<LoginBody>::from_request(request, &state).await?;
    let cookie = state.panel.login(&address, &body.username, &body.password).await?;
    let mut response = Json(json!({ "success": true, "username": body.username.trim() })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(AppError::internal)?);
    Ok(response)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let cookie = state.panel.logout(&headers).await?;
    let mut response = Json(json!({ "success": true })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(AppError::internal)?);
    Ok(response)
}

async fn list_servers(State(state): State<AppState>, _: Admin) -> Result<Response, AppError> {
    let servers = state.panel.servers().await?;
    Ok(Json(json!({ "success": true, "servers": servers })).into_response())
}

async fn add_server(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<AddServerRequest>,
) -> Result<Response, AppError> {
    let added = state.panel.add_server(body).await?;
    tracing::info!(admin = %admin.username, server_id = %added.id, "added a server through the API");
    let body = json!({ "success": true, "id": added.id, "host_key_fingerprint": added.host_key_fingerprint });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn get_server(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Response, AppError> {
    let server = state.panel.server(server_id(&id)?).await?;
    Ok(Json(json!({ "success": true, "server": server })).into_response())
}

async fn sync_stats(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Response, AppError> {
    let outcome = state.panel.sync_now(server_id(&id)?).await?;
    Ok(Json(json!({
        "success": true,
        "synced": outcome.sources,
        "new_bytes": { "sent": outcome.new.rx, "received": outcome.new.tx },
        "sessions_opened": outcome.sessions_opened,
        "sessions_closed": outcome.sessions_closed,
    }))
    .into_response())
}

/// Seed 000's per-client sync: polls the client's server now and returns
/// its figures.
async fn client_sync_stats(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = client_id(&id)?;
    let before = state.panel.client(id).await?;
    state.panel.sync_now(before.server_id).await?;
    let client = state.panel.client(id).await?;
    Ok(Json(json!({ "success": true, "stats": client.stats })).into_response())
}

async fn get_client(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Response, AppError> {
    let client = state.panel.client(client_id(&id)?).await?;
    Ok(Json(json!({ "success": true, "client": client })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    /// Tell the client to exit instead of reconnecting.
    #[serde(default)]
    halt: bool,
}

async fn disconnect(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::not_found("Session"))?;
    // The body is optional: none means {"halt": false}.
    let halt = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<DisconnectBody>(&body).map_err(|e| AppError::bad_request(format!("body: {e}")))?.halt
    };
    let reply = state.panel.disconnect(id, halt).await?;
    tracing::info!(admin = %admin.username, session = id, "disconnected a session through the API");
    Ok(Json(json!({ "success": true, "message": reply })).into_response())
}

fn client_id(raw: &str) -> Result<ClientId, AppError> {
    ClientId::parse(raw).ok_or_else(|| AppError::not_found("Client"))
}

/// A JSON object body, its errors in the API's own shape.
type ObjectBody = ApiJson<serde_json::Map<String, serde_json::Value>>;

async fn patch_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ObjectBody,
) -> Result<Response, AppError> {
    let client = state.panel.update_client(&admin, client_id(&id)?, &body).await?;
    Ok(Json(json!({ "success": true, "message": "Client updated", "client": client })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeleteOptions {
    #[serde(default)]
    keep_usage_history: Option<bool>,
}

async fn delete_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(options): Query<DeleteOptions>,
) -> Result<Response, AppError> {
    let keep = options.keep_usage_history.unwrap_or(true);
    state.panel.delete_client(&admin, client_id(&id)?, keep).await?;
    Ok(Json(json!({ "success": true, "message": "Client deleted" })).into_response())
}

async fn revoke_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let outcome = state.panel.revoke(&admin, client_id(&id)?).await?;
    Ok(access_reply("Client revoked", outcome))
}

async fn restore_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let outcome = state.panel.restore(&admin, client_id(&id)?).await?;
    Ok(access_reply("Client restored", outcome))
}

/// 200 when the host carried the change out; 202 with `pending` and the
/// cause when it is queued until the host answers.
fn access_reply(message: &str, (client, pending): (ClientView, Option<String>)) -> Response {
    match pending {
        None => Json(json!({ "success": true, "message": message, "client": client })).into_response(),
        Some(cause) => {
            let body = json!({
                "success": true,
                "message": format!("{message}; the host did not answer ({cause}), so the change is pending and is applied when it does"),
                "pending": true,
                "client": client,
            });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerPick {
    #[serde(default)]
    server: Option<i64>,
}

async fn update_peer(
    state: AppState,
    admin: Admin,
    interface: String,
    pick: ServerPick,
    field: PeerField,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<Response, AppError> {
    let server = pick.server.map(ServerId::new);
    let client = state.panel.update_peer_field(&admin, &interface, server, field, &body).await?;
    Ok(Json(json!({ "success": true, "message": field.done(), "client": client })).into_response())
}

/// The route for one of seed 002's single-field endpoints.
fn peer_field_route(field: PeerField) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              admin: Admin,
              Path(interface): Path<String>,
              Query(pick): Query<ServerPick>,
              ApiJson(body): ObjectBody| async move {
            update_peer(state, admin, interface, pick, field, body).await
        },
    )
}

fn user_id(raw: &str) -> Result<UserId, AppError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).map(UserId::new).ok_or_else(|| AppError::not_found("User"))
}

async fn list_users(State(state): State<AppState>, _: Admin) -> Result<Response, AppError> {
    let users = state.panel.users().await?;
    Ok(Json(json!({ "success": true, "users": users })).into_response())
}

async fn create_user(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ObjectBody,
) -> Result<Response, AppError> {
    let user = state.panel.create_user(&admin, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "success": true, "user": user }))).into_response())
}

async fn get_user(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Response, AppError> {
    let user = state.panel.user(user_id(&id)?).await?;
    Ok(Json(json!({ "success": true, "user": user })).into_response())
}

async fn patch_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ObjectBody,
) -> Result<Response, AppError> {
    let user = state.panel.update_user(&admin, user_id(&id)?, &body).await?;
    Ok(Json(json!({ "success": true, "user": user })).into_response())
}

async fn delete_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    state.panel.delete_user(&admin, user_id(&id)?).await?;
    Ok(Json(json!({ "success": true, "message": "User deleted" })).into_response())
}

async fn can_connect(State(state): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<Response, AppError> {
    let (can_connect, active, max) = state.panel.can_connect(user_id(&id)?).await?;
    Ok(Json(json!({ "success": true, "can_connect": can_connect, "active": active, "max": max })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    client: Option<i64>,
    #[serde(default)]
    server: Option<i64>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn list_events(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<EventsQuery>,
) -> Result<Response, AppError> {
    let filter = EventFilter {
        client: q.client.map(ClientId::new),
        server: q.server.map(ServerId::new),
        action: q.action.filter(|a| !a.is_empty()),
        limit: q.limit.unwrap_or(100),
    };
    let events = state.panel.events(filter).await?;
    Ok(Json(json!({ "success": true, "events": events })).into_response())
}

async fn cluster(State(state): State<AppState>, _: Admin) -> Result<Response, AppError> {
    let replicas = state.panel.cluster().await?;
    Ok(Json(json!({ "success": true, "replicas": replicas })).into_response())
}

async fn api_not_found() -> AppError {
    AppError::not_found("API route")
}

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/servers", get(list_servers).post(add_server))
        .route("/api/servers/{id}", get(get_server))
        .route("/api/servers/{id}/clients", get(reports::server_clients).post(generate::generate_peer))
        .route("/api/clients/{id}/config", get(generate::client_config))
        .route("/api/servers/{id}/push-token", post(generate::create_push_token))
        .route("/api/vpn-servers/{id}/events", post(generate::push_events))
        .route("/api/clients/{id}/qr.svg", get(generate::client_qr))
        .route("/api/servers/{id}/sync-stats", post(sync_stats))
        .route("/api/clients/{id}", get(get_client).patch(patch_client).delete(delete_client))
        .route("/api/clients/{id}/revoke", post(revoke_client))
        .route("/api/clients/{id}/sync-stats", post(client_sync_stats))
        // Seed 000's path for the same server sync.
        .route("/servers/{id}/sync-stats", post(sync_stats))
        .route("/api/clients/{id}/restore", post(restore_client))
        .route("/api/updatePeerTrafficLimit/{config}", peer_field_route(PeerField::TrafficLimit))
        .route("/api/updatePeerExpiryDate/{config}", peer_field_route(PeerField::ExpiryDate))
        .route("/api/updatePeerTrafficWarningThreshold/{config}", peer_field_route(PeerField::WarningThreshold))
        .route("/api/events", get(list_events))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{id}", get(get_user).patch(patch_user).delete(delete_user))
        .route("/api/users/{id}/can-connect", get(can_connect))
        .route("/api/sessions", get(reports::list_sessions))
        .route("/api/sessions/{id}/disconnect", post(disconnect))
        .route("/api/dashboard", get(reports::dashboard))
        .route("/api/cluster", get(cluster))
        .route("/api/live", get(live::live))
        .route(
            crate::server::forward::PATH,
            post(internal::host_call).layer(axum::extract::DefaultBodyLimit::max(internal::BODY_LIMIT)),
        )
        .route("/api/{*rest}", get(api_not_found).post(api_not_found).patch(api_not_found).delete(api_not_found))
        .route("/healthz", get(|| async { "ok" }))
}
