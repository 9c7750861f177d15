//! Layered configuration: built-in defaults, then a TOML file, then the
//! environment, then command-line flags; each layer overrides the one before.

use anyhow::{bail, Context};
use chrono_tz::Tz;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `sqlite://path/to/file.db` (created if missing), or a PostgreSQL
    /// `postgres://user:password@host/database` for several replicas.
    pub database_url: String,
    /// Where the panel listens.
    pub site_addr: SocketAddr,
    /// Where the built site (`pkg/`, assets) is; `None` keeps Leptos' own
    /// default or `LEPTOS_SITE_ROOT`.
    pub site_root: Option<PathBuf>,
    pub poll_interval: Duration,
    /// Longest wait between polls of a failing host.
    pub max_backoff: Duration,
    pub ssh_connect_timeout: Duration,
    /// Logging in once connected (key exchange done).
    pub ssh_auth_timeout: Duration,
    pub ssh_command_timeout: Duration,
    /// One whole poll: connect, log in, every command and management read.
    pub poll_deadline: Duration,
    /// Where SSH private key files given by path must live; `None`: `keys/`
    /// beside the database file.
    pub ssh_key_dir: Option<PathBuf>,
    /// The secrets key file (see `sealer`); `None`: `tollgate.key` beside
    /// the database file.
    pub secrets_key_file: Option<PathBuf>,
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (serve over HTTPS, or behind a proxy that does).
    pub secure_cookies: bool,
    /// How long background tasks get to stop on shutdown.
    pub shutdown_grace: Duration,
    /// A `tracing` filter, such as `info` or `tollgate=debug`.
    pub log: String,
    /// Reverse proxies whose `X-Forwarded-For` names the real client (for
    /// login throttling and logs). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// The time zone of calendar months and days in the usage ledgers.
    pub timezone: Tz,
    /// How long raw per-poll samples are kept before only their hourly and
    /// daily rollups remain.
    pub sample_retention: Duration,
    /// How long hourly buckets are kept (daily and monthly ones are kept).
    pub hourly_retention: Duration,
    /// How long ended VPN sessions are kept (open ones always are).
    pub session_history: Duration,
    /// Where the other replicas reach this one (`http://host:port`), to
    /// have it carry out changes on the hosts it polls. `None`: the
    /// listening address, or this machine's host name when listening on
    /// every interface.
    pub replica_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://tollgate.db".to_owned(),
            site_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            site_root: None,
            poll_interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
            ssh_connect_timeout: Duration::from_secs(10),
            ssh_auth_timeout: Duration::from_secs(10),
            ssh_command_timeout: Duration::from_secs(20),
            poll_deadline: Duration::from_secs(60),
            ssh_key_dir: None,
            secrets_key_file: None,
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            shutdown_grace: Duration::from_secs(10),
            log: "info".to_owned(),
            trusted_proxies: Vec::new(),
            timezone: Tz::UTC,
            sample_retention: Duration::from_secs(6 * 3600),
            hourly_retention: Duration::from_secs(35 * 86_400),
            session_history: Duration::from_secs(180 * 86_400),
            replica_url: None,
        }
    }
}

/// One layer: every key optional. The file uses these names; durations are
/// whole seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub database_url: Option<String>,
    pub site_addr: Option<SocketAddr>,
    pub site_root: Option<PathBuf>,
    pub poll_interval: Option<u64>,
    pub max_backoff: Option<u64>,
    pub ssh_connect_timeout: Option<u64>,
    pub ssh_auth_timeout: Option<u64>,
    pub ssh_command_timeout: Option<u64>,
    pub poll_deadline: Option<u64>,
    pub ssh_key_dir: Option<PathBuf>,
    pub secrets_key_file: Option<PathBuf>,
    pub session_ttl: Option<u64>,
    pub secure_cookies: Option<bool>,
    pub shutdown_grace: Option<u64>,
    pub log: Option<String>,
    pub trusted_proxies: Option<Vec<IpAddr>>,
    pub timezone: Option<String>,
    /// Hours.
    pub sample_retention_hours: Option<u64>,
    /// Days.
    pub hourly_retention_days: Option<u64>,
    /// Days.
    pub session_history_days: Option<u64>,
    pub replica_url: Option<String>,
}

