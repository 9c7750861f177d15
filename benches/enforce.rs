//! Enforcement benchmark.
//!
//! ```sh
//! cargo bench --features ssr --bench enforce                  # a pass over 10,000 clients with nothing to do
//! sudo -E cargo bench --features ssr --bench enforce -- --host  # and 1,000 peers disabled on a real test host
//! ```
//!
//! *Idle pass*: 10,000 WireGuard clients on one server, each with a traffic
//! limit far from reached and an expiry years away, on an on-disk SQLite
//! file. 50 rounds as the panel runs them: a poll in which every client
//! moved bytes (through the real ingest), then the enforcement pass with
//! that poll's figures, which has nothing to warn about or change. Timed:
//! the pass, the poll, and both. For comparison, a full pass (nothing
//! remembered: it reads and judges every client). The pass must not reach
//! the host: the transport panics if it is used.
//!
//! *Mass disable* (`--host`, root): test host 45 from `end2end/testhost.sh`
//! gets 1,000 extra peers on its interface and in its wg-quick file; the
//! panel polls it over SSH, every one of them is given a limit of 0 bytes,
//! and one pass disables them all: one transaction, one file write, one
//! `wg set`. Timed from the pass's start to its end, and checked on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate::domain::accounting::month_key;
use tollgate::domain::wg_dump::{parse_dump, DumpFlavor};
use tollgate::domain::{CommandPrefix, HostAddress, InterfaceName, Protocol, RemoteCommand, RemotePath, ServerName};
use tollgate::domain::{HostKeyPin, ServerId, SshKeySource, SshUser};
use tollgate::server::enforce::{enforce, Pass, Watch};
use tollgate::server::poll::{poll_server, PollLimits};
use tollgate::server::poller::transport_for;
use tollgate::server::store::sqlite::SqliteStore;
use tollgate::server::store::{IngestStore, NewServer, ServerStore, WireguardPoll};
use tollgate::server::transport::ssh::SshTimeouts;
use tollgate::server::transport::{CommandOutput, HostTransport, TransportError, Tunnel};

const TZ: chrono_tz::Tz = chrono_tz::UTC;

/// A transport for passes that must not reach the host.
struct NoHost;

#[async_trait]
impl HostTransport for NoHost {
    async fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, TransportError> {
        panic!("an idle pass ran `{command}` on the host")
    }
    async fn run_with_input(&mut self, command: &RemoteCommand, _: &[u8]) -> Result<CommandOutput, TransportError> {
        panic!("an idle pass ran `{command}` on the host")
    }
    async fn open_tcp(&mut self, host: &str, port: u16) -> Result<Tunnel, TransportError> {
        panic!("an idle pass opened {host}:{port}")
    }
    fn host_key(&self) -> Option<&HostKeyPin> {
        None
    }
}

