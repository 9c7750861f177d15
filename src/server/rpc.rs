//! Helpers for server function bodies: the app state and the session, from
//! the Leptos context of the current request.

use crate::error::AppError;
use crate::server::panel::Admin;
use crate::server::AppState;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("app state missing from the request context"))
}

pub fn request_parts() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| AppError::internal("request parts missing from the context"))
}

/// The state and the logged-in admin; `Unauthorized` without a live session.
pub async fn require_admin() -> Result<(AppState, Admin), AppError> {
    let state = state()?;
    let parts = request_parts()?;
    let admin = state.panel.authenticate(&parts.headers).await?;
    Ok((state, admin))
}

pub fn set_cookie(value: &str) -> Result<(), AppError> {
    let response = use_context::<ResponseOptions>()
        .ok_or_else(|| AppError::internal("response options missing from the context"))?;
    response.append_header(header::SET_COOKIE, HeaderValue::from_str(value).map_err(AppError::internal)?);
    Ok(())
}
