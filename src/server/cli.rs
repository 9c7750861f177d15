//! The `tollgate` command line.

use crate::domain::ByteCount;
use crate::domain::Username;
use crate::server::auth::{check_password_strength, hash_password};
use crate::server::commands::{self, UsageFormat};
use crate::server::config::{Config, Layer};
use crate::server::peer_commands;
use crate::server::sealer::{SealError, Sealer};
use crate::server::startup;
use crate::server::store::{AnyStore, Store, UsageQuery};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "tollgate", version, about = "Control panel for fleets of WireGuard hosts")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct GlobalArgs {
    /// A TOML configuration file (keys as in Leptos.toml). Env: TOLLGATE_CONFIG.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides DATABASE_URL, e.g. sqlite:///var/lib/tollgate/tollgate.db
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the panel.
    Serve {
        /// Address to listen on (overrides LEPTOS_SITE_ADDR).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Seconds between polls of each host (overrides TOLLGATE_POLL_INTERVAL).
        #[arg(long)]
        poll_interval: Option<u64>,
    },
    /// Manage the panel's administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Create the database, or bring its schema up to date.
    Setup,
    /// Poll every server now and print a line per server.
    Collect,
    /// Print traffic per client: monthly rows, or lifetime totals.
    Usage {
        /// One month, YYYY-MM (default: every month).
        #[arg(long, value_parser = parse_month_arg)]
        month: Option<String>,
        /// One client: a WireGuard public key or an OpenVPN common name.
        #[arg(long)]
        peer: Option<String>,
        /// Lifetime totals instead of monthly rows.
        #[arg(long)]
        accumulated: bool,
        /// Only this server (by name).
        #[arg(long)]
        server: Option<String>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Compare the database with each WireGuard/AmneziaWG interface: peers only
    /// on the host, only in the database, or with other allowed IPs. Exits 3
    /// when differences are found and not fixed.
    Sync {
        /// Import peers found only on the host; re-add missing ones and reset
        /// allowed IPs on the host, as the database has them.
        #[arg(long)]
        fix: bool,
        /// Only this server (by name).
        #[arg(long)]
        server: Option<String>,
    },
    /// Generate a WireGuard/AmneziaWG peer on its host; its client config
    /// is printed on standard output (`> name.conf`).
    GeneratePeer {
        name: String,
        email: Option<String>,
        /// The server (by name), when there is more than one.
        #[arg(long)]
        server: Option<String>,
    },
    /// Change the name or email of a client (a public key, common name or #id).
    UpdatePeer {
        who: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// Delete every client of an email (or one key / #id): off its host, then the record.
    DeletePeer {
        who: String,
        /// Keep the clients' usage history.
        #[arg(long)]
        keep_usage_history: bool,
    },
    /// Take a client off its host and disable it (manual).
    Revoke { who: String },
    /// Put a disabled client back on its host.
    Restore { who: String },
    /// Set a client's traffic limit (`10GB`, `500M`, bytes, or `none`).
    Limit {
        who: String,
        limit: String,
        /// Reset it monthly on this day (1-31); otherwise it counts lifetime traffic.
        #[arg(long)]
        monthly: Option<u8>,
    },
    /// Set a client's expiry date (ISO 8601, or `never`).
    Expire { who: String, date: String },
    /// Make a new token for a server's hooks to push events with (shown once;
    /// the old one stops working).
    PushToken { server: String },
}

fn parse_month_arg(text: &str) -> Result<String, String> {
    crate::domain::accounting::parse_month(text).ok_or_else(|| format!("{text:?} is not a month like 2026-11"))
}

/// What a command asks the process to exit with, beyond success and failure.
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an administrator; the password is read from standard input.
    Create { username: String },
    /// Set a new password (read from standard input); ends the admin's sessions.
    Passwd { username: String },
    /// Delete an administrator and their sessions.
    Delete { username: String },
    /// List administrators.
    List,
}

/// Reads a password: prompted twice on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
        if first != again {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut input = String::new();
    std::io::stdin().take(64 * 1024).read_to_string(&mut input).context("reading the password from standard input")?;
    let line = input.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line)
}

/// Reads a new password, checks its strength and hashes it (off the async threads).
async fn new_password_hash() -> anyhow::Result<String> {
    let password = read_password()?;
    check_password_strength(&password)?;
    Ok(tokio::task::spawn_blocking(move || hash_password(&password)).await??)
}

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = AnyStore::open(&config.database_url).await.context("opening the database")?;
    let result = admin_with(store.as_store(), command).await;
    store.close().await;
    result
}

