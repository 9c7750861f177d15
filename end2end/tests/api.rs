//! The HTTP surface without VPN hosts: sessions, throttling, validation, and
//! the `tollgate admin` command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tollgate::error::{AppError, ErrorKind};

#[tokio::test]
async fn every_route_refuses_requests_without_a_session() {
    let panel = TestPanel::start().await;
    let anonymous = panel.client();
    for (method, path) in [
        ("GET", "/api/servers"),
        ("POST", "/api/servers"),
        ("GET", "/api/servers/1"),
        ("GET", "/api/servers/1/clients"),
        ("POST", "/api/servers/1/sync-stats"),
        ("GET", "/api/dashboard"),
        ("GET", "/api/live"),
        ("POST", "/rpc/servers"),
        ("POST", "/rpc/dashboard"),
        ("POST", "/rpc/add_server"),
    ] {
        let req = match method {
            "GET" => anonymous.get(panel.url(path)),
            _ => anonymous.post(panel.url(path)).json(&json!({})),
        };
        let res =
            req.header("cookie", "tollgate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_refusal(path, res, ErrorKind::Unauthorized).await;
    }
    for page in ["/", "/servers", "/servers/1"] {
        let res = anonymous.get(panel.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(res.headers()["location"], "/login");
    }
    let login_page = anonymous.get(panel.url("/login")).send().await.unwrap();
    assert_eq!(login_page.status(), StatusCode::OK);
    assert_eq!(login_page.headers()["x-frame-options"], "DENY");
    panel.stop().await;
}

#[tokio::test]
async fn a_live_stream_needs_a_session_and_carries_each_change_as_it_happens() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let mut live = LiveStream::open(&http, &panel.url("")).await;
    let mut page = LiveStream::open_wire(&http, &panel.url("")).await;
    let (status, user) = post_json(&http, &panel.url("/api/users"), &json!({ "name": "Ann" })).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (name, data) = live.next(std::time::Duration::from_secs(2)).await.expect("an event within 2 s");
    assert_eq!(name, "user_changed");
    assert_eq!(data, json!({ "kind": "user_changed", "user": user["user"]["id"] }));
    // The pages' stream carries the same event in postcard.
    let (name, data) = page.next(std::time::Duration::from_secs(2)).await.expect("the page's event within 2 s");
    assert_eq!(name, "user_changed");
    assert_eq!(data, json!({ "kind": "user_changed", "user": user["user"]["id"] }));
    // Both opened with the panel's build, which a page compares with its own.
    assert_eq!(live.build.as_deref(), Some(tollgate::BUILD));
    assert_eq!(page.build.as_deref(), Some(tollgate::BUILD));

    // The stream was opened with the session: a logout ends the session,
    // and a new stream with it is refused.
    let res = http.post(panel.url("/api/auth/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http.get(panel.url("/api/live")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    panel.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_ends_at_logout() {
    let panel = TestPanel::start().await;
    let http = panel.client();
    let res = http
        .post(panel.url("/api/auth/login"))
        .json(&json!({ "username": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tollgate_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let token = cookie.split(';').next().unwrap().to_owned();

    let (status, _) = get_json(&http, &panel.url("/api/servers")).await;
    assert_eq!(status, StatusCode::OK);
    let res = http.post(panel.url("/api/auth/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The old token is dead on the server, not just forgotten by the client.
    let replay = panel.client();
    let res = replay.get(panel.url("/api/servers")).header("cookie", token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    panel.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let panel = TestPanel::start().await;
    let http = panel.client();
    let (s1, b1) =
        post_json(&http, &panel.url("/api/auth/login"), &json!({"username": ADMIN, "password": "wrong password!"}))
            .await;
    let (s2, b2) =
        post_json(&http, &panel.url("/api/auth/login"), &json!({"username": "nobody", "password": "wrong password!"}))
            .await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(b1, b2);
    assert_eq!(b1["error"], "Invalid username or password.");
    panel.stop().await;
}

#[tokio::test]
async fn logins_are_throttled_per_username_after_five_failures() {
    let panel = TestPanel::start().await;
    let http = panel.client();
    let login = |password: &'static str| {
        http.post(panel.url("/api/auth/login")).json(&json!({ "username": ADMIN, "password": password })).send()
    };
    for _ in 0..5 {
        assert_eq!(login("not the password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let res = login(PASSWORD).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["kind"], "too_many_requests");
    panel.stop().await;
}

#[tokio::test]
async fn bad_add_server_requests_name_every_problem_and_store_nothing() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    let (status, body) = post_json(
        &http,
        &panel.url("/api/servers"),
        &json!({
            "name": "x", "host": "10.0.0.1; reboot", "user": "root",
            "private_key_path": "key", "interface": "wg0$(id)", "command_prefix": "docker exec a|b",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"].as_str().unwrap();
    for field in ["host:", "interface:", "command_prefix:", "absolute path"] {
        assert!(message.contains(field), "{field} in {message}");
    }
    let (status, body) = post_json(&http, &panel.url("/api/servers"), &json!({"name": "x", "unknown": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["success"], false);
    let res = http
        .post(panel.url("/api/servers"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let (_, list) = get_json(&http, &panel.url("/api/servers")).await;
    assert_eq!(list["servers"], json!([]));
    let (status, _) = get_json(&http, &panel.url("/api/servers/999/clients")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_json(&http, &panel.url("/api/servers/abc")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel.stop().await;
}

#[tokio::test]
async fn admin_commands_read_passwords_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());

    let (ok, out) = tollgate(&["admin", "create", "alice"], &url, "short\n");
    assert!(!ok && out.contains("at least 12"), "{out}");
    let (ok, out) = tollgate(&["admin", "create", "al ice"], &url, "a long enough password\n");
    assert!(!ok && out.contains("invalid username"), "{out}");
    let (ok, out) = tollgate(&["admin", "create", "alice"], &url, "a long enough password\n");
    assert!(ok, "{out}");
    let (ok, out) = tollgate(&["admin", "create", "alice"], &url, "another long password\n");
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = tollgate(&["admin", "list"], &url, "");
    assert!(ok && out.contains("alice"), "{out}");
    let (ok, out) = tollgate(&["admin", "passwd", "alice"], &url, "the changed password\n");
    assert!(ok, "{out}");
    let (ok, out) = tollgate(&["admin", "passwd", "bob"], &url, "the changed password\n");
    assert!(!ok && out.contains("no admin named bob"), "{out}");

    let mode = std::fs::metadata(dir.path().join("cli.db")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o077, 0, "the database is private to its owner");

    // The panel does not start without its secrets key; `setup` makes it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = tollgate::server::startup::run(listener, test_config(&url), async {}).await.unwrap_err();
    assert!(format!("{refused:#}").contains("run `tollgate setup` to create it"), "{refused:#}");
    let (ok, out) = tollgate(&["setup"], &url, "");
    assert!(ok && out.contains("secrets key created"), "{out}");
    let key = std::fs::metadata(dir.path().join("tollgate.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o077, 0, "the key file is private to its owner");
    let (ok, out) = tollgate(&["setup"], &url, "");
    assert!(ok && !out.contains("secrets key created"), "created once: {out}");

    // The panel on that database accepts exactly that password.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(tollgate::server::startup::run(listener, test_config(&url), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let login = |password: &'static str| {
        http.post(format!("http://{addr}/api/auth/login"))
            .json(&json!({"username": "alice", "password": password}))
            .send()
    };
    assert_eq!(login("the changed password").await.unwrap().status(), StatusCode::OK);
    assert_eq!(login("a long enough password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_guessing_client_does_not_lock_out_another() {
    let panel = TestPanel::start_with(|c| tollgate::server::config::Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..c
    })
    .await;
    let http = panel.client();
    let login = |from: &'static str, username: String, password: &'static str| {
        http.post(panel.url("/api/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({ "username": username, "password": password }))
            .send()
    };
    for i in 0..20 {
        let res = login("203.0.113.1", format!("guess{i}"), "wrong password!").await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login("203.0.113.1", ADMIN.to_owned(), PASSWORD).await.unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = login("203.0.113.2", ADMIN.to_owned(), PASSWORD).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    panel.stop().await;
}

/// A form on another site, posted by the admin's browser with its cookie.
fn cross_site(
    http: &reqwest::Client,
    url: String,
    origin: Option<&str>,
    fetch_site: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = http.post(url).header("content-type", "application/x-www-form-urlencoded").body(
        "name=evil&host=127.0.0.1&port=1&user=root&private_key_path=&private_key=x&protocol=&interface=wg0\
               &command_prefix=&status_path=&management_port=&management_password=&host_key_fingerprint=&halt=true",
    );
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    if let Some(site) = fetch_site {
        req = req.header("sec-fetch-site", site);
    }
    req
}

/// A refusal as its caller reads it: a server function's (`/rpc/…`) in
/// postcard, decoded as the page does; the JSON API's as JSON.
async fn assert_refusal(path: &str, res: reqwest::Response, kind: ErrorKind) {
    use leptos::server_fn::error::FromServerFnError;
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let body = res.bytes().await.unwrap();
    if path.starts_with("/rpc/") {
        assert_eq!(content_type, "application/x-postcard", "{path}");
        let error = AppError::de(body);
        assert_eq!(error.kind, kind, "{path}: {error:?}");
        assert!(!error.message.is_empty(), "{path}: {error:?}");
    } else {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["kind"], json!(kind), "{path}: {body}");
        assert_eq!(body["success"], false, "{path}: {body}");
    }
}

#[tokio::test]
async fn cross_origin_form_posts_are_refused_and_change_nothing() {
    let panel = TestPanel::start().await;
    let http = panel.login().await;
    for path in ["/rpc/add_server", "/api/sessions/1/disconnect", "/api/servers/1/sync-stats", "/api/servers"] {
        for (origin, site) in [
            (Some("https://evil.example"), Some("cross-site")),
            (Some("http://evil.example"), None),
            (None, Some("same-site")),
            (Some("null"), None),
        ] {
            let res = cross_site(&http, panel.url(path), origin, site).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} from {origin:?}/{site:?}");
            assert_refusal(path, res, ErrorKind::Forbidden).await;
        }
    }
    // A JSON endpoint takes JSON only, whoever sends it.
    let res = cross_site(&http, panel.url("/api/servers"), None, None).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = cross_site(&http, panel.url("/api/sessions/1/disconnect"), None, None).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, list) = get_json(&http, &panel.url("/api/servers")).await;
    assert_eq!(list["servers"], json!([]), "nothing stored");

    // The panel's own forms (same origin) still reach their handlers.
    let own =
        cross_site(&http, panel.url("/rpc/add_server"), Some(&panel.base), Some("same-origin")).send().await.unwrap();
    assert_ne!(own.status(), StatusCode::FORBIDDEN);
    let (status, _) = post_json(&http, &panel.url("/api/servers/1/sync-stats"), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a same-origin JSON call without Origin is served");
    panel.stop().await;
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_verify_at_most_the_allowed_five() {
    let panel = TestPanel::start().await;
    let http = panel.client();
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let req =
            http.post(panel.url("/api/auth/login")).json(&json!({ "username": ADMIN, "password": "not the password" }));
        tries.spawn(async move { req.send().await.unwrap().status() });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(status) = tries.join_next().await {
        *counts.entry(status.unwrap().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(counts.get(&401), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&45), "{counts:?}");
    panel.stop().await;
}

#[tokio::test]
async fn a_key_file_outside_the_key_directory_is_one_422_naming_the_field() {
    let panel = TestPanel::start_with(|c| tollgate::server::config::Config { ssh_key_dir: None, ..c }).await;
    let http = panel.login().await;
    let keys = panel.config.key_dir();
    let db = panel.database_url.trim_start_matches("sqlite://").to_owned();
    assert_eq!(keys, std::path::Path::new(&db).parent().unwrap().join("keys"), "keys/ beside the database");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("notes.txt"), "not a key\n").unwrap();
    let mut answers = Vec::new();
    for path in [
        "/etc/shadow".to_owned(),
        "/nonexistent/key".to_owned(),
        format!("{}/../../../etc/passwd", keys.display()),
        format!("{}/missing", keys.display()),
        format!("{}/notes.txt", keys.display()),
    ] {
        let body = json!({
            "name": "k", "host": "127.0.0.1", "port": 1, "user": "root",
            "private_key_path": path, "interface": "wg0",
        });
        let (status, refused) = post_json(&http, &panel.url("/api/servers"), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {refused}");
        let message = refused["error"].as_str().unwrap().to_owned();
        assert!(message.contains("private_key_path"), "{message}");
        assert!(!message.contains("No such file") && !message.contains("denied"), "{message}");
        answers.push(message);
    }
    assert_eq!(answers[0], answers[1], "whether a file exists outside the key directory is not told");
    let (_, list) = get_json(&http, &panel.url("/api/servers")).await;
    assert_eq!(list["servers"], json!([]));
    panel.stop().await;
}
