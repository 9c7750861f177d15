//! Revoking and restoring a WireGuard/AmneziaWG peer on its host: the
//! running interface (`wg set`) and the wg-quick file, so that neither a
//! `wg-quick down/up` nor a reboot undoes it. The file is read, changed in
//! Rust ([`crate::domain::wg_config`]) and written back atomically (a new
//! file, then a rename); unchanged peers are never touched. Both operations
//! are idempotent: repeating one after a failure finishes it.

use crate::domain::wg_config::{forget_peer, peer_settings, restore_peer, revoke_peer, PeerSettings};
use crate::domain::{CommandPrefix, InterfaceName, IpNetwork, Protocol, PublicKey, RemoteCommand, RemotePath};
use crate::server::openvpn::{kill_session, KillTarget};
use crate::server::poll::PollError;
use crate::server::store::{ClientRecord, ServerRecord};
use crate::server::transport::{HostTransport, TransportError};

/// What to change about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    Revoke(PublicKey),
    /// `fallback` is used when the file holds no revoked section for the
    /// peer (it was removed by hand): the peer comes back without a
    /// preshared key.
    Restore {
        key: PublicKey,
        fallback: PeerSettings,
    },
    /// The peer leaves the interface and every trace of it the file (its
    /// live and its revoked section): a deleted peer.
    Forget(PublicKey),
    /// OpenVPN: `disable` in the common name's client-config-dir file (new
    /// connections refused) and every live session of it killed.
    Block(String),
    /// OpenVPN: the `disable` line removed again.
    Unblock(String),
}

/// Where a server's peers live.
pub struct PeerTarget {
    pub(crate) tool: &'static str,
    pub(crate) interface: InterfaceName,
    pub(crate) prefix: CommandPrefix,
    pub(crate) config: RemotePath,
}

impl PeerTarget {
    /// `None` for OpenVPN servers.
    pub fn of(record: &ServerRecord) -> Option<Self> {
        let tool = record.protocol.wg_tool()?;
        let interface = record.interface.clone()?;
        let config = match &record.config_path {
            Some(p) => p.clone(),
            None => default_config_path(record.protocol, &interface)?,
        };
        Some(Self { tool, interface, prefix: record.command_prefix.clone(), config })
    }
}

/// `/etc/wireguard/<interface>.conf`, or AmneziaWG's
/// `/etc/amnezia/amneziawg/<interface>.conf`.
pub fn default_config_path(protocol: Protocol, interface: &InterfaceName) -> Option<RemotePath> {
    let dir = match protocol {
        Protocol::Wireguard => "/etc/wireguard",
        Protocol::Amneziawg => "/etc/amnezia/amneziawg",
        Protocol::Openvpn => return None,
    };
    RemotePath::parse(&format!("{dir}/{interface}.conf")).ok()
}

/// What the change did on the host, for the event log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The wg-quick file was changed (false: it already was as wanted).
    pub file_changed: bool,
}

pub(crate) async fn write_file(
    transport: &mut dyn HostTransport,
    target: &PeerTarget,
    text: &str,
) -> Result<(), PollError> {
    transport.run_with_input(&RemoteCommand::write_new_file(&target.prefix, &target.config), text.as_bytes()).await?;
    transport.run(&RemoteCommand::replace_file(&target.prefix, &target.config)).await?;
    Ok(())
}

pub(crate) async fn read_file(transport: &mut dyn HostTransport, target: &PeerTarget) -> Result<String, PollError> {
    Ok(transport.run(&RemoteCommand::read_file(&target.prefix, &target.config)).await?.stdout)
}

pub(crate) fn config_error(target: &PeerTarget, e: impl std::fmt::Display) -> PollError {
    PollError::Parse(format!("{}: {e}", target.config))
}

