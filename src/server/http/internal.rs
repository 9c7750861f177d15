//! `POST /internal/host-call`: another replica's sealed call for a host
//! this replica polls (see [`crate::server::forward`]). Not for browsers:
//! no session, but nothing happens unless the body opens with the secrets
//! key.

use crate::server::forward::Refusal;
use crate::server::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub async fn host_call(State(state): State<AppState>, body: String) -> Response {
    let Some(forwarder) = &state.panel.forwarder else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match forwarder.serve(&state.panel.poller, &body).await {
        Ok(sealed) => (StatusCode::OK, sealed).into_response(),
        Err(Refusal::NotForMe) => (StatusCode::CONFLICT, "meant for another replica").into_response(),
        Err(refusal) => {
            tracing::warn!(%refusal, "refused a call from another replica");
            (StatusCode::UNAUTHORIZED, "refused").into_response()
        }
    }
}
