//! Ingest and storage benchmark.
//!
//! ```sh
//! cargo bench --features ssr --bench ingest                 # 10,000 peers, 60 polls
//! cargo bench --features ssr --bench ingest -- --peers 2000 --polls 20
//! TOLLGATE_TEST_POSTGRES_URL=postgres://… cargo bench --features ssr --bench ingest -- --postgres
//! ```
//!
//! *Ingest*: one poll of a `wg show <iface> dump` with N peers, timed from
//! the dump text to the committed transaction — parsing, the accounting plan
//! and one `BEGIN IMMEDIATE` transaction into an on-disk SQLite file (WAL,
//! `synchronous = NORMAL`, as the panel runs it). Between polls every peer's
//! counters grow, 1 % of peers are reset and a few handshakes go stale, so
//! sessions open and close as on a busy server.
//!
//! *Storage*: 1,000 peers polled every 30 s for three hours (across a month
//! boundary), then rolled up;
//! the bytes each table needs per row (SQLite's `dbstat`) give the budget per
//! 1,000 clients per year.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlx::Row;
use std::time::Instant;
use tollgate::domain::accounting::month_key;
use tollgate::domain::wg_dump::{parse_dump, DumpFlavor};
use tollgate::domain::Protocol;
use tollgate::domain::ServerId;
use tollgate::server::store::sqlite::SqliteStore;
use tollgate::server::store::WireguardPoll;
use tollgate::server::store::{AnyStore, Store};

mod common;

use common::{advance, peers, percentile, render, server};

const TZ: chrono_tz::Tz = chrono_tz::UTC;

/// Parse + plan + transaction for one poll; returns the milliseconds it took.
async fn ingest(store: &dyn Store, id: ServerId, text: &str, at: DateTime<Utc>, import: bool) -> f64 {
    let started = Instant::now();
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let month = month_key(at, &TZ);
    let poll = WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import, fence: None };
    let outcome = store.apply_wireguard_poll(id, &poll).await.unwrap();
    assert!(outcome.applied);
    started.elapsed().as_secs_f64() * 1000.0
}

async fn bench_ingest(n: u32, polls: usize, postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let url = match postgres {
        false => format!("sqlite://{}", dir.path().join("bench.db").display()),
        true => common::postgres_database("ingest").await,
    };
    let store = AnyStore::open(&url).await.unwrap();
    let id = server(&*store, "bench").await;
    // As in the panel, the write-ahead log is checkpointed in the
    // background, beside the polls; here far more often than the panel's
    // 5 s, as the polls come back to back.
    let cancel = tokio_util::sync::CancellationToken::new();
    let checkpointer = tokio::spawn(tollgate::server::maintenance::checkpoints(
        store.shared(),
        std::time::Duration::from_millis(200),
        cancel.clone(),
    ));
    let mut rng = StdRng::seed_from_u64(42);
    let mut fleet = peers(n);
    let mut at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    advance(&mut fleet, &mut rng, at);
    let text = render(&fleet);
    // Parsing alone, warm: 21 runs, the first not counted; each dump is
    // dropped after the clock is read.
    let mut parses = Vec::with_capacity(20);
    for run in 0..21 {
        let parse_started = Instant::now();
        let dump = parse_dump(&text, DumpFlavor::WireGuard).unwrap();
        let ms = parse_started.elapsed().as_secs_f64() * 1000.0;
        drop(dump);
        if run > 0 {
            parses.push(ms);
        }
    }
    parses.sort_by(f64::total_cmp);
    let parse_ms = percentile(&parses, 50.0);
    let first = ingest(&*store, id, &text, at, true).await;

    let mut times = Vec::with_capacity(polls);
    for _ in 0..polls {
        at += Duration::seconds(30);
        advance(&mut fleet, &mut rng, at);
        let text = render(&fleet);
        times.push(ingest(&*store, id, &text, at, false).await);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "ingest {n} peers ({} KiB dump): first poll (all new) {first:.1} ms; \
         {polls} polls: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, mean {mean:.1} ms; parse alone (warm, p50) {parse_ms:.2} ms",
        text.len() / 1024,
        percentile(&times, 50.0),
        percentile(&times, 95.0),
        times[times.len() - 1],
    );
    cancel.cancel();
    checkpointer.await.unwrap();
    store.close().await;
}

