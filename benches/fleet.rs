//! Fleet benchmark: many hosts polled every 30 s, through the real ingest
//! path and store, by one or two replicas sharing the servers by lease.
//!
//! ```sh
//! cargo bench --features ssr --bench fleet                                   # SQLite, 1 replica
//! cargo bench --features ssr --bench fleet -- --replicas 2
//! TOLLGATE_TEST_POSTGRES_URL=postgres://… cargo bench --features ssr --bench fleet -- --postgres
//! cargo bench --features ssr --bench fleet -- --hosts 50 --peers 1000 --rounds 5
//! ```
//!
//! Each round is one poll interval of the fleet: every host's peers move on
//! (see `common::advance`) and every host is polled once, by the replica
//! holding its lease, with the lease's fence — the dumps are rendered
//! before the round, so the figures are the panel's work alone. Reported:
//! p50/p95 of one poll (parse + plan + the one write transaction), the
//! process's CPU time per round as a share of one core over the 30-s
//! interval (and the PostgreSQL server's, from its processes), peak RSS,
//! and write transactions per host-poll (PostgreSQL's own commit count).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{advance, peers, percentile, render, Peer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Instant;
use tollgate::domain::accounting::month_key;
use tollgate::domain::wg_dump::{parse_dump, DumpFlavor};
use tollgate::domain::{Protocol, ServerId};
use tollgate::server::store::{AnyStore, Fence, Replica, WireguardPoll};

const INTERVAL_SECS: f64 = 30.0;

struct Args {
    hosts: usize,
    peers: u32,
    rounds: usize,
    replicas: usize,
    postgres: bool,
}

fn args() -> Args {
    let mut a = Args { hosts: 200, peers: 1000, rounds: 10, replicas: 1, postgres: false };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match argv[i].as_str() {
            "--hosts" => a.hosts = value().expect("--hosts N"),
            "--peers" => a.peers = value().expect("--peers N") as u32,
            "--rounds" => a.rounds = value().expect("--rounds N"),
            "--replicas" => a.replicas = value().expect("--replicas N").clamp(1, 8),
            "--postgres" => {
                a.postgres = true;
                i -= 1;
            }
            _ => {
                i -= 1;
            }
        }
        i += 2;
    }
    a
}

/// CPU seconds (user + system) of the processes whose `/proc/PID/stat`
/// passes `keep`.
fn cpu_seconds(keep: impl Fn(u32, &str) -> bool) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map_or("", |(_, c)| c);
        if !keep(pid, comm) {
            continue;
        }
        let f: Vec<&str> = rest.split(' ').collect();
        // After "pid (comm) ": state is field 0; utime 11, stime 12.
        let used = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
        total += used / ticks;
    }
    total
}

fn own_cpu() -> f64 {
    let me = std::process::id();
    cpu_seconds(|pid, _| pid == me)
}

