//! Secrets at rest in the SQLite store: sealed on write, opened on read,
//! refused without a key, and plaintext left by older versions sealed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::sqlite::SqliteStore;
use super::test_support::test_server;
use super::{OpenVpnAccess, ServerStore, StoreError};
use crate::domain::{Protocol, Secret, SshKeySource};
use crate::server::sealer::Sealer;
use chrono::Utc;
use std::sync::Arc;

const KEY_TEXT: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecret\n-----END OPENSSH PRIVATE KEY-----";

async fn stores() -> (tempfile::TempDir, String, Arc<Sealer>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let key = dir.path().join("tollgate.key");
    Sealer::create(&key).unwrap();
    (dir, url, Arc::new(Sealer::load(&key).unwrap()))
}

async fn raw(store: &SqliteStore, column: &str) -> String {
    sqlx::query_scalar(&format!("SELECT {column} FROM servers")).fetch_one(&store.write).await.unwrap()
}

#[tokio::test]
async fn inline_ssh_keys_and_management_passwords_are_stored_sealed_and_read_back() {
    let (_dir, url, sealer) = stores().await;
    let plain = SqliteStore::open(&url).await.unwrap();
    let mut server = test_server("Sealed", Protocol::Openvpn);
    server.key = SshKeySource::Inline(Secret::new(KEY_TEXT.into()));
    server.openvpn = Some(OpenVpnAccess {
        status_path: None,
        management_port: Some(7505),
        management_password: Some(Secret::new("mgmt-pass".into())),
    });
    // No key: refused, and nothing written.
    let refused = plain.insert_server(&server, Utc::now()).await.unwrap_err();
    assert!(matches!(refused, StoreError::Secrets(_)), "{refused}");
    assert!(plain.servers(Utc::now(), "").await.unwrap().is_empty());

    let store = plain.with_sealer(sealer);
    let id = store.insert_server(&server, Utc::now()).await.unwrap();
    for column in ["ssh_private_key", "openvpn_management_password"] {
        let stored = raw(&store, column).await;
        assert!(stored.starts_with("v1:") && !stored.contains("secret") && !stored.contains("mgmt"), "{stored}");
    }
    let read = store.server(id, Utc::now(), "").await.unwrap().unwrap();
    assert!(matches!(&read.key, SshKeySource::Inline(k) if k.expose() == KEY_TEXT));
    let password = read.openvpn.unwrap().management_password.unwrap();
    assert_eq!(password.expose(), "mgmt-pass");
}

#[tokio::test]
async fn plaintext_secrets_from_before_sealing_are_sealed_once() {
    let (_dir, url, sealer) = stores().await;
    let store = SqliteStore::open(&url).await.unwrap().with_sealer(sealer);
    let id = store.insert_server(&test_server("Old", Protocol::Wireguard), Utc::now()).await.unwrap();
    sqlx::query("UPDATE servers SET ssh_key_path = NULL, ssh_private_key = ?")
        .bind(KEY_TEXT)
        .execute(&store.write)
        .await
        .unwrap();
    assert_eq!(store.seal_plaintext_secrets().await.unwrap(), 1);
    assert!(raw(&store, "ssh_private_key").await.starts_with("v1:"));
    assert_eq!(store.seal_plaintext_secrets().await.unwrap(), 0, "sealed once");
    let read = store.server(id, Utc::now(), "").await.unwrap().unwrap();
    assert!(matches!(&read.key, SshKeySource::Inline(k) if k.expose() == KEY_TEXT));
    // The sealed value does not open for another row.
    let other = store.insert_server(&test_server("Other", Protocol::Wireguard), Utc::now()).await.unwrap();
    sqlx::query("UPDATE servers SET ssh_key_path = NULL, ssh_private_key = (SELECT ssh_private_key FROM servers WHERE id = ?) WHERE id = ?")
        .bind(id.get())
        .bind(other.get())
        .execute(&store.write)
        .await
        .unwrap();
    assert!(store.server(other, Utc::now(), "").await.is_err());
}

#[tokio::test]
async fn a_generated_peers_config_is_stored_sealed_and_known_to_exist_without_opening_it() {
    use super::GeneratedClient;
    use crate::domain::{IpNetwork, PublicKey};
    let (_dir, url, sealer) = stores().await;
    let store = SqliteStore::open(&url).await.unwrap().with_sealer(sealer);
    let server = store.insert_server(&test_server("Gen", Protocol::Wireguard), Utc::now()).await.unwrap();
    let config = "[Interface]\nPrivateKey = mN+MMb4bZaw7knJG1TgvPY8hPe/31DEyt1dxg0yu/V0=\n";
    let peer = GeneratedClient {
        public_key: PublicKey::parse("EWrUZ3vCe5ZDq2/Cl0QPjRbzD+Id44mVPtx6kJGrrVU=").unwrap(),
        name: Some("Laptop".into()),
        email: None,
        user_id: None,
        address: IpNetwork::parse("10.8.0.4/32").unwrap(),
        config: Secret::new(config.into()),
        at: Utc::now(),
    };
    let event = crate::server::store::test_support::test_event("generate");
    let id = store.insert_generated_client(server, &peer, &event).await.unwrap();
    assert!(store.has_client_config(id).await.unwrap());
    assert_eq!(store.client_config(id).await.unwrap().unwrap().expose(), config);
    let raw: String =
        sqlx::query_scalar("SELECT client_config_sealed FROM clients").fetch_one(&store.write).await.unwrap();
    assert!(raw.starts_with("v1:") && !raw.contains("PrivateKey"), "{raw}");
}
