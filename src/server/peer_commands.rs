//! The peer commands of the CLI (seed 003): `generate-peer`, `update-peer`,
//! `delete-peer`, `revoke`, `restore`, `limit`, `expire`. Each works on the
//! database and reaches the host itself over SSH, exactly as the panel's
//! server task does, and prints what it changed on which host. (Run them on
//! the panel's machine; the panel's own task applies anything left pending.)

use crate::domain::client_change::{parse_change, ClientPolicy};
use crate::domain::policy::DisableReason;
use crate::domain::{Protocol, UserId};
use crate::server::enforce::restore_refusal;
use crate::server::generate::{generate, PeerRequest};
use crate::server::peers::{apply_to, removal_for};
use crate::server::poller::{transport_for, PollSettings};
use crate::server::reconcile::{can_block, change_access};
use crate::server::store::{ClientRecord, ClientUpdate, NewEvent, ServerRecord, Store};
use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::{Map, Value};
use std::io::Write;

/// The actor of the CLI's events.
const ACTOR: &str = "cli";

/// The clients a command names: a public key or common name (on any
/// server), a client id (`#12`), or for `delete-peer` an email.
async fn clients_named(store: &dyn Store, settings: &PollSettings, who: &str) -> anyhow::Result<Vec<ClientRecord>> {
    let now = Utc::now();
    let month = crate::domain::accounting::month_key(now, &settings.timezone);
    let mut found = Vec::new();
    for server in store.servers(now, &month).await.context("reading servers")? {
        for c in store.clients(server.id, &month).await.context("reading clients")? {
            let by_id = who.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) == Some(c.id.get());
            if by_id || c.identity == who || c.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(who)) {
                found.push(c);
            }
        }
    }
    if found.is_empty() {
        bail!("no client is {who:?} (a public key, common name, #id or email)");
    }
    Ok(found)
}

async fn server_of(store: &dyn Store, c: &ClientRecord) -> anyhow::Result<ServerRecord> {
    store.server(c.server_id, Utc::now(), "").await?.with_context(|| format!("client {} has no server", c.id))
}

fn event(c: &ClientRecord, action: &str, reason: Option<DisableReason>, figures: Option<String>) -> NewEvent {
    NewEvent { reason: reason.map(|r| r.as_str().to_owned()), figures, ..NewEvent::about(c, Utc::now(), ACTOR, action) }
}

/// `generate-peer NAME [EMAIL] [--server NAME]`: prints the client config
/// on standard output (redirect it to a file) and what was done on `err`.
pub async fn generate_peer(
    store: &dyn Store,
    settings: &PollSettings,
    name: &str,
    email: Option<&str>,
    server: Option<&str>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let mut body = Map::new();
    body.insert("name".into(), Value::String(name.to_owned()));
    if let Some(e) = email {
        body.insert("email".into(), Value::String(e.to_owned()));
    }
    let peer = crate::domain::client_config::parse_new_peer(&body)?;
    let now = Utc::now();
    let servers: Vec<ServerRecord> = store
        .servers(now, "")
        .await?
        .into_iter()
        .filter(|s| s.protocol != Protocol::Openvpn && server.is_none_or(|n| s.name.as_str() == n))
        .collect();
    let record = match servers.as_slice() {
        [one] => one,
        [] => bail!("no WireGuard or AmneziaWG server{}", server.map(|s| format!(" named {s:?}")).unwrap_or_default()),
        _ => bail!("there are several WireGuard/AmneziaWG servers; pick one with --server"),
    };
    let request =
        PeerRequest { name: peer.name, email: peer.email, user_id: peer.user_id.map(UserId::new), actor: ACTOR.into() };
    let mut transport = transport_for(record, settings.ssh);
    let made = generate(transport.as_mut(), record, store, &request, now).await?;
    write!(out, "{}", made.config)?;
    writeln!(
        err,
        "generated {name} on {} ({}): address {}, client #{}",
        record.name, record.host, made.config.address, made.client
    )?;
    Ok(())
}

