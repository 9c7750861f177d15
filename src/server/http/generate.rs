//! `POST /api/servers/{id}/clients` (generate a peer), a generated peer's
//! config as a file and as a QR code (both hold the peer's private key:
//! never cached), and the servers' push tokens and pushed events.

use super::{client_id, server_id, ObjectBody};
use crate::error::AppError;
use crate::server::panel::Admin;
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

fn private(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) async fn generate_peer(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    super::ApiJson(body): ObjectBody,
) -> Result<Response, AppError> {
    let peer = state.panel.generate_peer(&admin, server_id(&id)?, &body).await?;
    let body = json!({
        "success": true,
        "message": "Peer generated",
        "client": peer.client,
        "config": peer.config,
        "qr_svg": peer.qr_svg,
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn client_config(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = client_id(&id)?;
    let config = state.panel.client_config(id).await?;
    let mut response = private(config.into_response(), "text/plain; charset=utf-8");
    let disposition = format!("attachment; filename=\"tollgate-{id}.conf\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub(super) async fn client_qr(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let svg = state.panel.client_qr(client_id(&id)?).await?;
    Ok(private(svg.into_response(), "image/svg+xml"))
}

pub(super) async fn create_push_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let token = state.panel.create_push_token(&admin, server_id(&id)?).await?;
    let mut response = Json(json!({ "success": true, "token": token })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/vpn-servers/{id}/events` with `Authorization: Bearer <token>`
/// and the status as the body (any content type).
pub(super) async fn push_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Result<Response, AppError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let outcome = state.panel.push_events(server_id(&id)?, bearer, &body).await?;
    Ok(Json(json!({ "success": true, "applied": outcome.applied, "sources": outcome.sources })).into_response())
}
