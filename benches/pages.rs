//! Pages at fleet scale: one server of 10,000 clients among 200 servers.
//!
//! ```sh
//! cargo bench --features ssr --bench pages
//! cargo bench --features ssr --bench pages -- --clients 10000 --servers 200 --runs 30 --tabs 100
//! ```
//!
//! The 10,000-peer `wg show dump` goes through the real ingest twice (an
//! import, then a poll in which every peer moved bytes), so every client
//! has live figures and a month's traffic. The other servers are empty and
//! point at a closed loopback port, so the panel's pollers fail at once and
//! reach nothing. Then the panel runs in this process on the SQLite file
//! and is asked over real HTTP, with a logged-in session: the server page
//! as a browser's first load (server-rendered HTML), a JSON page of that
//! server's clients, the same filtered by a search, the dashboard's data,
//! and the servers page. Reported per request: p50 / p95 over the runs
//! (after one warm-up) and the body's size.
//!
//! The dashboard is computed once per live event and shared by the pages
//! that ask until the next (`server::shared`): each of its runs follows an
//! event (a user is added), so it measures the computation. Then 100 tabs
//! ask for it together after one event, as open dashboards do: the time
//! until the last has its answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{add_admin, advance, arg, peers, percentile, render, server_at, Panel};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;
use tollgate::domain::accounting::month_key;
use tollgate::domain::wg_dump::{parse_dump, DumpFlavor};
use tollgate::domain::Protocol;
use tollgate::server::store::{AnyStore, WireguardPoll};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clients = arg("--clients", 10_000) as u32;
    let servers = arg("--servers", 200);
    let runs = arg("--runs", 30);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pages.db").display());
    let store = AnyStore::open(&url).await.unwrap();
    add_admin(&*store).await;
    let big = server_at(&*store, "big", "127.0.0.1", 9).await;
    for i in 1..servers {
        server_at(&*store, &format!("s{i:03}"), "127.0.0.1", 9).await;
    }
    let mut rng = StdRng::seed_from_u64(3);
    let mut fleet = peers(clients);
    let tz = chrono_tz::UTC;
    for (step, import) in [(60, true), (30, false)] {
        let at = Utc::now() - Duration::seconds(step);
        advance(&mut fleet, &mut rng, at);
        let text = render(&fleet);
        let dump = parse_dump(&text, DumpFlavor::WireGuard).unwrap();
        let month = month_key(at, &tz);
        let poll = WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import, fence: None };
        assert!(store.apply_wireguard_poll(big, &poll).await.unwrap().applied);
    }
    store.close().await;

    let panel = Panel::start(url).await;
    let (base, http) = (&panel.base, &panel.http);

    println!("pages: one server of {clients} clients among {servers} servers, {runs} runs each");
    // A live event: the dashboard's shared answer is stale after it.
    let users = std::sync::atomic::AtomicU32::new(0);
    let event = || async {
        let n = users.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let res = http.post(format!("{base}/api/users")).json(&serde_json::json!({ "name": format!("bench {n}") }));
        assert!(res.send().await.unwrap().status().is_success());
    };
    let requests = [
        ("server page (HTML, first load)", format!("/servers/{big}"), false),
        ("clients, JSON page of 50", format!("/api/servers/{big}/clients?page=1&per_page=50"), false),
        (
            "clients, JSON page 100 by month ↓",
            format!("/api/servers/{big}/clients?page=100&sort=month_down&dir=desc"),
            false,
        ),
        ("clients, JSON search", format!("/api/servers/{big}/clients?q=AQAAAAcH"), false),
        ("dashboard data (JSON), after an event", "/api/dashboard".to_owned(), true),
        ("dashboard (HTML), after an event", "/".to_owned(), true),
        ("servers page (HTML)", "/servers".to_owned(), false),
    ];
    for (label, path, after_event) in requests {
        let mut times = Vec::with_capacity(runs);
        let mut size = 0;
        for run in 0..=runs {
            if after_event {
                event().await;
            }
            let started = Instant::now();
            let res = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
            let body = res.bytes().await.unwrap();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            size = body.len();
            if run > 0 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label:<40} p50 {:>7.1} ms  p95 {:>7.1} ms  {:>9} B   {path}",
            percentile(&times, 50.0),
            percentile(&times, 95.0),
            size
        );
    }

    let tabs = arg("--tabs", 100);
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        event().await;
        let started = Instant::now();
        let asks = (0..tabs).map(|_| async {
            let res = http.get(format!("{base}/api/dashboard")).send().await.unwrap();
            assert!(res.status().is_success());
            res.bytes().await.unwrap();
        });
        futures_util::future::join_all(asks).await;
        if run > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{:<40} p50 {:>7.1} ms  p95 {:>7.1} ms  (until the last answer)",
        format!("dashboard data, {tabs} tabs at once"),
        percentile(&times, 50.0),
        percentile(&times, 95.0)
    );
    panel.stop().await;
}
