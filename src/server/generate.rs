//! Generating a WireGuard/AmneziaWG peer: keys made here (x25519, clamped
//! as `wg genkey` does, and a random preshared key), the next free address
//! of the interface's subnet, the peer added to the wg-quick file (one
//! atomic write) and to the running interface (the preshared key on
//! standard input), then stored with its keys sealed. It runs in the
//! server's own task, so concurrent requests get distinct addresses.
//!
//! The host is changed before the database: a panel stopped in between
//! leaves a peer on the host that the next poll finds (without its config).

use crate::domain::client_config::{
    interface_subnet, next_free_address, obfuscation_of, taken_addresses, ClientConfig, Endpoint,
};
use crate::domain::wg_config::{add_peer, interface_value, PeerEntry};
use crate::domain::{ClientId, IpNetwork, Protocol, PublicKey, RemoteCommand, Secret, UserId};
use crate::server::peers::{apply, config_error, read_file, write_file, PeerChange, PeerTarget};
use crate::server::poll::PollError;
use crate::server::store::{GeneratedClient, NewEvent, ServerRecord, Store};
use crate::server::transport::HostTransport;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What an admin asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerRequest {
    pub name: String,
    pub email: Option<String>,
    pub user_id: Option<UserId>,
    /// Who asked (an admin's name), for the event.
    pub actor: String,
}

/// The new peer and the config its device imports (holds its private key).
#[derive(Debug, Clone)]
pub struct Generated {
    pub client: ClientId,
    pub config: ClientConfig,
}

/// A private key as `wg genkey` makes one, and its public key.
fn new_keypair() -> (Secret, PublicKey) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    (Secret::new(STANDARD.encode(bytes)), public_key_of(bytes))
}

