//! Live updates: one event fanned out to many open pages.
//!
//! ```sh
//! cargo bench --features ssr --bench live                 # 100 tabs, 30 events
//! cargo bench --features ssr --bench live -- --tabs 500
//! ```
//!
//! Starts the panel in this process on a SQLite file, logs in, opens N
//! `GET /api/live` streams over real HTTP connections (as N browser tabs
//! would), then creates a user through the JSON API 30 times; each
//! creation is one `user_changed` event. Per event: *fan-out*, from the
//! first tab that received it to the last; *end to end*, from sending the
//! request to the last tab. Then the tabs stay open and idle for 10 s and
//! the process's CPU time over that span is read (`/proc/self/stat`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate::server::store::AnyStore;

mod common;
use common::{add_admin, arg, percentile, Panel};

/// The process's user + system CPU time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::main]
async fn main() {
    let tabs = arg("--tabs", 100);
    let events = arg("--events", 30);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let store = AnyStore::open(&url).await.unwrap();
    add_admin(&*store).await;
    store.close().await;
    let panel = Panel::start(url).await;
    let (base, http) = (panel.base.clone(), panel.http.clone());

    // Each tab notes when it saw each user's event.
    let seen: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..tabs {
        let mut stream = http.get(format!("{base}/api/live")).send().await.unwrap();
        assert_eq!(stream.status(), 200);
        let seen = seen.clone();
        readers.push(tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                let at = Instant::now();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
                    let event: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
                    if let Some(user) = event["user"].as_i64() {
                        seen.lock().unwrap().push((user, at));
                    }
                }
            }
        }));
    }

    let (mut fan_out, mut end_to_end) = (Vec::new(), Vec::new());
    for round in 0..events {
        let sent = Instant::now();
        let res = http
            .post(format!("{base}/api/users"))
            .json(&serde_json::json!({ "name": format!("u{round}") }))
            .send()
            .await
            .unwrap();
        let user = res.json::<serde_json::Value>().await.unwrap()["user"]["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let arrivals = loop {
            assert!(Instant::now() < deadline, "not every tab heard user {user} within 10 s");
            let got: Vec<Instant> = seen.lock().unwrap().iter().filter(|(u, _)| *u == user).map(|(_, t)| *t).collect();
            if got.len() == tabs {
                break got;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let (first, last) = (arrivals.iter().min().unwrap(), arrivals.iter().max().unwrap());
        fan_out.push((*last - *first).as_secs_f64() * 1000.0);
        end_to_end.push((*last - sent).as_secs_f64() * 1000.0);
    }
    fan_out.sort_by(f64::total_cmp);
    end_to_end.sort_by(f64::total_cmp);

    let idle_from = cpu_time();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = cpu_time() - idle_from;

    println!(
        "live: {tabs} tabs, {events} events: fan-out (first tab to last) p50 {:.2} ms, p95 {:.2} ms; \
         request to last tab p50 {:.2} ms, p95 {:.2} ms; idle 10 s with {tabs} tabs open: {} ms CPU",
        percentile(&fan_out, 50.0),
        percentile(&fan_out, 95.0),
        percentile(&end_to_end, 50.0),
        percentile(&end_to_end, 95.0),
        idle.as_millis(),
    );
    panel.stop().await;
    for reader in readers {
        reader.abort();
    }
}