/// Environment variables and the keys they set.
pub const ENV_KEYS: [(&str, &str); 21] = [
    ("DATABASE_URL", "database_url"),
    ("LEPTOS_SITE_ADDR", "site_addr"),
    ("LEPTOS_SITE_ROOT", "site_root"),
    ("TOLLGATE_POLL_INTERVAL", "poll_interval"),
    ("TOLLGATE_MAX_BACKOFF", "max_backoff"),
    ("TOLLGATE_SSH_CONNECT_TIMEOUT", "ssh_connect_timeout"),
    ("TOLLGATE_SSH_AUTH_TIMEOUT", "ssh_auth_timeout"),
    ("TOLLGATE_SSH_COMMAND_TIMEOUT", "ssh_command_timeout"),
    ("TOLLGATE_POLL_DEADLINE", "poll_deadline"),
    ("TOLLGATE_SSH_KEY_DIR", "ssh_key_dir"),
    ("TOLLGATE_SECRETS_KEY_FILE", "secrets_key_file"),
    ("TOLLGATE_SESSION_TTL", "session_ttl"),
    ("TOLLGATE_SECURE_COOKIES", "secure_cookies"),
    ("TOLLGATE_SHUTDOWN_GRACE", "shutdown_grace"),
    ("TOLLGATE_LOG", "log"),
    ("TOLLGATE_TRUSTED_PROXIES", "trusted_proxies"),
    ("TOLLGATE_TIMEZONE", "timezone"),
    ("TOLLGATE_SAMPLE_RETENTION_HOURS", "sample_retention_hours"),
    ("TOLLGATE_HOURLY_RETENTION_DAYS", "hourly_retention_days"),
    ("TOLLGATE_SESSION_HISTORY_DAYS", "session_history_days"),
    ("TOLLGATE_REPLICA_URL", "replica_url"),
];

impl Layer {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in the configuration file {}", path.display()))
    }

    /// Reads the variables in [`ENV_KEYS`] through `get` (the real
    /// environment in production, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut layer = Layer::default();
        for (var, key) in ENV_KEYS {
            let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            layer.set(key, value.trim()).with_context(|| format!("in the environment variable {var}"))?;
        }
        Ok(layer)
    }

    fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let secs = |v: &str| -> anyhow::Result<u64> {
            v.parse::<u64>().with_context(|| format!("{v:?} is not a whole number of seconds"))
        };
        match key {
            "database_url" => self.database_url = Some(value.to_owned()),
            "site_addr" => {
                self.site_addr = Some(value.parse().with_context(|| format!("{value:?} is not an address:port"))?)
            }
            "site_root" => self.site_root = Some(PathBuf::from(value)),
            "poll_interval" => self.poll_interval = Some(secs(value)?),
            "max_backoff" => self.max_backoff = Some(secs(value)?),
            "ssh_connect_timeout" => self.ssh_connect_timeout = Some(secs(value)?),
            "ssh_command_timeout" => self.ssh_command_timeout = Some(secs(value)?),
            "ssh_auth_timeout" => self.ssh_auth_timeout = Some(secs(value)?),
            "poll_deadline" => self.poll_deadline = Some(secs(value)?),
            "ssh_key_dir" => self.ssh_key_dir = Some(PathBuf::from(value)),
            "secrets_key_file" => self.secrets_key_file = Some(PathBuf::from(value)),
            "session_ttl" => self.session_ttl = Some(secs(value)?),
            "shutdown_grace" => self.shutdown_grace = Some(secs(value)?),
            "secure_cookies" => {
                self.secure_cookies = Some(match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => bail!("{value:?} is not true or false"),
                })
            }
            "log" => self.log = Some(value.to_owned()),
            "timezone" => self.timezone = Some(value.to_owned()),
            "sample_retention_hours" => self.sample_retention_hours = Some(secs(value)?),
            "hourly_retention_days" => self.hourly_retention_days = Some(secs(value)?),
            "session_history_days" => self.session_history_days = Some(secs(value)?),
            "replica_url" => self.replica_url = Some(value.to_owned()),
            "trusted_proxies" => {
                self.trusted_proxies = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| v.parse().with_context(|| format!("{v:?} is not an IP address")))
                        .collect::<anyhow::Result<_>>()?,
                )
            }
            _ => bail!("unknown setting {key}"),
        }
        Ok(())
    }
}