async fn table_bytes(url: &str) -> Vec<(String, i64, i64)> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let tables = [
        "clients",
        "connections",
        "usage_monthly",
        "server_state",
        "traffic_polls",
        "traffic_polls_by_time",
        "traffic_hourly",
        "traffic_daily",
    ];
    let mut out = Vec::new();
    for t in tables {
        let bytes: i64 = sqlx::query("SELECT COALESCE(SUM(pgsize), 0) AS b FROM dbstat WHERE name = ?")
            .bind(t)
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("b");
        let table = if t == "traffic_polls_by_time" { "traffic_polls" } else { t };
        let rows: i64 =
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(&pool).await.unwrap().get("n");
        out.push((t.to_owned(), rows, bytes));
    }
    pool.close().await;
    out
}

async fn bench_storage() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("storage.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let id = server(&store, "bench").await;
    let mut rng = StdRng::seed_from_u64(7);
    let mut fleet = peers(1000);
    // The three hours cross a month boundary, so October's bytes move out of
    // the live state into `usage_monthly` and that table's rows get measured.
    let start = Utc.with_ymd_and_hms(2026, 10, 31, 22, 30, 0).single().unwrap();
    let mut at = start;
    advance(&mut fleet, &mut rng, at);
    ingest(&store, id, &render(&fleet), at, true).await;
    for _ in 0..(3 * 120) {
        at += Duration::seconds(30);
        advance(&mut fleet, &mut rng, at);
        ingest(&store, id, &render(&fleet), at, false).await;
    }
    let samples = table_bytes(&url).await;
    let done = tollgate::server::maintenance::roll_up(
        &store,
        TZ,
        at + Duration::seconds(60),
        std::time::Duration::from_secs(365 * 86_400),
        std::time::Duration::from_secs(365 * 86_400),
    )
    .await
    .unwrap();
    assert!(done > 0, "rolled up nothing");
    let rolled = table_bytes(&url).await;
    store.close().await;

    println!("storage: 1,000 peers, 361 polls 30 s apart, then one roll-up");
    println!("{:<26} {:>10} {:>12} {:>10}", "table/index", "rows", "bytes", "B/row");
    let mut per_row = std::collections::HashMap::new();
    for (name, rows, bytes) in samples
        .iter()
        .chain(rolled.iter().filter(|(n, ..)| n.starts_with("traffic_") && !n.starts_with("traffic_polls")))
    {
        let b = if *rows > 0 { *bytes as f64 / *rows as f64 } else { 0.0 };
        per_row.insert(name.clone(), b);
        println!("{name:<26} {rows:>10} {bytes:>12} {b:>10.1}");
    }
    // Steady state per 1,000 clients, default settings: 30 s polls, samples kept
    // 6 h, hourly buckets 35 days, daily and monthly rows kept for good.
    // A raw-sample row holds one poll of all 1,000 peers.
    let poll_row = per_row["traffic_polls"] + per_row["traffic_polls_by_time"];
    let samples_mb = (6.0 * 120.0) * poll_row / 1e6;
    let hourly_mb = 1000.0 * (35.0 * 24.0) * per_row["traffic_hourly"] / 1e6;
    let daily_mb = 1000.0 * 365.0 * per_row["traffic_daily"] / 1e6;
    let monthly_mb = 1000.0 * 12.0 * per_row["usage_monthly"] / 1e6;
    println!(
        "budget per 1,000 clients: samples {samples_mb:.1} MB (steady), hourly {hourly_mb:.1} MB (steady), \
         daily {daily_mb:.1} MB/year, monthly {monthly_mb:.2} MB/year"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let peers = value("--peers", 10_000) as u32;
    let polls = value("--polls", 60);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let postgres = args.iter().any(|a| a == "--postgres");
        bench_ingest(peers, polls, postgres).await;
        if !postgres && !args.iter().any(|a| a == "--no-storage") {
            bench_storage().await;
        }
    });
}
