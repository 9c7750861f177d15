//! Two and three `tollgate serve` processes on one PostgreSQL database and
//! real hosts (wireguard-go and sshd in network namespaces): each server
//! is polled by one replica at a time; a killed replica's servers move to
//! another within two poll intervals; a paused replica applies nothing
//! stale; the totals equal the hosts' counters throughout. Host numbers
//! 51–52 are this file's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate::domain::ServerId;
use tollgate::server::store::AnyStore;

const INTERVAL: Duration = Duration::from_secs(3);

/// A `tollgate serve` process on `database_url`.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    fn start(database_url: &str, log: &std::path::Path) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("serve")
            .env_remove("TOLLGATE_CONFIG")
            .env("DATABASE_URL", database_url)
            .env("TOLLGATE_SECRETS_KEY_FILE", postgres_secrets_key())
            .env("TOLLGATE_SSH_KEY_DIR", testhost_dir())
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_POLL_INTERVAL", INTERVAL.as_secs().to_string())
            .env("TOLLGATE_SSH_CONNECT_TIMEOUT", "2")
            .env("TOLLGATE_SSH_COMMAND_TIMEOUT", "2")
            .env("TOLLGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Replica { child, base: format!("http://127.0.0.1:{port}") }
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {signal}");
    }

    async fn login(&self) -> reqwest::Client {
        let http = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(20)).build().unwrap();
        eventually(Duration::from_secs(30), "the replica answers", || async {
            let res = http
                .post(format!("{}/api/auth/login", self.base))
                .json(&serde_json::json!({ "username": ADMIN, "password": PASSWORD }))
                .send()
                .await
                .ok()?;
            res.status().is_success().then_some(())
        })
        .await;
        http
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live leases: server → (owner, fence).
async fn leases(store: &AnyStore) -> BTreeMap<i64, (String, i64)> {
    let now = chrono::Utc::now();
    let mut out = BTreeMap::new();
    for replica in store.cluster().await.unwrap() {
        for lease in replica.leases.iter().filter(|l| l.expires_at > now) {
            out.insert(lease.server_id.get(), (replica.id.clone(), lease.fence));
        }
    }
    out
}

