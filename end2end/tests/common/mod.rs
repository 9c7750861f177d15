//! Harness for tests against real hosts: test hosts from `end2end/testhost.sh`
//! (wireguard-go + sshd in network namespaces) and a panel on port 0.

#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate::server::config::Config;
use tollgate::server::store::AnyStore;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "a long test password";

/// Where `end2end/testhost.sh` keeps its hosts (`TOLLGATE_TESTHOST_DIR`).
pub fn testhost_dir() -> PathBuf {
    PathBuf::from(std::env::var("TOLLGATE_TESTHOST_DIR").unwrap_or_else(|_| "/tmp/tollgate-testhost".to_owned()))
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("end2end/testhost.sh")
}

/// A test host N: created on `up`, removed on drop.
pub struct TestHost {
    pub n: u8,
    pub env: HashMap<String, String>,
}

impl TestHost {
    pub fn up(n: u8) -> TestHost {
        let out = Command::new(script()).args(["up", &n.to_string()]).output().expect("run testhost.sh");
        assert!(out.status.success(), "testhost up {n}: {}", String::from_utf8_lossy(&out.stderr));
        let mut host = TestHost { n, env: HashMap::new() };
        host.reload_env();
        host
    }

    pub fn reload_env(&mut self) {
        let out = self.script(&["env"]);
        self.env = out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    }

    /// Runs a testhost.sh command for this host (`COMMAND N ARGS…`).
    fn run_script(&self, args: &[&str]) -> (Vec<String>, std::process::Output) {
        let mut all: Vec<String> = vec![args[0].to_owned(), self.n.to_string()];
        all.extend(args[1..].iter().map(|a| a.to_string()));
        let out = Command::new(script()).args(&all).output().expect("run testhost.sh");
        (all, out)
    }

    /// Runs a testhost.sh command for this host and returns its stdout.
    pub fn script(&self, args: &[&str]) -> String {
        let (all, out) = self.run_script(args);
        assert!(out.status.success(), "testhost {all:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a testhost.sh command for this host; false if it failed.
    pub fn try_script(&self, args: &[&str]) -> bool {
        self.run_script(args).1.status.success()
    }

    /// Runs a command inside the host's network namespace; panics on failure.
    pub fn in_host(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.get("TESTHOST_NETNS")])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_else(|| panic!("{key} missing from testhost env"))
    }

    /// Pings the host over the tunnel from its client.
    pub fn ping(&self, count: u32, size: u32) {
        self.script(&["ping", &count.to_string(), &size.to_string()]);
    }

    /// `(rx, tx)` of a peer as `wg show dump` reports it on the host right now.
    pub fn wg_counters(&self, public_key: &str) -> (u64, u64) {
        let text = self.in_host(&["wg", "show", self.get("TESTHOST_IFACE"), "dump"]);
        let line = text
            .lines()
            .skip(1)
            .find(|l| l.starts_with(public_key))
            .unwrap_or_else(|| panic!("peer {public_key} not on host"));
        let f: Vec<&str> = line.split('\t').collect();
        (f[5].parse().unwrap(), f[6].parse().unwrap())
    }

    /// The body for `POST /api/servers` that adds this host.
    /// `wg show <interface> dump` on the host.
    pub fn wg_dump(&self) -> String {
        self.in_host(&["wg", "show", self.get("TESTHOST_IFACE"), "dump"])
    }

    pub fn add_request(&self, name: &str) -> Value {
        json!({
            "name": name,
            "host": self.get("TESTHOST_ADDR"),
            "port": 22,
            "user": self.get("TESTHOST_SSH_USER"),
            "private_key_path": self.get("TESTHOST_SSH_KEY"),
            "interface": self.get("TESTHOST_IFACE"),
            "protocol": "wireguard",
        })
    }

    pub fn sshd_log(&self) -> String {
        let dir = PathBuf::from(self.get("TESTHOST_SSH_KEY")).parent().unwrap().to_path_buf();
        std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.n.to_string()]).output();
    }
}

/// Polling only by request, so stored values can be compared with the
/// host's counters read just before and just after one poll.
pub fn manual_polling(c: Config) -> Config {
    Config { poll_interval: Duration::from_secs(3600), max_backoff: Duration::from_secs(3600), ..c }
}