/// `update-peer KEY [--name] [--email]`.
pub async fn update_peer(
    store: &dyn Store,
    settings: &PollSettings,
    who: &str,
    name: Option<&str>,
    email: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut body = Map::new();
    for (field, value) in [("name", name), ("email", email)] {
        if let Some(v) = value {
            body.insert(field.into(), Value::String(v.to_owned()));
        }
    }
    if body.is_empty() {
        bail!("give --name or --email");
    }
    let change = parse_change(&body, &settings.timezone)?;
    for c in clients_named(store, settings, who).await? {
        let update = ClientUpdate {
            name: change.name.clone().unwrap_or_else(|| c.name.clone()),
            email: change.email.clone().unwrap_or_else(|| c.email.clone()),
            ..ClientUpdate::of(&c)
        };
        store.update_client(c.id, &update, &event(&c, "update", None, None)).await?;
        let server = server_of(store, &c).await?;
        writeln!(out, "updated #{} on {}: name {:?}, email {:?}", c.id, server.name, update.name, update.email)?;
    }
    Ok(())
}

/// `revoke WHO` and `restore WHO`: the same as the panel's buttons.
pub async fn set_access(
    store: &dyn Store,
    settings: &PollSettings,
    who: &str,
    on: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for c in clients_named(store, settings, who).await? {
        let server = server_of(store, &c).await?;
        if !can_block(&server) {
            bail!("{} has no client_config_dir, so its clients cannot be refused", server.name);
        }
        if on {
            if let Err(refused) = restore_refusal(&c, Utc::now(), &settings.timezone) {
                bail!("#{} not restored: {refused}", c.id);
            }
        }
        let (action, reason) = if on { ("restore", None) } else { ("revoke", Some(DisableReason::Manual)) };
        let mut transport = transport_for(&server, settings.ssh);
        let e = event(&c, action, reason, None);
        match change_access(transport.as_mut(), &server, store, &c, reason, &e, settings.ssh.command).await {
            Ok(true) => writeln!(out, "{action}d #{} ({}) on {} ({})", c.id, c.label(), server.name, server.host)?,
            Ok(false) => writeln!(out, "#{} changed meanwhile; nothing done", c.id)?,
            Err(e) => writeln!(
                out,
                "{action} of #{} recorded; {} did not take it yet ({e}): the panel applies it when the host answers",
                c.id, server.name
            )?,
        }
    }
    Ok(())
}

/// `limit WHO BYTES|none [--monthly DAY]` and `expire WHO DATE|never`: a
/// policy change; the panel's next pass enforces it.
pub async fn set_policy(
    store: &dyn Store,
    settings: &PollSettings,
    who: &str,
    body: Map<String, Value>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let change = parse_change(&body, &settings.timezone)?;
    for c in clients_named(store, settings, who).await? {
        let policy: ClientPolicy = change.apply(&c.policy)?;
        let update = ClientUpdate { policy, ..ClientUpdate::of(&c) };
        let figures = serde_json::to_string(&body)?;
        store.update_client(c.id, &update, &event(&c, "update", None, Some(figures.clone()))).await?;
        let server = server_of(store, &c).await?;
        writeln!(out, "#{} ({}) on {}: {figures}; enforced by the next pass", c.id, c.label(), server.name)?;
    }
    Ok(())
}

/// `delete-peer WHO [--keep-usage-history]`: every client WHO names (all
/// peers of an email) leaves its host, then its record goes.
pub async fn delete_peer(
    store: &dyn Store,
    settings: &PollSettings,
    who: &str,
    keep_history: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for c in clients_named(store, settings, who).await? {
        let server = server_of(store, &c).await?;
        if !can_block(&server) {
            bail!("{} has no client_config_dir, so a deleted client could not be refused", server.name);
        }
        let mut transport = transport_for(&server, settings.ssh);
        apply_to(transport.as_mut(), &server, &removal_for(&c)?, settings.ssh.command)
            .await
            .with_context(|| format!("#{} on {}: nothing deleted", c.id, server.name))?;
        let figures = if keep_history { "usage history kept" } else { "usage history removed" };
        store.delete_client(c.id, keep_history, &event(&c, "delete", None, Some(figures.into()))).await?;
        writeln!(out, "deleted #{} ({}) from {} ({}); {figures}", c.id, c.label(), server.name, server.host)?;
    }
    Ok(())
}

/// `push-token SERVER`: prints a new push token for the server's hooks.
pub async fn push_token(store: &dyn Store, server: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let now = Utc::now();
    let servers = store.servers(now, "").await?;
    let record =
        servers.iter().find(|s| s.name.as_str() == server).with_context(|| format!("no server named {server:?}"))?;
    let token = crate::server::panel::issue_push_token(store, record.id, record.name.as_str(), ACTOR).await?;
    writeln!(out, "{token}")?;
    Ok(())
}
