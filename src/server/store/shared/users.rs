//! Users, their live devices and admins: turning rows into records and
//! sorting live devices, the same on every backend.

use crate::domain::{ClientId, ServerId, UserId, Username};
use crate::server::store::rows::{corrupt, instant, is_unique_violation, opt_instant, Columns};
use crate::server::store::state::ServerState;
use crate::server::store::{AdminRecord, LiveDevice, StoreError, UserRecord};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The live devices found so far, by user.
pub(crate) type LiveDevices = HashMap<UserId, Vec<LiveDevice>>;

/// WireGuard clients of users, by server: (user, client, the start of the
/// client's open session if it has one).
pub(crate) type WireguardClients = BTreeMap<i64, Vec<(UserId, i64, Option<i64>)>>;

/// The error of a user's insert or update: a unique violation can only be
/// a taken email (the one unique index on users besides the generated id),
/// a `Conflict`.
pub(crate) fn taken(e: sqlx::Error, email: &Option<String>) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a user with the email {} exists already", email.as_deref().unwrap_or("")))
    } else {
        e.into()
    }
}

/// An admin's name from the `username` column.
pub(crate) fn admin_name(row: &impl Columns) -> Result<Username, StoreError> {
    let name = row.text("username")?;
    Username::parse(&name).map_err(|e| corrupt("username", e))
}

/// An admin from a row of `id, username, password_hash`.
pub(crate) fn admin_from_row(row: &impl Columns) -> Result<AdminRecord, StoreError> {
    Ok(AdminRecord {
        id: UserId::new(row.int("id")?),
        username: admin_name(row)?,
        password_hash: row.text("password_hash")?,
    })
}

/// A user from a row of `id, name, email, max_connections, created_at` and
/// `clients`, the JSON array of the ids of the user's clients.
pub(crate) fn user_from_row(row: &impl Columns) -> Result<UserRecord, StoreError> {
    let clients = row.text("clients")?;
    let clients: Vec<i64> = serde_json::from_str(&clients).map_err(|e| corrupt("client ids", e))?;
    Ok(UserRecord {
        id: UserId::new(row.int("id")?),
        name: row.text("name")?,
        email: row.opt_text("email")?,
        max_connections: u32::try_from(row.int("max_connections")?).unwrap_or(0),
        created_at: instant(row.int("created_at")?)?,
        last_seen: opt_instant(row.opt_int("last_seen")?)?,
        clients: clients.into_iter().map(ClientId::new).collect(),
    })
}

/// Sorts the rows of the live-clients query (`user_id, client_id,
/// server_id, protocol, connected_at`, one per active client and open
/// session): OpenVPN clients with an open session are live and go into
/// `live`; WireGuard and AmneziaWG ones are returned by server, to be
/// checked against the server's live state ([`add_online`]).
pub(crate) fn split_live<R: Columns>(rows: &[R], live: &mut LiveDevices) -> Result<WireguardClients, StoreError> {
    let mut wireguard = WireguardClients::new();
    for r in rows {
        let user = UserId::new(r.int("user_id")?);
        let client = r.int("client_id")?;
        let server = r.int("server_id")?;
        let started = r.opt_int("connected_at")?;
        if r.text("protocol")? == "openvpn" {
            if let Some(started) = started {
                live.entry(user).or_default().push(LiveDevice {
                    client: ClientId::new(client),
                    server: ServerId::new(server),
                    started: instant(started)?,
                });
            }
        } else {
            wireguard.entry(server).or_default().push((user, client, started));
        }
    }
    Ok(wireguard)
}

/// Adds to `live` those of `clients` (of `server`, see [`split_live`]) that
/// `state` has on the host with a handshake after `since` (Unix seconds);
/// one without an open session counts as started at `since`.
pub(in crate::server::store) fn add_online(
    live: &mut LiveDevices,
    server: i64,
    clients: Vec<(UserId, i64, Option<i64>)>,
    state: &ServerState,
    since: i64,
) -> Result<(), StoreError> {
    let online: HashSet<i64> = state
        .clients
        .iter()
        .filter(|c| c.on_host && c.latest_handshake.is_some_and(|h| h > since))
        .map(|c| c.client_id)
        .collect();
    for (user, client, started) in clients {
        if online.contains(&client) {
            let started = instant(started.unwrap_or(since))?;
            let device = LiveDevice { client: ClientId::new(client), server: ServerId::new(server), started };
            live.entry(user).or_default().push(device);
        }
    }
    Ok(())
}

/// Oldest first across servers, as one query would have listed them.
pub(crate) fn sort_live(live: &mut LiveDevices) {
    for devices in live.values_mut() {
        devices.sort_by_key(|d| (d.started, d.client));
    }
}