fn postgres_cpu() -> f64 {
    cpu_seconds(|_, comm| comm.starts_with("postgres"))
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A fresh database: a SQLite file in `dir`, or a new PostgreSQL database.
async fn database(postgres: bool, dir: &std::path::Path) -> String {
    if !postgres {
        return format!("sqlite://{}", dir.join("fleet.db").display());
    }
    common::postgres_database("fleet").await
}

/// PostgreSQL's committed transactions in the current database.
async fn commits(store: &AnyStore) -> i64 {
    let AnyStore::Postgres(_) = store else { return 0 };
    let url = std::env::var("TOLLGATE_TEST_POSTGRES_URL").unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let name = format!("tollgate_fleet_{}", std::process::id());
    use sqlx::ConnectOptions;
    let mut conn = options.database(&name).disable_statement_logging().connect().await.unwrap();
    // The statistics are per transaction snapshot: clear the cache first.
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut conn).await.unwrap();
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// One poll through the real path; its milliseconds.
async fn ingest(store: &AnyStore, id: ServerId, text: &str, at: DateTime<Utc>, fence: &Fence, import: bool) -> f64 {
    let started = Instant::now();
    let dump = parse_dump(text, DumpFlavor::WireGuard).unwrap();
    let month = month_key(at, &chrono_tz::UTC);
    let poll =
        WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump: &dump, import, fence: Some(fence) };
    assert!(store.apply_wireguard_poll(id, &poll).await.unwrap().applied);
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let url = database(a.postgres, dir.path()).await;
    let replicas: Vec<(Replica, AnyStore)> = {
        let mut out = Vec::new();
        for r in 0..a.replicas {
            let store = AnyStore::open(&url).await.unwrap();
            out.push((Replica { id: format!("replica-{r}"), name: format!("bench:{r}"), address: None }, store));
        }
        out
    };
    let mut ids = Vec::with_capacity(a.hosts);
    for h in 0..a.hosts {
        ids.push(common::server(&*replicas[0].1, &format!("host-{h}")).await);
    }
    let ttl = std::time::Duration::from_secs(30);
    let mut at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    // Lease rounds until the shares settle (each gives up its excess, the
    // next takes it).
    let mut held: Vec<Vec<(ServerId, i64)>> = vec![Vec::new(); a.replicas];
    for _ in 0..3 {
        for (r, (me, store)) in replicas.iter().enumerate() {
            held[r] = store.lease_round(me, at, ttl).await.unwrap().held;
        }
    }
    let mut fleets: Vec<Vec<Peer>> = (0..a.hosts).map(|_| peers(a.peers)).collect();
    let mut rng = StdRng::seed_from_u64(42);
    let index_of = |id: ServerId| ids.iter().position(|s| *s == id).unwrap();

    // The first poll of each host (every peer new) is not counted.
    for fleet in fleets.iter_mut() {
        advance(fleet, &mut rng, at);
    }
    for (r, (me, store)) in replicas.iter().enumerate() {
        for &(id, fence) in &held[r] {
            let fence = Fence { owner: me.id.clone(), number: fence };
            ingest(store, id, &render(&fleets[index_of(id)]), at, &fence, true).await;
        }
    }

    let replicas = Arc::new(replicas);
    let mut times = Vec::new();
    let (cpu0, pg0, commits0) = (own_cpu(), postgres_cpu(), commits(&replicas[0].1).await);
    let mut rendered_cpu = 0.0;
    let mut polls = 0usize;
    for _ in 0..a.rounds {
        at += Duration::seconds(30);
        // The panel's lease rounds come every 10 s: one now, two below.
        for (r, (me, store)) in replicas.iter().enumerate() {
            held[r] = store.lease_round(me, at, ttl).await.unwrap().held;
        }
        // The harness's work (moving the peers on, rendering the dumps) is
        // timed apart and taken out of the panel's CPU share.
        let render_started = own_cpu();
        let mut dumps: Vec<Vec<(ServerId, i64, String)>> = vec![Vec::new(); a.replicas];
        for (r, list) in held.iter().enumerate() {
            for &(id, fence) in list {
                let fleet = &mut fleets[index_of(id)];
                advance(fleet, &mut rng, at);
                dumps[r].push((id, fence, render(fleet)));
            }
        }
        rendered_cpu += own_cpu() - render_started;
        let mut tasks = Vec::new();
        for (r, list) in dumps.into_iter().enumerate() {
            let replicas = replicas.clone();
            tasks.push(tokio::spawn(async move {
                let (me, store) = &replicas[r];
                let mut out = Vec::with_capacity(list.len());
                for (id, fence, text) in list {
                    let fence = Fence { owner: me.id.clone(), number: fence };
                    out.push(ingest(store, id, &text, at, &fence, false).await);
                }
                for later in [10, 20] {
                    store.lease_round(me, at + Duration::seconds(later), ttl).await.unwrap();
                }
                out
            }));
        }
        for task in tasks {
            let t = task.await.unwrap();
            polls += t.len();
            times.extend(t);
        }
    }
    let cpu = own_cpu() - cpu0 - rendered_cpu;
    let pg = postgres_cpu() - pg0;
    // PostgreSQL publishes its counters up to a second late.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let commits = commits(&replicas[0].1).await - commits0;
    times.sort_by(f64::total_cmp);
    let backend = if a.postgres { "PostgreSQL" } else { "SQLite" };
    println!(
        "fleet on {backend}, {} replica(s): {} hosts × {} peers, {} rounds ({polls} polls): \
         poll p50 {:.2} ms, p95 {:.2} ms; panel CPU {:.2} % of one core{}; peak RSS {:.0} MiB{}",
        a.replicas,
        a.hosts,
        a.peers,
        a.rounds,
        percentile(&times, 50.0),
        percentile(&times, 95.0),
        100.0 * cpu / (a.rounds as f64 * INTERVAL_SECS),
        if a.postgres {
            format!(", PostgreSQL server CPU {:.2} %", 100.0 * pg / (a.rounds as f64 * INTERVAL_SECS))
        } else {
            String::new()
        },
        peak_rss_mib(),
        if a.postgres {
            // Lease rounds commit too: 3 per replica per round.
            let lease = (3 * a.replicas * a.rounds) as f64;
            format!("; write transactions per host-poll {:.2}", (commits as f64 - lease) / polls as f64)
        } else {
            "; one write transaction per host-poll (BEGIN IMMEDIATE … COMMIT)".to_owned()
        }
    );
    for (_, store) in replicas.iter() {
        store.close().await;
    }
}
