//! The guards every request passes: the page gate (a session or the login
//! page), cross-site request forgery checks, and the security headers.

use crate::error::{AppError, ErrorKind};
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// Paths anyone may fetch: the login page and its server function, built
/// assets, and the JSON API (whose handlers check the session themselves).
fn is_public(path: &str) -> bool {
    path == "/login"
        || path == "/rpc/login"
        || path == "/healthz"
        || path == "/favicon.svg"
        || path == "/favicon.ico"
        || path.starts_with("/pkg/")
        || path.starts_with("/api/")
        || path == crate::server::forward::PATH
}

/// Sends browsers without a live session to the login page. Server functions
/// are answered 401 here and check the session again themselves.
pub async fn require_session(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    match state.panel.authenticate(request.headers()).await {
        Ok(_) => next.run(request).await,
        Err(e) if request.uri().path().starts_with("/rpc/") => refuse(request.uri().path(), request.headers(), e),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// Cross-site request forgery: a state-changing request (anything but GET,
/// HEAD, OPTIONS) is refused when a browser says it comes from another site
/// (`Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` whose
/// host differs from `Host`). Clients that are not browsers (the CLI, curl,
/// scripts) send neither header and pass. JSON endpoints (`/api/…`) also
/// refuse any body that is not `application/json`, so no HTML form can
/// reach them. A reverse proxy must pass the `Host` header through.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    if let Err(refused) = check_origin(request.headers()) {
        tracing::warn!(path = %request.uri().path(), reason = refused, "refused a cross-site request");
        let error = AppError::new(ErrorKind::Forbidden, "Cross-site requests are refused.");
        return refuse(request.uri().path(), request.headers(), error);
    }
    // Pushed events carry a status file or dump, with a bearer token (not a cookie).
    let pushed = request.uri().path().starts_with("/api/vpn-servers/");
    if request.uri().path().starts_with("/api/") && !pushed && !is_json_or_absent(request.headers()) {
        return AppError::new(ErrorKind::UnsupportedMediaType, "This endpoint takes application/json.").into_response();
    }
    next.run(request).await
}

/// A refusal in the form its caller reads. A server function (`/rpc/…`)
/// called by a page gets the error in the server functions' own encoding
/// (postcard), which the page decodes into the same [`AppError`] and shows
/// ("Please log in." with its "Log in again" link). A form posted without
/// JavaScript is a page load: the browser would download postcard, so an
/// expired session goes to the login page and anything else gets the JSON
/// API's readable `{"success": false, …}`, as the JSON API does.
fn refuse(path: &str, headers: &HeaderMap, error: AppError) -> Response {
    use leptos::server_fn::error::FromServerFnError;
    use leptos::server_fn::ContentType;
    if !path.starts_with("/rpc/") {
        return error.into_response();
    }
    let page_load =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if page_load {
        return match error.kind {
            ErrorKind::Unauthorized => Redirect::to("/login").into_response(),
            _ => error.into_response(),
        };
    }
    let status = error.kind.status();
    let kind = HeaderValue::from_static(crate::api::wire::PostcardEncoding::CONTENT_TYPE);
    (status, [(header::CONTENT_TYPE, kind)], error.ser()).into_response()
}

/// `Err(reason)` when the browser's headers say the request is cross-site.
fn check_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    match headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("")) {
        Some("same-origin" | "none") => return Ok(()),
        Some(_) => return Err("sec-fetch-site"),
        None => {}
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "origin")?;
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).ok_or("origin")?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).ok_or("host")?;
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err("origin")
    }
}

fn is_json_or_absent(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json")),
    }
}

/// Headers every response carries.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let code = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // The page's code keeps its name from build to build: a browser must
    // ask whether it changed (a cheap 304 when not), or a page reloaded
    // after an upgrade would run the old code again.
    if code && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_same_origin_browsers_and_non_browsers_may_change_state() {
        assert!(check_origin(&headers(&[])).is_ok(), "the CLI and scripts send no Origin");
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check_origin(&headers(&[("origin", "http://panel:3000"), ("host", "panel:3000")])).is_ok());
        assert!(check_origin(&headers(&[("origin", "https://PANEL"), ("host", "panel")])).is_ok());
        for bad in [
            headers(&[("sec-fetch-site", "cross-site"), ("origin", "http://panel"), ("host", "panel")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("origin", "http://evil"), ("host", "panel")]),
            headers(&[("origin", "http://panel.evil"), ("host", "panel")]),
            headers(&[("origin", "null"), ("host", "panel")]),
            headers(&[("origin", "http://panel")]),
        ] {
            assert!(check_origin(&bad).is_err(), "{bad:?}");
        }
        assert!(is_json_or_absent(&headers(&[])));
        assert!(is_json_or_absent(&headers(&[("content-type", "application/json; charset=utf-8")])));
        assert!(!is_json_or_absent(&headers(&[("content-type", "application/x-www-form-urlencoded")])));
        assert!(!is_json_or_absent(&headers(&[("content-type", "text/plain")])));
    }

    #[tokio::test]
    async fn a_form_posted_without_javascript_is_refused_with_a_page_not_a_download() {
        const FORM: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        let expired = refuse("/rpc/add_server", &headers(&[FORM]), AppError::unauthorized());
        assert_eq!(expired.status(), axum::http::StatusCode::SEE_OTHER);
        assert_eq!(expired.headers()["location"], "/login");
        let forged = refuse("/rpc/add_server", &headers(&[FORM]), AppError::new(ErrorKind::Forbidden, "no"));
        assert_eq!(forged.status(), axum::http::StatusCode::FORBIDDEN);
        assert_eq!(forged.headers()["content-type"], "application/json");
    }

    #[tokio::test]
    async fn a_refused_server_function_call_is_an_error_the_page_can_read() {
        use leptos::server_fn::error::FromServerFnError;
        let refused = refuse("/rpc/list_servers", &headers(&[]), AppError::unauthorized());
        assert_eq!(refused.status(), axum::http::StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16).await.expect("a body");
        assert_eq!(AppError::de(body), AppError::unauthorized());

        let api = refuse("/api/servers", &headers(&[]), AppError::unauthorized());
        let body = axum::body::to_bytes(api.into_body(), 1 << 16).await.expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["success"], false);
        assert_eq!(json["kind"], "unauthorized");
    }

    #[test]
    fn only_login_assets_and_the_api_skip_the_page_gate() {
        for p in ["/login", "/rpc/login", "/pkg/tollgate.wasm", "/api/servers", "/healthz"] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/", "/servers", "/servers/1", "/rpc/list_servers", "/login/../servers", "/pkgx"] {
            assert!(!is_public(p), "{p}");
        }
    }
}
