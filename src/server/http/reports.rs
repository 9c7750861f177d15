//! Reading routes with queries: a page of a server's clients, sessions,
//! and the dashboard's figures.

use super::server_id;
use crate::domain::listing::ClientQuery;
use crate::domain::{ClientId, ServerId};
use crate::error::AppError;
use crate::server::panel::{Admin, RECENT};
use crate::server::store::SessionFilter;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// A server's clients: all of them, or one page when the query has any of
/// `q`, `status`, `sort`, `dir`, `page`, `per_page`.
pub(super) async fn server_clients(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    const LISTING: [&str; 6] = ["q", "status", "sort", "dir", "page", "per_page"];
    let id = server_id(&id)?;
    if !params.iter().any(|(k, _)| LISTING.contains(&k.as_str())) {
        let clients = state.panel.clients(id).await?;
        return Ok(Json(json!({ "success": true, "clients": clients })).into_response());
    }
    let query = ClientQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| AppError::bad_request(e.0))?;
    let listing = state.panel.client_page(id, &query).await?;
    let mut body = serde_json::to_value(&listing).map_err(AppError::internal)?;
    body["success"] = json!(true);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionsQuery {
    /// `open` (default), `recent` (ended in the last 24 hours) or `all`.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    server: Option<i64>,
    /// Only this client's sessions.
    #[serde(default)]
    client: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

pub(super) async fn list_sessions(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<SessionsQuery>,
) -> Result<Response, AppError> {
    let mut filter = SessionFilter {
        server: q.server.map(ServerId::new),
        client: q.client.map(ClientId::new),
        limit: q.limit.unwrap_or(200),
        ..SessionFilter::default()
    };
    match q.state.as_deref().unwrap_or("open") {
        "open" => filter.open = true,
        "recent" => filter.ended_since = Some(chrono::Utc::now() - RECENT),
        "all" => {}
        other => return Err(AppError::bad_request(format!("state: {other:?} is not open, recent or all"))),
    }
    let sessions = state.panel.sessions(filter).await?;
    Ok(Json(json!({ "success": true, "sessions": sessions })).into_response())
}

#[derive(Deserialize)]
pub(super) struct DashboardQuery {
    server: Option<String>,
}

/// The dashboard's figures; `?server=ID` narrows them to one server.
pub(super) async fn dashboard(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<DashboardQuery>,
) -> Result<Response, AppError> {
    let server = q.server.as_deref().filter(|s| !s.is_empty()).map(server_id).transpose()?;
    let view = state.panel.dashboard(server).await?;
    Ok(Json(json!({ "success": true, "dashboard": view })).into_response())
}