/// Waits until every server's stored lifetime total equals its host's
/// counters (read after the last traffic, so they no longer move).
async fn totals_match(store: &AnyStore, servers: &[(i64, &TestHost)], what: &str) {
    for &(server, host) in servers {
        let key = host.get("TESTHOST_CLIENT_PUBLIC_KEY").to_owned();
        let on_host = host.wg_counters(&key);
        eventually(Duration::from_secs(30), what, || async {
            let clients = store.clients(ServerId::new(server), "").await.unwrap();
            let client = clients.iter().find(|c| c.identity == key)?;
            let stored = (client.total.rx, client.total.tx);
            (stored == on_host).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_fleet_take_over_a_killed_ones_hosts_and_count_every_byte_once() {
    if std::env::var_os("TOLLGATE_TEST_POSTGRES_URL").is_none() {
        assert!(std::env::var_os("TOLLGATE_REQUIRE_POSTGRES").is_none(), "PostgreSQL is required here");
        eprintln!("skipped: set TOLLGATE_TEST_POSTGRES_URL (see .ci/postgres.sh)");
        return;
    }
    let hosts = [TestHost::up(51), TestHost::up(52)];
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_postgres_database().await;
    let store = AnyStore::open(&database_url).await.unwrap();
    let hash = tollgate::server::auth::hash_password(PASSWORD).unwrap();
    store.create_admin(&tollgate::domain::Username::parse(ADMIN).unwrap(), &hash, chrono::Utc::now()).await.unwrap();

    let log = dir.path().join("replicas.log");
    let a = Replica::start(&database_url, &log);
    let http = a.login().await;
    let mut servers = Vec::new();
    for host in &hosts {
        let url = format!("{}/api/servers", a.base);
        let mut body = host.add_request(&format!("Host {}", host.n));
        body["config_path"] = serde_json::json!(host.get("TESTHOST_WG_CONF"));
        let res = http.post(url).json(&body).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::CREATED, "{}", res.text().await.unwrap());
        servers.push((res.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap(), host));
    }
    let b = Replica::start(&database_url, &log);
    let http_b = b.login().await;

    // Both replicas hold one server each: every server polled, none twice.
    let shared = eventually(Duration::from_secs(30), "one server per replica", || async {
        let held = leases(&store).await;
        let owners: BTreeSet<&String> = held.values().map(|(o, _)| o).collect();
        (held.len() == 2 && owners.len() == 2).then_some(held)
    })
    .await;
    let pid_of = |id: &str, cluster: &[tollgate::server::store::ReplicaRecord]| {
        let name = &cluster.iter().find(|r| r.id == id).unwrap().name;
        name.rsplit(':').next().unwrap().parse::<u32>().unwrap()
    };
    // Each replica's pages hear of every poll, its own and the other's.
    for (http, base) in [(&http, &a.base), (&http_b, &b.base)] {
        let mut live = LiveStream::open(http, base).await;
        for &(server, _) in &servers {
            live.until(2 * INTERVAL + Duration::from_secs(2), |name, data| {
                name == "server_polled" && data["server"] == server && data["ok"] == true
            })
            .await;
        }
    }
    // A change on a host asked of the replica that does not poll it is
    // carried out by the one that does.
    let cluster = store.cluster().await.unwrap();
    for &(server, host) in &servers {
        let owner_pid = pid_of(&shared[&server].0, &cluster);
        let (other, other_http) = if a.child.id() == owner_pid { (&b, &http_b) } else { (&a, &http) };
        let url = format!("{}/api/servers/{server}/sync-stats", other.base);
        let res = other_http.post(url).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK, "sync of {server}: {}", res.text().await.unwrap());
        let synced: serde_json::Value = res.json().await.unwrap();
        assert!(synced["synced"].as_u64().unwrap() >= 1, "{synced}");
        let url = format!("{}/api/servers/{server}/clients", other.base);
        let res = other_http.post(url).json(&serde_json::json!({ "name": "Forwarded" })).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::CREATED, "generate on {server}: {}", res.text().await.unwrap());
        let made: serde_json::Value = res.json().await.unwrap();
        assert!(made["config"].as_str().unwrap().contains("PrivateKey = "), "{made}");
        let key = made["client"]["public_key"].as_str().unwrap();
        assert!(host.wg_dump().contains(key), "the new peer is on host {}", host.n);
    }
    for host in &hosts {
        host.ping(20, 1000);
    }
    totals_match(&store, &servers, "totals after traffic, two replicas").await;

    // Kill the replica holding the first server (mid-poll or not: a poll
    // that did not commit is rolled back with its connection).
    let (first, _) = servers[0];
    let victim_id = shared[&first].0.clone();
    let victim_pid = pid_of(&victim_id, &store.cluster().await.unwrap());
    let (victim, survivor) = if a.child.id() == victim_pid { (a, b) } else { (b, a) };
    assert_eq!(victim.child.id(), victim_pid);
    let killed_at = Instant::now();
    let killed_wall = chrono::Utc::now();
    victim.signal("-KILL");
    drop(victim);
    let moved = eventually(Duration::from_secs(30), "the killed replica's server moves", || async {
        let held = leases(&store).await;
        let owners: BTreeSet<&String> = held.values().map(|(o, _)| o).collect();
        (held.len() == 2 && owners.len() == 1 && !owners.contains(&victim_id)).then_some(held)
    })
    .await;
    // Taken over means polled again: the first poll stored after the kill
    // (times are stored in whole seconds: up to one more).
    eventually(Duration::from_secs(30), "the moved server is polled again", || async {
        let server = store.server(ServerId::new(first), chrono::Utc::now(), "").await.unwrap().unwrap();
        server.last_success_at.filter(|t| t.timestamp() > killed_wall.timestamp()).map(|_| ())
    })
    .await;
    let took = killed_at.elapsed();
    assert!(took <= 2 * INTERVAL + Duration::from_secs(1), "polled again {took:?} after the kill");
    assert!(moved[&first].1 > shared[&first].1, "the new owner raised the fence");
    // The survivor's API shows who holds what (admins only).
    let http = survivor.login().await;
    let res = http.get(format!("{}/api/cluster", survivor.base)).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    let listed = body["replicas"].as_array().unwrap();
    let owner = &moved[&first].0;
    let holder = listed.iter().find(|r| r["id"] == owner.as_str()).unwrap();
    assert_eq!(holder["leases"].as_array().unwrap().len(), 2, "{body}");
    assert!(holder["heartbeat_at"].is_string(), "{body}");
    let anonymous = reqwest::Client::new().get(format!("{}/api/cluster", survivor.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    for host in &hosts {
        host.ping(20, 1000);
    }
    totals_match(&store, &servers, "totals after the kill").await;

    // A third replica takes a share; then it is paused past its lease: its
    // server moves back, and when it wakes it applies nothing stale.
    let c = Replica::start(&database_url, &log);
    c.login().await;
    let before_pause = eventually(Duration::from_secs(30), "the new replica takes a fair share", || async {
        let held = leases(&store).await;
        let owners: BTreeSet<&String> = held.values().map(|(o, _)| o).collect();
        (held.len() == 2 && owners.len() == 2).then_some(held)
    })
    .await;
    c.signal("-STOP");
    let c_server = *before_pause.iter().find(|(_, (owner, _))| *owner != moved[&first].0).unwrap().0;
    eventually(Duration::from_secs(30), "the paused replica's server moves", || async {
        let held = leases(&store).await;
        (held.get(&c_server)?.1 > before_pause[&c_server].1).then_some(())
    })
    .await;
    for host in &hosts {
        host.ping(20, 1000);
    }
    c.signal("-CONT");
    totals_match(&store, &servers, "totals after the pause").await;
    // Once awake it takes a share again, under a new fence.
    eventually(Duration::from_secs(30), "the woken replica takes a share again", || async {
        let held = leases(&store).await;
        let owners: BTreeSet<&String> = held.values().map(|(o, _)| o).collect();
        (owners.len() == 2).then_some(())
    })
    .await;
    for host in &hosts {
        host.ping(10, 1000);
    }
    totals_match(&store, &servers, "totals after the woken replica's polls").await;

    // A clean stop (SIGTERM) gives the leases up at once instead of
    // letting them lapse, and the replica's heartbeat row goes with it.
    let mut survivor = survivor;
    let survivor_pid = survivor.child.id();
    survivor.signal("-TERM");
    let status = survivor.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let stopped = chrono::Utc::now();
    let cluster = store.cluster().await.unwrap();
    assert!(cluster.iter().all(|r| !r.name.ends_with(&format!(":{survivor_pid}"))), "{cluster:?}");
    let left = leases(&store).await;
    assert!(left.values().all(|(owner, _)| cluster.iter().any(|r| &r.id == owner)), "{left:?}");
    eventually(Duration::from_secs(30), "the last replica holds every server", || async {
        let held = leases(&store).await;
        (held.len() == 2).then_some(())
    })
    .await;
    assert!(chrono::Utc::now() - stopped < chrono::TimeDelta::from_std(INTERVAL).unwrap(), "within one lease round");
    drop(c);
    store.close().await;
}
