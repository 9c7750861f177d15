//! `POST /internal/host-call`: another replica's sealed call for a host
//! this replica polls (see [`crate::server::forward`]). Not for browsers:
//! no session, but nothing happens unless the body opens with the secrets
//! key.

use crate::server::forward::Refusal;
use crate::server::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicI64, Ordering};

/// The largest call: a pushed status of tens of thousands of peers,
/// escaped and sealed.
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// When a refusal was last logged (Unix seconds): at most one a minute,
/// so that anyone able to reach the port cannot flood the log.
static LAST_LOGGED: AtomicI64 = AtomicI64::new(0);

fn log_refusal(refusal: &Refusal) {
    let now = chrono::Utc::now().timestamp();
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    if now - last >= 60 && LAST_LOGGED.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        tracing::warn!(%refusal, "refused a call from another replica (further refusals this minute are not logged)");
    }
}

pub async fn host_call(State(state): State<AppState>, body: String) -> Response {
    let Some(forwarder) = &state.panel.forwarder else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match forwarder.serve(&state.panel.poller, &body, &state.closing).await {
        Ok(sealed) => (StatusCode::OK, sealed).into_response(),
        Err(Refusal::NotForMe) => (StatusCode::CONFLICT, "meant for another replica").into_response(),
        Err(refusal) => {
            log_refusal(&refusal);
            (StatusCode::UNAUTHORIZED, "refused").into_response()
        }
    }
}