impl Config {
    /// Applies `layer` on top of `self`.
    pub fn apply(mut self, layer: Layer) -> anyhow::Result<Self> {
        let d = Duration::from_secs;
        if let Some(v) = layer.database_url {
            self.database_url = v;
        }
        if let Some(v) = layer.site_addr {
            self.site_addr = v;
        }
        if let Some(v) = layer.site_root {
            self.site_root = Some(v);
        }
        if let Some(v) = layer.poll_interval {
            self.poll_interval = d(v);
        }
        if let Some(v) = layer.max_backoff {
            self.max_backoff = d(v);
        }
        if let Some(v) = layer.ssh_connect_timeout {
            self.ssh_connect_timeout = d(v);
        }
        if let Some(v) = layer.ssh_command_timeout {
            self.ssh_command_timeout = d(v);
        }
        if let Some(v) = layer.ssh_auth_timeout {
            self.ssh_auth_timeout = d(v);
        }
        if let Some(v) = layer.poll_deadline {
            self.poll_deadline = d(v);
        }
        if let Some(v) = layer.ssh_key_dir {
            self.ssh_key_dir = Some(v);
        }
        if let Some(v) = layer.secrets_key_file {
            self.secrets_key_file = Some(v);
        }
        if let Some(v) = layer.session_ttl {
            self.session_ttl = d(v);
        }
        if let Some(v) = layer.secure_cookies {
            self.secure_cookies = v;
        }
        if let Some(v) = layer.shutdown_grace {
            self.shutdown_grace = d(v);
        }
        if let Some(v) = layer.log {
            self.log = v;
        }
        if let Some(v) = layer.trusted_proxies {
            self.trusted_proxies = v;
        }
        if let Some(v) = layer.timezone {
            self.timezone = v.parse().map_err(|_| anyhow::anyhow!("timezone {v:?} is not an IANA time zone"))?;
        }
        if let Some(v) = layer.sample_retention_hours {
            self.sample_retention = Duration::from_secs(v.saturating_mul(3600));
        }
        if let Some(v) = layer.hourly_retention_days {
            self.hourly_retention = Duration::from_secs(v.saturating_mul(86_400));
        }
        if let Some(v) = layer.session_history_days {
            self.session_history = Duration::from_secs(v.saturating_mul(86_400));
        }
        if let Some(v) = layer.replica_url {
            let url = v.trim().trim_end_matches('/');
            // Replicas talk plain HTTP: every call and reply is sealed.
            let rest = url.strip_prefix("http://");
            if rest.is_none_or(|r| r.is_empty() || r.contains(['/', '?', '#', ' '])) {
                bail!("replica_url {v:?} is not http://host:port");
            }
            self.replica_url = Some(url.to_owned());
        }
        Ok(self)
    }