fn key(i: u32, salt: u8) -> String {
    let mut bytes = [salt; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    STANDARD.encode(bytes)
}

fn server(
    name: &str,
    host: &str,
    key: SshKeySource,
    pin: HostKeyPin,
    interface: &str,
    config: Option<&str>,
) -> NewServer {
    NewServer {
        name: ServerName::parse(name).unwrap(),
        protocol: Protocol::Wireguard,
        host: HostAddress::parse(host).unwrap(),
        port: 22,
        user: SshUser::parse("root").unwrap(),
        key,
        interface: Some(InterfaceName::parse(interface).unwrap()),
        command_prefix: CommandPrefix::empty(),
        openvpn: None,
        host_key: pin,
        config_path: config.map(|c| RemotePath::parse(c).unwrap()),
        client_config_dir: None,
        client_defaults: Default::default(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn idle_pass(clients: u32, passes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let pin = HostKeyPin { openssh: "ssh-ed25519 AAAA".into(), fingerprint: "SHA256:bench".into() };
    let id = store
        .insert_server(
            &server("bench", "198.18.0.2", SshKeySource::File("/nonexistent".into()), pin, "wg0", None),
            Utc::now(),
        )
        .await
        .unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    // The host's dump after `round` polls: every peer moved a few more bytes.
    let dump_text = |round: u64, at: chrono::DateTime<Utc>| {
        let mut text = String::new();
        let _ = writeln!(text, "{}\t{}\t51820\toff", key(0, 1), key(0, 2));
        for i in 0..clients {
            let _ = writeln!(
                text,
                "{}\t(none)\t198.18.1.1:{}\t10.{}.{}.{}/32\t{}\t{}\t{}\toff",
                key(i, 7),
                40_000 + i % 20_000,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255,
                at.timestamp() - 30,
                1_000_000 + u64::from(i) + round * 1_000,
                5_000_000 + round * 4_000
            );
        }
        text
    };
    let month = month_key(start, &TZ);
    let poll_at = |round: u64| start + chrono::TimeDelta::seconds(30 * round as i64);
    let dump = parse_dump(&dump_text(0, start), DumpFlavor::WireGuard).unwrap();
    let poll = WireguardPoll {
        protocol: Protocol::Wireguard,
        at: start,
        month: &month,
        dump: &dump,
        import: true,
        fence: None,
    };
    store.apply_wireguard_poll(id, &poll).await.unwrap();
    // Every client has a limit (1 TB, far from reached) and an expiry years away.
    let sql = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE clients SET traffic_limit = 1099511627776, expiry_date = 4102444800")
        .execute(&sql)
        .await
        .unwrap();
    let record = store.server(id, start, &month).await.unwrap().unwrap();
    let mut watch = Watch::new();
    let first = Pass { now: start, tz: TZ, wait: Duration::from_secs(5) };
    assert_eq!(enforce(&mut NoHost, &record, &store, &mut watch, None, first).await.unwrap(), 0);
    // Each round: a poll (new figures for every client), then the pass the
    // panel runs right after it. The dumps are made and parsed beforehand.
    let dumps: Vec<_> = (1..=passes as u64)
        .map(|round| parse_dump(&dump_text(round, poll_at(round)), DumpFlavor::WireGuard).unwrap())
        .collect();
    let (mut times, mut polls, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for (round, dump) in (1..).zip(&dumps) {
        let at = poll_at(round);
        let poll = WireguardPoll { protocol: Protocol::Wireguard, at, month: &month, dump, import: false, fence: None };
        let started = Instant::now();
        let outcome = store.apply_wireguard_poll(id, &poll).await.unwrap();
        let polled = started.elapsed();
        let pass = Pass { now: at, tz: TZ, wait: Duration::from_secs(5) };
        let changed = enforce(&mut NoHost, &record, &store, &mut watch, outcome.figures.as_ref(), pass).await.unwrap();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        times.push(ms(started.elapsed() - polled));
        polls.push(ms(polled));
        both.push(ms(started.elapsed()));
        assert_eq!(changed, 0);
    }
    assert_eq!(watch.full_passes(), 1, "every pass after a poll was quiet");
    for t in [&mut times, &mut polls, &mut both] {
        t.sort_by(f64::total_cmp);
    }
    let line = |what: &str, t: &[f64]| {
        println!(
            "{what}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            percentile(t, 50.0),
            percentile(t, 95.0),
            t[t.len() - 1]
        )
    };
    println!("{clients} clients, each with a limit and an expiry, {passes} polls:");
    line("  idle pass after a poll", &times);
    line("  the poll (ingest)", &polls);
    line("  poll + pass", &both);
    // For comparison: a full pass, which reads and judges every client (the
    // first pass, and one after any change to a client's policy or access).
    let mut full = Vec::with_capacity(passes);
    for round in 0..passes {
        watch.forget();
        let now = poll_at(passes as u64) + chrono::TimeDelta::seconds(round as i64);
        let started = Instant::now();
        let pass = Pass { now, tz: TZ, wait: Duration::from_secs(5) };
        assert_eq!(enforce(&mut NoHost, &record, &store, &mut watch, None, pass).await.unwrap(), 0);
        full.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    full.sort_by(f64::total_cmp);
    line("  full pass (nothing remembered)", &full);
}

fn testhost(args: &[&str]) -> String {
    let out = Command::new("bash").arg("end2end/testhost.sh").args(args).output().unwrap();
    assert!(out.status.success(), "testhost {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn mass_disable(n: u32) {
    let env: HashMap<String, String> = testhost(&["up", "45"])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("{k} in the test host's env"));
    let (iface, conf) = (get("TESTHOST_IFACE"), get("TESTHOST_WG_CONF"));
    // 1,000 more peers, on the interface (one `wg set`) and in the file.
    let keys: Vec<String> = (0..n).map(|i| key(i, 9)).collect();
    let mut args: Vec<String> =
        ["netns", "exec", &get("TESTHOST_NETNS"), "wg", "set", &iface].map(String::from).to_vec();
    let mut file = std::fs::read_to_string(&conf).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let ip = format!("10.200.{}.{}/32", i / 250, i % 250 + 1);
        args.extend(["peer".into(), k.clone(), "allowed-ips".into(), ip.clone()]);
        let _ = write!(file, "\n[Peer]\nPublicKey = {k}\nAllowedIPs = {ip}\n");
    }
    assert!(Command::new("ip").args(&args).status().unwrap().success());
    std::fs::write(&conf, file).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let ssh_key_path = std::path::PathBuf::from(get("TESTHOST_SSH_KEY"));
    let host_key = std::fs::read_to_string(ssh_key_path.with_file_name("ssh_host_ed25519_key.pub")).unwrap();
    let openssh = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let pin = HostKeyPin { openssh, fingerprint: get("TESTHOST_HOST_KEY_FINGERPRINT") };
    let ssh_key = SshKeySource::File(get("TESTHOST_SSH_KEY").into());
    let id: ServerId = store
        .insert_server(&server("host45", &get("TESTHOST_ADDR"), ssh_key, pin, &iface, Some(&conf)), Utc::now())
        .await
        .unwrap();
    let mut record = store.server(id, Utc::now(), "").await.unwrap().unwrap();
    let timeouts = SshTimeouts {
        connect: Duration::from_secs(5),
        authenticate: Duration::from_secs(5),
        command: Duration::from_secs(30),
    };
    let mut transport = transport_for(&record, timeouts);
    let limits = PollLimits { call: Duration::from_secs(30), deadline: Duration::from_secs(60), timezone: TZ };
    poll_server(transport.as_mut(), &mut record, &store, limits, None).await.unwrap();
    let sql = sqlx::SqlitePool::connect(&url).await.unwrap();
    let keys_json = serde_json::to_string(&keys).unwrap();
    sqlx::query("UPDATE clients SET traffic_limit = 0 WHERE identity IN (SELECT value FROM json_each(?))")
        .bind(&keys_json)
        .execute(&sql)
        .await
        .unwrap();

    let started = Instant::now();
    let pass = Pass { now: Utc::now(), tz: TZ, wait: Duration::from_secs(30) };
    let changed = enforce(transport.as_mut(), &record, &store, &mut Watch::new(), None, pass).await.unwrap();
    let took = started.elapsed();
    assert_eq!(changed, n as usize);
    let dump = Command::new("ip")
        .args(["netns", "exec", &get("TESTHOST_NETNS"), "wg", "show", &iface, "dump"])
        .output()
        .unwrap();
    let dump = String::from_utf8(dump.stdout).unwrap();
    assert!(keys.iter().all(|k| !dump.contains(k.as_str())), "every peer is off the interface");
    let file = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(file.matches("# tollgate: revoked peer ").count(), n as usize);
    println!("mass disable, {n} peers on a real host over SSH: one pass {:.0} ms", took.as_secs_f64() * 1000.0);
    testhost(&["down", "45"]);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    idle_pass(10_000, 50).await;
    if args.iter().any(|a| a == "--host") {
        mass_disable(1_000).await;
    }
}
