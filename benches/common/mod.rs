//! Synthetic WireGuard fleets for the benchmarks: peers whose counters
//! grow, reset and fall silent as on a busy server, rendered as `wg show
//! dump` text, and servers that no poll ever reaches.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use std::fmt::Write as _;
use tollgate::domain::Protocol;
use tollgate::domain::{CommandPrefix, HostAddress, InterfaceName, ServerId, ServerName, SshUser};
use tollgate::domain::{HostKeyPin, SshKeySource};
use tollgate::server::store::{NewServer, Store};

pub struct Peer {
    pub key: String,
    pub rx: u64,
    pub tx: u64,
    pub handshake: i64,
}

pub fn key(i: u32, salt: u8) -> String {
    let mut bytes = [salt; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    STANDARD.encode(bytes)
}

pub fn peers(n: u32) -> Vec<Peer> {
    (0..n).map(|i| Peer { key: key(i, 7), rx: 0, tx: 0, handshake: 0 }).collect()
}

/// Moves the fleet on by one poll interval.
pub fn advance(peers: &mut [Peer], rng: &mut StdRng, at: DateTime<Utc>) {
    for p in peers.iter_mut() {
        if rng.gen_bool(0.01) {
            p.rx = rng.gen_range(0..10_000);
            p.tx = rng.gen_range(0..10_000);
        } else {
            p.rx += rng.gen_range(0..2_000_000);
            p.tx += rng.gen_range(0..20_000_000);
        }
        // Most peers keep handshaking; a few fall silent for a while.
        if !rng.gen_bool(0.02) {
            p.handshake = at.timestamp() - rng.gen_range(0..120);
        }
    }
}

pub fn render(peers: &[Peer]) -> String {
    let mut text = String::with_capacity(peers.len() * 140);
    let _ = writeln!(text, "{}\t{}\t51820\toff", key(0, 1), key(0, 2));
    for (i, p) in peers.iter().enumerate() {
        let _ = writeln!(
            text,
            "{}\t(none)\t198.18.{}.{}:{}\t10.{}.{}.{}/32\t{}\t{}\t{}\toff",
            p.key,
            (i / 250) % 250,
            i % 250 + 1,
            40_000 + i % 20_000,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            p.handshake,
            p.rx,
            p.tx
        );
    }
    text
}

/// A WireGuard server named `name` that no poll ever reaches.
pub async fn server(store: &dyn Store, name: &str) -> ServerId {
    server_at(store, name, "198.18.0.2", 22).await
}

/// A WireGuard server named `name` at `host`:`port`.
pub async fn server_at(store: &dyn Store, name: &str, host: &str, port: u16) -> ServerId {
    let server = NewServer {
        name: ServerName::parse(name).unwrap(),
        protocol: Protocol::Wireguard,
        host: HostAddress::parse(host).unwrap(),
        port,
        user: SshUser::parse("root").unwrap(),
        key: SshKeySource::File("/nonexistent".into()),
        interface: Some(InterfaceName::parse("wg0").unwrap()),
        command_prefix: CommandPrefix::empty(),
        openvpn: None,
        host_key: HostKeyPin { openssh: "ssh-ed25519 AAAA".into(), fingerprint: "SHA256:bench".into() },
        config_path: None,
        client_config_dir: None,
        client_defaults: Default::default(),
    };
    store.insert_server(&server, Utc::now()).await.unwrap()
}

/// The `p`th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A new database on the PostgreSQL server `TOLLGATE_TEST_POSTGRES_URL`
/// names (see `.ci/postgres.sh`), as a URL.
pub async fn postgres_database(bench: &str) -> String {
    use sqlx::ConnectOptions;
    let url = std::env::var("TOLLGATE_TEST_POSTGRES_URL").expect("--postgres needs TOLLGATE_TEST_POSTGRES_URL");
    let name = format!("tollgate_{bench}_{}", std::process::id());
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut admin = options.disable_statement_logging().connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
    tollgate::server::store::postgres::url_with_database(&url, &name)
}

pub const ADMIN: &str = "bench";
pub const PASSWORD: &str = "a bench password of some length";

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Adds the benchmark's admin to the store at `url`.
pub async fn add_admin(store: &dyn Store) {
    let hash = tollgate::server::auth::hash_password(PASSWORD).unwrap();
    store.create_admin(&tollgate::domain::Username::parse(ADMIN).unwrap(), &hash, Utc::now()).await.unwrap();
}

/// The panel running in this process on the database at `url`, on a
/// loopback port, and a client logged in to it.
pub struct Panel {
    pub base: String,
    pub http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Panel {
    pub async fn start(url: String) -> Panel {
        let config = tollgate::server::config::Config { database_url: url, ..Default::default() };
        tollgate::server::sealer::Sealer::create(&config.secrets_key_path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tollgate::server::startup::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let login = serde_json::json!({ "username": ADMIN, "password": PASSWORD });
        for _ in 0..50 {
            let sent = http.post(format!("{base}/api/auth/login")).json(&login).send().await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Panel { base, http, stop, task }
    }

    /// Shuts the panel down and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