/// Adds a server through `POST /api/servers` and returns its id.
pub async fn add(panel: &TestPanel, http: &reqwest::Client, body: &Value) -> i64 {
    let (status, added) = post_json(http, &panel.url("/api/servers"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    added["id"].as_i64().unwrap()
}

/// A panel serving on 127.0.0.1:<random> with its own database.
pub struct TestPanel {
    pub addr: SocketAddr,
    pub base: String,
    pub database_url: String,
    pub config: Config,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Whether this run's panels use PostgreSQL (`TOLLGATE_TEST_BACKEND=postgres`,
/// with `TOLLGATE_TEST_POSTGRES_URL` naming the server) instead of SQLite.
pub fn on_postgres() -> bool {
    std::env::var("TOLLGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A new, empty database for one panel: a SQLite file in `dir`, or a new
/// database on the test PostgreSQL server.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("tollgate.db").display());
    }
    fresh_postgres_database().await
}

/// A new, empty database on the test PostgreSQL server
/// (`TOLLGATE_TEST_POSTGRES_URL`).
pub async fn fresh_postgres_database() -> String {
    use sqlx::ConnectOptions;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .expect("TOLLGATE_TEST_BACKEND=postgres needs TOLLGATE_TEST_POSTGRES_URL");
    let name = format!("tollgate_it_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut admin = options.connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
    tollgate::server::store::postgres::url_with_database(&url, &name)
}

/// On PostgreSQL there is no database file to keep the secrets key
/// beside: the panels and commands of one test process share this one.
pub fn postgres_secrets_key() -> PathBuf {
    static KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("tollgate-test-{}.key", std::process::id()));
        tollgate::server::sealer::Sealer::create(&path).unwrap();
        path
    })
    .clone()
}

pub fn test_config(database_url: &str) -> Config {
    Config {
        database_url: database_url.to_owned(),
        poll_interval: Duration::from_secs(1),
        max_backoff: Duration::from_secs(2),
        ssh_connect_timeout: Duration::from_secs(3),
        ssh_command_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        // The test hosts' panel keys live under testhost.sh's directory.
        ssh_key_dir: Some(testhost_dir()),
        ..Config::default()
    }
}

impl TestPanel {
    pub async fn start() -> TestPanel {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(adjust: impl FnOnce(Config) -> Config) -> TestPanel {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database(dir.path()).await;
        let store = AnyStore::open(&database_url).await.unwrap();
        let hash = tollgate::server::auth::hash_password(PASSWORD).unwrap();
        let admin = tollgate::domain::Username::parse(ADMIN).unwrap();
        store.create_admin(&admin, &hash, chrono::Utc::now()).await.unwrap();
        store.close().await;

        let mut config = adjust(test_config(&database_url));
        if config.secrets_key_file.is_none() && on_postgres() {
            config.secrets_key_file = Some(postgres_secrets_key());
        }
        tollgate::server::sealer::Sealer::create(&config.secrets_key_path()).unwrap();
        Self::launch(dir, database_url, config).await
    }

    async fn launch(dir: tempfile::TempDir, database_url: String, config: Config) -> TestPanel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tollgate::server::startup::run(listener, config.clone(), async move {
            let _ = stopped.await;
        }));
        TestPanel {
            addr,
            base: format!("http://{addr}"),
            database_url,
            config,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the panel and starts a new one on the same database and settings.
    pub async fn restart(mut self) -> TestPanel {
        self.shut_down().await;
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        Self::launch(dir, self.database_url.clone(), self.config.clone()).await
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the panel and returns how long shutdown took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        self.shut_down().await;
        started.elapsed()
    }

    pub fn client(&self) -> reqwest::Client {
        self.client_with(Duration::from_secs(30))
    }

    /// A client whose requests may take up to `timeout`.
    pub fn client_with(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .unwrap()
    }

    /// A client with a live session.
    pub async fn login(&self) -> reqwest::Client {
        self.login_with(Duration::from_secs(30)).await
    }

    /// A client with a live session whose requests may take up to `timeout`.
    pub async fn login_with(&self, timeout: Duration) -> reqwest::Client {
        let client = self.client_with(timeout);
        let res = client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({ "username": ADMIN, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "login: {}", res.text().await.unwrap());
        client
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let res = client.post(url).json(body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The client with `public_key` in `GET /api/servers/{id}/clients`.
pub async fn client_of(panel: &TestPanel, http: &reqwest::Client, server: i64, public_key: &str) -> Value {
    let (status, body) = get_json(http, &panel.url(&format!("/api/servers/{server}/clients"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["public_key"] == public_key)
        .cloned()
        .unwrap_or_else(|| panic!("client {public_key} not listed: {body}"))
}

/// `GET /api/servers/{id}`'s `server`.
pub async fn server_json(panel: &TestPanel, http: &reqwest::Client, id: i64) -> Value {
    let (status, body) = get_json(http, &panel.url(&format!("/api/servers/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["server"].clone()
}

/// `GET /api/clients/{id}`'s `client`.
pub async fn client_json(panel: &TestPanel, http: &reqwest::Client, id: i64) -> Value {
    let (status, body) = get_json(http, &panel.url(&format!("/api/clients/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["client"].clone()
}

/// Adds the host with its wg-quick file as the server's `config_path`.
pub async fn add_with_config_file(panel: &TestPanel, http: &reqwest::Client, host: &TestHost, name: &str) -> i64 {
    let mut body = host.add_request(name);
    body["config_path"] = json!(host.get("TESTHOST_WG_CONF"));
    add(panel, http, &body).await
}

/// Runs the `tollgate` binary on a database; returns whether it succeeded
/// and its standard output followed by its standard error.
pub fn tollgate(args: &[&str], database_url: &str, stdin: &str) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    if on_postgres() {
        command.env("TOLLGATE_SECRETS_KEY_FILE", postgres_secrets_key());
    }
    let mut child = command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("TOLLGATE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Adds the host's OpenVPN server (after `openvpn-up`): management port and client-config-dir.
pub async fn add_openvpn(panel: &TestPanel, http: &reqwest::Client, host: &TestHost, name: &str) -> i64 {
    let mut body = host.add_request(name);
    body["protocol"] = json!("openvpn");
    body["interface"] = serde_json::Value::Null;
    body["management_port"] = json!(host.get("TESTHOST_OPENVPN_MANAGEMENT_PORT").parse::<u16>().unwrap());
    body["client_config_dir"] = json!(host.get("TESTHOST_OPENVPN_CCD"));
    add(panel, http, &body).await
}

/// An open `GET /api/live` stream, read event by event.
pub struct LiveStream {
    response: reqwest::Response,
    buffer: String,
    wire: bool,
    /// The panel's build, from the stream's opening `hello`.
    pub build: Option<String>,
}

impl LiveStream {
    /// Opens the stream with `client`'s session; panics unless it is one.
    pub async fn open(client: &reqwest::Client, base: &str) -> LiveStream {
        Self::open_at(client, &format!("{base}/api/live"), false).await
    }

    /// The stream as the panel's pages open it (`?wire`: postcard data).
    pub async fn open_wire(client: &reqwest::Client, base: &str) -> LiveStream {
        Self::open_at(client, &format!("{base}/api/live?wire"), true).await
    }

    async fn open_at(client: &reqwest::Client, url: &str, wire: bool) -> LiveStream {
        let response = client.get(url).timeout(Duration::from_secs(3600)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        LiveStream { response, buffer: String::new(), wire, build: None }
    }

    /// `data:` as JSON; a `?wire` stream's postcard is decoded as the
    /// page does and shown in the JSON stream's shape.
    fn data(&self, data: &str) -> Value {
        use leptos::server::codee::Decoder;
        use tollgate::api::live::LiveEvent;
        if !self.wire {
            return serde_json::from_str(data).unwrap();
        }
        assert!(!data.starts_with('{'), "postcard, not JSON: {data}");
        let event = <tollgate::api::wire::Wire as Decoder<LiveEvent>>::decode(data).unwrap();
        serde_json::to_value(event).unwrap()
    }

    /// `hello`'s build: plain in a `?wire` stream, `{"build": …}` in JSON.
    fn hello(&self, data: &str) -> String {
        if self.wire {
            return data.to_owned();
        }
        let json: Value = serde_json::from_str(data).unwrap();
        json["build"].as_str().unwrap().to_owned()
    }

    /// The next event (`event:` name, `data:` JSON), or `None` if none
    /// came within `limit` or the stream ended. Keep-alive comments are
    /// skipped, and `hello` is kept in [`LiveStream::build`].
    pub async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_owned());
                match (field("event:"), field("data:")) {
                    (Some(name), Some(data)) if name == "hello" => self.build = Some(self.hello(&data)),
                    (Some(name), Some(data)) => return Some((name, self.data(&data))),
                    _ => {}
                }
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until one for which `wanted` holds, within `limit`.
    pub async fn until(&mut self, limit: Duration, wanted: impl Fn(&str, &Value) -> bool) -> (String, Value) {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((name, data)) if wanted(&name, &data) => return (name, data),
                Some(_) => {}
                None => panic!("no such live event within {limit:?}"),
            }
        }
    }
}