/// Carries out `change` on the host.
pub async fn apply(
    transport: &mut dyn HostTransport,
    target: &PeerTarget,
    change: &PeerChange,
) -> Result<Applied, PollError> {
    let text = read_file(transport, target).await?;
    match change {
        PeerChange::Revoke(key) => {
            let (new, section) = revoke_peer(&text, key).map_err(|e| config_error(target, e))?;
            if section.is_some() {
                write_file(transport, target, &new).await?;
            }
            transport.run(&RemoteCommand::remove_peer(&target.prefix, target.tool, &target.interface, key)).await?;
            Ok(Applied { file_changed: section.is_some() })
        }
        PeerChange::Restore { key, fallback } => {
            let (new, section) = restore_peer(&text, key).map_err(|e| config_error(target, e))?;
            let settings = match &section {
                Some(s) => peer_settings(&s.text),
                None => fallback.clone(),
            };
            let allowed = settings
                .allowed_ips
                .iter()
                .map(|a| IpNetwork::parse(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| config_error(target, format!("the peer's AllowedIPs: {e}")))?;
            if section.is_some() {
                write_file(transport, target, &new).await?;
            }
            let psk = settings.preshared_key.as_deref();
            let command = RemoteCommand::restore_peer(
                &target.prefix,
                target.tool,
                &target.interface,
                key,
                &allowed,
                settings.persistent_keepalive,
                psk.is_some(),
            );
            match psk {
                Some(psk) => transport.run_with_input(&command, format!("{psk}\n").as_bytes()).await?,
                None => transport.run(&command).await?,
            };
            Ok(Applied { file_changed: section.is_some() })
        }
        PeerChange::Forget(key) => {
            let (new, removed) = forget_peer(&text, key).map_err(|e| config_error(target, e))?;
            if removed {
                write_file(transport, target, &new).await?;
            }
            transport.run(&RemoteCommand::remove_peer(&target.prefix, target.tool, &target.interface, key)).await?;
            Ok(Applied { file_changed: removed })
        }
        PeerChange::Block(_) | PeerChange::Unblock(_) => {
            Err(PollError::internal("an OpenVPN change for a WireGuard server"))
        }
    }
}

/// Revokes many peers at once: the file read, changed for all of them and
/// written once, and one `wg set` takes them all off the interface — the
/// same number of host round trips for one peer or a thousand.
pub async fn revoke_many(
    transport: &mut dyn HostTransport,
    target: &PeerTarget,
    keys: &[PublicKey],
) -> Result<Applied, PollError> {
    if keys.is_empty() {
        return Ok(Applied { file_changed: false });
    }
    let text = read_file(transport, target).await?;
    let mut new = text.clone();
    for key in keys {
        new = revoke_peer(&new, key).map_err(|e| config_error(target, e))?.0;
    }
    let file_changed = new != text;
    if file_changed {
        write_file(transport, target, &new).await?;
    }
    transport.run(&RemoteCommand::remove_peers(&target.prefix, target.tool, &target.interface, keys)).await?;
    Ok(Applied { file_changed })
}

/// Carries out an OpenVPN [`PeerChange::Block`] or [`PeerChange::Unblock`].
pub async fn apply_openvpn(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    change: &PeerChange,
    wait: std::time::Duration,
) -> Result<Applied, PollError> {
    let (cn, block) = match change {
        PeerChange::Block(cn) => (cn, true),
        PeerChange::Unblock(cn) => (cn, false),
        _ => return Err(PollError::internal("a WireGuard change for an OpenVPN server")),
    };
    let dir = record.client_config_dir.as_ref().ok_or_else(|| {
        PollError::Command("this server has no client_config_dir set, so clients cannot be blocked".to_owned())
    })?;
    let name = crate::domain::ccd::ccd_file_name(cn).map_err(|e| PollError::Command(e.to_string()))?;
    let path = RemotePath::parse(&format!("{dir}/{name}")).map_err(|e| PollError::Command(e.to_string()))?;
    let prefix = &record.command_prefix;
    let text = match transport.run(&RemoteCommand::read_file(prefix, &path)).await {
        Ok(out) => out.stdout,
        // No file yet: the client has no directives.
        Err(TransportError::CommandFailed { stderr, .. }) if stderr.contains("No such file") => String::new(),
        Err(e) => return Err(e.into()),
    };
    let new = if block { crate::domain::ccd::disable(&text) } else { crate::domain::ccd::enable(&text) };
    let file_changed = new != text;
    if file_changed {
        transport.run_with_input(&RemoteCommand::write_new_file(prefix, &path), new.as_bytes()).await?;
        transport.run(&RemoteCommand::replace_file(prefix, &path)).await?;
    }
    if block {
        let access =
            record.openvpn.as_ref().ok_or_else(|| PollError::internal("an OpenVPN server without settings"))?;
        if access.management_port.is_some() {
            let target = KillTarget::CommonName(cn.clone());
            match kill_session(transport, access, &target, false, wait).await {
                Ok(_) => {}
                // No live session: nothing to end.
                Err(e) if e.contains("not found") => {}
                Err(e) => return Err(PollError::Command(e)),
            }
        }
    }
    Ok(Applied { file_changed })
}

/// The change that takes `client` off its host (`on` false) or puts it back:
/// a WireGuard peer revoked or restored (from its commented section, else
/// from its stored allowed IPs), an OpenVPN common name blocked or unblocked.
pub fn change_for(client: &ClientRecord, on: bool) -> Result<PeerChange, PollError> {
    if client.protocol == Protocol::Openvpn {
        let cn = client.identity.clone();
        return Ok(if on { PeerChange::Unblock(cn) } else { PeerChange::Block(cn) });
    }
    let key = PublicKey::parse(&client.identity).map_err(PollError::internal)?;
    if !on {
        return Ok(PeerChange::Revoke(key));
    }
    let fallback = PeerSettings {
        allowed_ips: client.desired_allowed_ips.clone().unwrap_or_else(|| client.allowed_ips.clone()),
        preshared_key: None,
        persistent_keepalive: None,
    };
    Ok(PeerChange::Restore { key, fallback })
}

/// The change that deletes `client` from its host: a WireGuard peer
/// forgotten, an OpenVPN common name blocked (its certificate still
/// works, so it must stay refused).
pub fn removal_for(client: &ClientRecord) -> Result<PeerChange, PollError> {
    if client.protocol == Protocol::Openvpn {
        return Ok(PeerChange::Block(client.identity.clone()));
    }
    Ok(PeerChange::Forget(PublicKey::parse(&client.identity).map_err(PollError::internal)?))
}

/// Carries out `change` on `record`'s host, whatever its protocol.
pub async fn apply_to(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    change: &PeerChange,
    wait: std::time::Duration,
) -> Result<Applied, PollError> {
    match (change, PeerTarget::of(record)) {
        (PeerChange::Block(_) | PeerChange::Unblock(_), _) => apply_openvpn(transport, record, change, wait).await,
        (_, Some(target)) => apply(transport, &target, change).await,
        (_, None) => Err(PollError::internal("a peer change for a server without peers")),
    }
}