/// The public key of a private key, as `wg pubkey` computes it.
fn public_key_of(private: [u8; 32]) -> PublicKey {
    let secret = x25519_dalek::StaticSecret::from(private);
    PublicKey::from_bytes(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

fn new_preshared_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(STANDARD.encode(bytes))
}

/// The client config of a peer on `record`, from the host's wg-quick file
/// text and the interface's public key.
pub fn client_config(
    record: &ServerRecord,
    server_config: &str,
    server_key: PublicKey,
    address: IpNetwork,
    private_key: &Secret,
    preshared_key: Option<&Secret>,
) -> Result<ClientConfig, PollError> {
    let endpoint = match &record.client_defaults.endpoint {
        Some(e) => e.clone(),
        None => {
            let port = interface_value(server_config, "ListenPort").and_then(|p| p.trim().parse::<u16>().ok());
            let port = port.ok_or_else(|| {
                PollError::Command(
                    "the interface's file has no ListenPort; set the server's endpoint for client configs".into(),
                )
            })?;
            Endpoint::new(record.host.clone(), port)
        }
    };
    let obfuscation = match record.protocol {
        Protocol::Amneziawg => obfuscation_of(server_config),
        _ => Vec::new(),
    };
    Ok(ClientConfig {
        private_key: private_key.expose().to_owned(),
        address,
        dns: record.client_defaults.dns.clone(),
        obfuscation,
        server_public_key: server_key,
        preshared_key: preshared_key.map(|p| p.expose().to_owned()),
        endpoint,
        allowed_ips: vec!["0.0.0.0/0".into(), "::/0".into()],
        persistent_keepalive: Some(25),
    })
}

/// The running interface's public key.
pub async fn server_public_key(transport: &mut dyn HostTransport, target: &PeerTarget) -> Result<PublicKey, PollError> {
    let command = RemoteCommand::interface_public_key(&target.prefix, target.tool, &target.interface);
    let out = transport.run(&command).await?;
    PublicKey::parse(out.stdout.trim()).map_err(|e| PollError::Parse(format!("the interface's public key: {e}")))
}

/// Generates one peer on `record`'s host and stores it.
pub async fn generate(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    request: &PeerRequest,
    now: DateTime<Utc>,
) -> Result<Generated, PollError> {
    let target = PeerTarget::of(record)
        .ok_or_else(|| PollError::Command("peers can be generated on WireGuard and AmneziaWG servers only".into()))?;
    // The config must be storable before the host is changed.
    store.secrets_ready().map_err(|e| PollError::Command(e.to_string()))?;
    let text = read_file(transport, &target).await?;
    let subnet = interface_subnet(&text).ok_or_else(|| {
        config_error(&target, "the [Interface] has no IPv4 Address, so there is no subnet to give addresses from")
    })?;
    let server_key = server_public_key(transport, &target).await?;
    let mut taken: BTreeSet<IpAddr> = taken_addresses(&text);
    for c in store.clients(record.id, "").await.map_err(PollError::internal)? {
        let addresses = c.allowed_ips.iter().chain(c.desired_allowed_ips.iter().flatten());
        taken.extend(addresses.filter_map(|a| IpNetwork::parse(a).ok()).map(|n| n.addr()));
    }
    let address = next_free_address(&subnet, &taken)
        .ok_or_else(|| PollError::Command(format!("no free address is left in {subnet}")))?;
    let address = IpNetwork::parse(&format!("{address}/32")).map_err(PollError::internal)?;
    let (private_key, public_key) = new_keypair();
    let preshared_key = new_preshared_key();
    let config = client_config(record, &text, server_key, address, &private_key, Some(&preshared_key))?;

    let entry = PeerEntry {
        comment: Some(request.name.clone()),
        public_key,
        preshared_key: Some(preshared_key.expose().to_owned()),
        allowed_ips: vec![address.to_string()],
        persistent_keepalive: None,
    };
    let new_text = add_peer(&text, &entry.to_string()).map_err(|e| config_error(&target, e))?;
    write_file(transport, &target, &new_text).await?;
    let command = RemoteCommand::restore_peer(
        &target.prefix,
        target.tool,
        &target.interface,
        &public_key,
        &[address],
        None,
        true,
    );
    transport.run_with_input(&command, format!("{}\n", preshared_key.expose()).as_bytes()).await?;

    let event = NewEvent {
        at: now,
        actor: request.actor.clone(),
        action: "generate".to_owned(),
        reason: None,
        figures: Some(format!("address {address}")),
        client_id: None,
        user_id: request.user_id,
        server_id: Some(record.id),
        label: request.name.clone(),
    };
    let stored = GeneratedClient {
        public_key,
        name: Some(request.name.clone()),
        email: request.email.clone(),
        user_id: request.user_id,
        address,
        config: Secret::new(config.to_string()),
        at: now,
    };
    let client = match store.insert_generated_client(record.id, &stored, &event).await {
        Ok(id) => id,
        Err(e) => {
            // Not stored: take the peer off the host again rather than leave
            // one whose config is lost.
            if let Err(undo) = apply(transport, &target, &PeerChange::Forget(public_key)).await {
                tracing::error!(error = %undo, %public_key, "a generated peer could not be stored or removed again");
            }
            return Err(PollError::internal(e));
        }
    };
    tracing::info!(actor = %request.actor, client_id = %client, %address, action = "generate", "peer generated");
    Ok(Generated { client, config })
}

/// The config as an SVG QR code for a phone to scan. A config too long for
/// one code (many AmneziaWG settings) is refused with a clear message.
pub fn qr_svg(config: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(config.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| format!("the config does not fit in a QR code ({e}); download the file instead"))?;
    Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::decode_key;

    #[test]
    fn public_keys_match_what_wg_pubkey_prints() {
        // From `wg genkey | tee /dev/stderr | wg pubkey`.
        let private = decode_key("mN+MMb4bZaw7knJG1TgvPY8hPe/31DEyt1dxg0yu/V0=").unwrap();
        assert_eq!(public_key_of(private).to_string(), "EWrUZ3vCe5ZDq2/Cl0QPjRbzD+Id44mVPtx6kJGrrVU=");
    }

    #[test]
    fn new_private_keys_are_clamped_like_wg_genkey_and_differ() {
        let (a, a_public) = new_keypair();
        let (b, _) = new_keypair();
        assert_ne!(a.expose(), b.expose());
        let bytes = decode_key(a.expose()).unwrap();
        assert_eq!((bytes[0] & 7, bytes[31] & 128, bytes[31] & 64), (0, 0, 64));
        assert_eq!(public_key_of(bytes), a_public);
        assert_eq!(decode_key(new_preshared_key().expose()).unwrap().len(), 32);
    }

    #[test]
    fn a_config_renders_as_an_svg_qr_code() {
        let svg = qr_svg("[Interface]\nPrivateKey = mN+MMb4bZaw7knJG1TgvPY8hPe/31DEyt1dxg0yu/V0=\n").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("<path"), "{svg}");
        assert!(qr_svg(&"x".repeat(5000)).unwrap_err().contains("does not fit"));
    }
}