    /// Rejects values the panel cannot run with.
    pub fn validate(self) -> anyhow::Result<Self> {
        if self.poll_interval < Duration::from_secs(1) {
            bail!("poll_interval must be at least 1 second");
        }
        if self.max_backoff < self.poll_interval {
            bail!("max_backoff must be at least poll_interval");
        }
        for (name, value) in [
            ("ssh_connect_timeout", self.ssh_connect_timeout),
            ("ssh_auth_timeout", self.ssh_auth_timeout),
            ("ssh_command_timeout", self.ssh_command_timeout),
            ("poll_deadline", self.poll_deadline),
            ("session_ttl", self.session_ttl),
        ] {
            if value.is_zero() {
                bail!("{name} must be at least 1 second");
            }
        }
        if self.sample_retention < Duration::from_secs(3600) {
            bail!("sample_retention_hours must be at least 1");
        }
        if self.hourly_retention < Duration::from_secs(2 * 86_400) {
            bail!("hourly_retention_days must be at least 2");
        }
        if self.session_history < Duration::from_secs(86_400) {
            bail!("session_history_days must be at least 1");
        }
        if self.is_postgres() {
            if self.secrets_key_file.is_none() {
                bail!(
                    "with a PostgreSQL DATABASE_URL, set TOLLGATE_SECRETS_KEY_FILE: every replica must \
                     read the same secrets key (there is no database file to keep it beside)"
                );
            }
        } else if !self.database_url.starts_with("sqlite:") {
            bail!("DATABASE_URL must start with sqlite://, postgres:// or postgresql://");
        }
        Ok(self)
    }

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        crate::server::store::postgres::is_url(&self.database_url)
    }

    /// The database URL with any password (`user:password@`, or a
    /// `password=` parameter) replaced by `***`, to show or log.
    pub fn database_display(&self) -> String {
        let url = self.without_user_password();
        let Some((base, query)) = url.split_once('?') else {
            return url;
        };
        let query: Vec<String> = query
            .split('&')
            .map(|p| if p.starts_with("password=") { "password=***".to_owned() } else { p.to_owned() })
            .collect();
        format!("{base}?{}", query.join("&"))
    }

    fn without_user_password(&self) -> String {
        let url = &self.database_url;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url.clone();
        };
        let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        let Some(at) = authority.rfind('@') else {
            return url.clone();
        };
        match authority[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &authority[..colon], &url[scheme_end + at..]),
            None => url.clone(),
        }
    }

    /// The directory SSH key files must be in: `ssh_key_dir`, or `keys/`
    /// beside the SQLite database file (on PostgreSQL, beside the secrets
    /// key file).
    pub fn key_dir(&self) -> PathBuf {
        match (&self.ssh_key_dir, &self.secrets_key_file) {
            (Some(dir), _) => dir.clone(),
            (None, Some(key)) if self.is_postgres() => {
                key.parent().map(|p| p.join("keys")).unwrap_or_else(|| PathBuf::from("keys"))
            }
            (None, _) => self.beside_database("keys"),
        }
    }

    /// Where the other replicas reach this one, listening on `bound`:
    /// `replica_url`; else the listening address; on every interface
    /// (`0.0.0.0`, `::`), this machine's host name at the listening port.
    pub fn replica_address(&self, bound: SocketAddr, host_name: &str) -> Option<String> {
        if let Some(url) = &self.replica_url {
            return Some(url.clone());
        }
        if !bound.ip().is_unspecified() {
            return Some(format!("http://{bound}"));
        }
        let host = host_name.trim();
        (!host.is_empty()).then(|| format!("http://{host}:{}", bound.port()))
    }

    /// The secrets key file: `secrets_key_file`, or `tollgate.key` beside
    /// the SQLite database file.
    pub fn secrets_key_path(&self) -> PathBuf {
        match &self.secrets_key_file {
            Some(file) => file.clone(),
            None => self.beside_database("tollgate.key"),
        }
    }

    fn beside_database(&self, name: &str) -> PathBuf {
        let file = self.database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let file = file.split('?').next().unwrap_or(file);
        Path::new(file).parent().map(|p| p.join(name)).unwrap_or_else(|| PathBuf::from(name))
    }

    /// Defaults, then the file (if any), then the real environment, then `flags`.
    pub fn load(file: Option<&Path>, flags: Layer) -> anyhow::Result<Self> {
        let mut config = Config::default();
        if let Some(path) = file {
            config = config.apply(Layer::from_file(path)?).with_context(|| format!("in {}", path.display()))?;
        }
        config = config.apply(Layer::from_env(|k| std::env::var(k).ok())?).context("in the environment")?;
        config.apply(flags)?.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn each_layer_overrides_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tollgate.toml");
        std::fs::write(&file, "poll_interval = 10\nlog = \"debug\"\nsite_addr = \"127.0.0.1:4000\"\n").unwrap();
        let env: HashMap<&str, &str> = [
            ("TOLLGATE_POLL_INTERVAL", "7"),
            ("DATABASE_URL", "sqlite://x.db"),
            ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1, ::1"),
            ("TOLLGATE_TIMEZONE", "Europe/Berlin"),
        ]
        .into();
        let flags = Layer { site_addr: Some("127.0.0.1:5000".parse().unwrap()), ..Layer::default() };

        let config = Config::default()
            .apply(Layer::from_file(&file).unwrap())
            .unwrap()
            .apply(Layer::from_env(|k| env.get(k).map(|v| v.to_string())).unwrap())
            .unwrap()
            .apply(flags)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(7), "env beats file");
        assert_eq!(config.log, "debug", "file beats default");
        assert_eq!(config.site_addr, "127.0.0.1:5000".parse().unwrap(), "flag beats file");
        assert_eq!(config.database_url, "sqlite://x.db");
        assert_eq!(config.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(config.trusted_proxies, ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(config.ssh_connect_timeout, Config::default().ssh_connect_timeout);
        assert_eq!(config.key_dir(), PathBuf::from("keys"), "keys/ beside a database in the working directory");
        let data = Config { database_url: "sqlite:///var/lib/tollgate/tollgate.db".into(), ..Config::default() };
        assert_eq!(data.key_dir(), PathBuf::from("/var/lib/tollgate/keys"));
    }

    #[test]
    fn bad_values_name_their_source() {
        let err = Layer::from_env(|k| (k == "TOLLGATE_POLL_INTERVAL").then(|| "soon".to_owned())).unwrap_err();
        assert!(format!("{err:#}").contains("TOLLGATE_POLL_INTERVAL"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "poll_intervall = 3\n").unwrap();
        let err = Layer::from_file(&file).unwrap_err();
        assert!(format!("{err:#}").contains("poll_intervall"), "{err:#}");
        let tz = Layer { timezone: Some("Mars/Olympus".into()), ..Layer::default() };
        assert!(Config::default().apply(tz).unwrap_err().to_string().contains("Mars/Olympus"));
        let zero = Config { poll_interval: Duration::ZERO, ..Config::default() };
        assert!(zero.validate().is_err());
        let mysql = Config { database_url: "mysql://x".into(), ..Config::default() };
        assert!(mysql.validate().unwrap_err().to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn a_postgresql_url_is_accepted_with_a_secrets_key_file_every_replica_shares() {
        let pg = Config { database_url: "postgres://tollgate@db/tollgate".into(), ..Config::default() };
        let err = pg.clone().validate().unwrap_err().to_string();
        assert!(err.contains("TOLLGATE_SECRETS_KEY_FILE"), "{err}");
        let key = PathBuf::from("/etc/tollgate/tollgate.key");
        let pg = Config { secrets_key_file: Some(key.clone()), ..pg }.validate().unwrap();
        assert_eq!(pg.secrets_key_path(), key);
        assert_eq!(pg.key_dir(), PathBuf::from("/etc/tollgate/keys"), "keys/ beside the secrets key");
        for url in ["postgresql://db/t", "postgres:///t?host=/run/postgresql"] {
            let c = Config { database_url: url.into(), secrets_key_file: Some(key.clone()), ..Config::default() };
            assert!(c.validate().is_ok(), "{url}");
        }
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let pg =
            Config { database_url: "postgres://tollgate:s3cret@db:5432/t?sslmode=require".into(), ..Config::default() };
        assert_eq!(pg.database_display(), "postgres://tollgate:***@db:5432/t?sslmode=require");
        let plain = Config { database_url: "postgresql://db/t".into(), ..Config::default() };
        assert_eq!(plain.database_display(), "postgresql://db/t");
        assert_eq!(Config::default().database_display(), "sqlite://tollgate.db");
        let param = Config { database_url: "postgres://db/t?user=u&password=s3cret&sslmode=require".into(), ..pg };
        assert_eq!(param.database_display(), "postgres://db/t?user=u&password=***&sslmode=require");
    }

    #[test]
    fn a_replica_is_reached_at_its_set_url_its_listening_address_or_its_host_name() {
        let layer = |v: &str| Layer { replica_url: Some(v.into()), ..Layer::default() };
        let set = Config::default().apply(layer("http://10.0.0.5:3000/")).unwrap();
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert_eq!(set.replica_address(any, "panel-1").as_deref(), Some("http://10.0.0.5:3000"));
        for bad in ["10.0.0.5:3000", "ftp://x", "https://x:3000", "http://", "http://x/path", "http://a b"] {
            assert!(Config::default().apply(layer(bad)).is_err(), "{bad}");
        }
        let c = Config::default();
        let bound: SocketAddr = "127.0.0.1:4100".parse().unwrap();
        assert_eq!(c.replica_address(bound, "panel-1").as_deref(), Some("http://127.0.0.1:4100"));
        let v6: SocketAddr = "[fd00::5]:3000".parse().unwrap();
        assert_eq!(c.replica_address(v6, "x").as_deref(), Some("http://[fd00::5]:3000"));
        assert_eq!(c.replica_address(any, "panel-1\n").as_deref(), Some("http://panel-1:3000"));
        assert_eq!(c.replica_address(any, ""), None);
    }
}