async fn admin_with(store: &dyn Store, command: AdminCommand) -> anyhow::Result<()> {
    let username = |raw: &str| Username::parse(raw).with_context(|| format!("invalid username {raw:?}"));
    match command {
        AdminCommand::Create { username: raw } => {
            let name = username(&raw)?;
            if store.admin_by_username(name.as_str()).await?.is_some() {
                bail!("an admin named {name} already exists");
            }
            let hash = new_password_hash().await?;
            store.create_admin(&name, &hash, chrono::Utc::now()).await?;
            println!("created admin {name}");
        }
        AdminCommand::Passwd { username: raw } => {
            let name = username(&raw)?;
            if store.admin_by_username(name.as_str()).await?.is_none() {
                bail!("there is no admin named {name}");
            }
            let hash = new_password_hash().await?;
            store.set_admin_password(&name, &hash).await?;
            println!("password changed for {name}; their sessions have ended");
        }
        AdminCommand::Delete { username: raw } => {
            let name = username(&raw)?;
            store.delete_admin(&name).await.with_context(|| format!("deleting {name}"))?;
            println!("deleted admin {name}");
        }
        AdminCommand::List => {
            for name in store.admins().await? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut flags = Layer { database_url: cli.global.database_url, ..Layer::default() };
    if let Command::Serve { listen, poll_interval } = &cli.command {
        flags.site_addr = *listen;
        flags.poll_interval = *poll_interval;
    }
    let config = Config::load(cli.global.config.as_deref(), flags)?;
    match cli.command {
        Command::Serve { .. } => {
            init_logging(&config.log);
            let listener = tokio::net::TcpListener::bind(config.site_addr)
                .await
                .with_context(|| format!("listening on {}", config.site_addr))?;
            startup::run(listener, config, shutdown_signal()).await
        }
        Command::Admin { command } => {
            init_logging("warn");
            admin(&config, command).await
        }
        other => {
            init_logging("warn");
            let key = config.secrets_key_path();
            if matches!(other, Command::Setup) && Sealer::create(&key)? {
                println!("secrets key created: {} (keep it with the database's backups)", key.display());
            }
            let store = AnyStore::open(&config.database_url).await.context("opening the database")?;
            // Commands that read no secrets work without the key file;
            // reading one then says the file is missing.
            let store = match Sealer::load(&key) {
                Ok(sealer) => store.with_sealer(Arc::new(sealer)),
                Err(SealError::MissingKey(_)) => store,
                Err(e) => return Err(e.into()),
            };
            if matches!(other, Command::Setup) {
                let sealed = store.seal_plaintext_secrets().await?;
                if sealed > 0 {
                    println!("{sealed} stored secret(s) sealed");
                }
            }
            let result = monitor(store.as_store(), &config, other).await;
            store.close().await;
            result
        }
    }
}

async fn monitor(store: &dyn Store, config: &Config, command: Command) -> anyhow::Result<()> {
    let settings = startup::poll_settings(config);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Setup => {
            writeln!(out, "database ready: {}", config.database_display())?;
            Ok(())
        }
        Command::Collect => commands::collect(store, &settings, &mut out).await,
        Command::Usage { month, peer, accumulated, server, json, csv } => {
            let server = match server {
                None => None,
                Some(name) => {
                    let now = chrono::Utc::now();
                    let month_now = crate::domain::accounting::month_key(now, &config.timezone);
                    let found = store.servers(now, &month_now).await?.into_iter().find(|s| s.name.as_str() == name);
                    Some(found.with_context(|| format!("there is no server named {name:?}"))?.id)
                }
            };
            if accumulated && month.is_some() {
                bail!("--accumulated shows lifetime totals; it does not take --month");
            }
            let query = UsageQuery { month, accumulated, identity: peer, server };
            let format = if json {
                UsageFormat::Json
            } else if csv {
                UsageFormat::Csv
            } else {
                UsageFormat::Table
            };
            commands::usage(store, &query, format, &mut out).await
        }
        Command::Sync { fix, server } => {
            let left = commands::sync(store, &settings, server.as_deref(), fix, &mut out).await?;
            if left > 0 {
                writeln!(out, "{left} difference(s); run `tollgate sync --fix` to repair them")?;
                return Err(ExitWith(3).into());
            }
            Ok(())
        }
        Command::GeneratePeer { name, email, server } => {
            let mut err = std::io::stderr().lock();
            peer_commands::generate_peer(
                store,
                &settings,
                &name,
                email.as_deref(),
                server.as_deref(),
                &mut out,
                &mut err,
            )
            .await
        }
        Command::UpdatePeer { who, name, email } => {
            peer_commands::update_peer(store, &settings, &who, name.as_deref(), email.as_deref(), &mut out).await
        }
        Command::DeletePeer { who, keep_usage_history } => {
            peer_commands::delete_peer(store, &settings, &who, keep_usage_history, &mut out).await
        }
        Command::Revoke { who } => peer_commands::set_access(store, &settings, &who, false, &mut out).await,
        Command::Restore { who } => peer_commands::set_access(store, &settings, &who, true, &mut out).await,
        Command::Limit { who, limit, monthly } => {
            let mut body = serde_json::Map::new();
            let bytes = match limit.as_str() {
                "none" => serde_json::Value::Null,
                text => json!(ByteCount::parse_size(text)?.get()),
            };
            body.insert("traffic_limit".into(), bytes);
            match monthly {
                Some(day) => {
                    body.insert("limit_period".into(), json!("monthly"));
                    body.insert("reset_day".into(), json!(day));
                }
                None => {
                    body.insert("limit_period".into(), json!("lifetime"));
                }
            }
            peer_commands::set_policy(store, &settings, &who, body, &mut out).await
        }
        Command::Expire { who, date } => {
            let mut body = serde_json::Map::new();
            let date = if date == "never" { serde_json::Value::Null } else { json!(date) };
            body.insert("expiry_date".into(), date);
            peer_commands::set_policy(store, &settings, &who, body, &mut out).await
        }
        Command::PushToken { server } => peer_commands::push_token(store, &server, &mut out).await,
        Command::Serve { .. } | Command::Admin { .. } => Ok(()),
    }
}

/// Entry point of the binary: parses arguments, runs, and reports errors.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ExitWith>().is_some() => {
            ExitCode::from(e.downcast_ref::<ExitWith>().map(|x| x.0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
