//! Secrets at rest in the store (SQLite, and PostgreSQL when configured):
//! sealed on write, opened on read, refused without a key, and plaintext left
//! by older versions sealed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_support::{test_server, test_stores, TestStore};
use super::{OpenVpnAccess, StoreError};
use crate::domain::{Protocol, Secret, SshKeySource};
use crate::server::sealer::Sealer;
use chrono::Utc;
use std::sync::Arc;

const KEY_TEXT: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecret\n-----END OPENSSH PRIVATE KEY-----";

/// A new secrets key (in a directory that must outlive its use).
fn secrets_key() -> (tempfile::TempDir, Arc<Sealer>) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tollgate.key");
    Sealer::create(&key).unwrap();
    (dir, Arc::new(Sealer::load(&key).unwrap()))
}

/// The value stored in `column` of the one server.
async fn raw(store: &TestStore, column: &str) -> String {
    store.texts(&format!("SELECT {column} FROM servers"), &[]).await[0][0].clone().unwrap()
}

#[tokio::test]
async fn inline_ssh_keys_and_management_passwords_are_stored_sealed_and_read_back() {
    for mut store in test_stores("secrets_inline").await {
        let backend = store.backend();
        let (_dir, sealer) = secrets_key();
        let mut server = test_server("Sealed", Protocol::Openvpn);
        server.key = SshKeySource::Inline(Secret::new(KEY_TEXT.into()));
        server.openvpn = Some(OpenVpnAccess {
            status_path: None,
            management_port: Some(7505),
            management_password: Some(Secret::new("mgmt-pass".into())),
        });
        // No key: refused, and nothing written.
        let refused = store.insert_server(&server, Utc::now()).await.unwrap_err();
        assert!(matches!(refused, StoreError::Secrets(_)), "{backend}: {refused}");
        assert!(store.servers(Utc::now(), "").await.unwrap().is_empty(), "{backend}");

        store.sealed(sealer).await;
        let id = store.insert_server(&server, Utc::now()).await.unwrap();
        for column in ["ssh_private_key", "openvpn_management_password"] {
            let stored = raw(&store, column).await;
            assert!(
                stored.starts_with("v1:") && !stored.contains("secret") && !stored.contains("mgmt"),
                "{backend}: {stored}"
            );
        }
        let read = store.server(id, Utc::now(), "").await.unwrap().unwrap();
        assert!(matches!(&read.key, SshKeySource::Inline(k) if k.expose() == KEY_TEXT), "{backend}");
        let password = read.openvpn.unwrap().management_password.unwrap();
        assert_eq!(password.expose(), "mgmt-pass", "{backend}");
        store.finish().await;
    }
}

#[tokio::test]
async fn plaintext_secrets_from_before_sealing_are_sealed_once() {
    for mut store in test_stores("secrets_plaintext").await {
        let backend = store.backend();
        let (_dir, sealer) = secrets_key();
        store.sealed(sealer).await;
        let id = store.insert_server(&test_server("Old", Protocol::Wireguard), Utc::now()).await.unwrap();
        // KEY_TEXT holds no quote: it can be written as a literal.
        store.exec(&format!("UPDATE servers SET ssh_key_path = NULL, ssh_private_key = '{KEY_TEXT}'"), &[]).await;
        assert_eq!(store.store.seal_plaintext_secrets().await.unwrap(), 1, "{backend}");
        assert!(raw(&store, "ssh_private_key").await.starts_with("v1:"), "{backend}");
        assert_eq!(store.store.seal_plaintext_secrets().await.unwrap(), 0, "{backend}: sealed once");
        let read = store.server(id, Utc::now(), "").await.unwrap().unwrap();
        assert!(matches!(&read.key, SshKeySource::Inline(k) if k.expose() == KEY_TEXT), "{backend}");
        // The sealed value does not open for another row.
        let other = store.insert_server(&test_server("Other", Protocol::Wireguard), Utc::now()).await.unwrap();
        store
            .exec(
                "UPDATE servers SET ssh_key_path = NULL, \
                 ssh_private_key = (SELECT ssh_private_key FROM servers WHERE id = $1) WHERE id = $2",
                &[id.get(), other.get()],
            )
            .await;
        assert!(store.server(other, Utc::now(), "").await.is_err(), "{backend}");
        store.finish().await;
    }
}

#[tokio::test]
async fn a_generated_peers_config_is_stored_sealed_and_known_to_exist_without_opening_it() {
    use super::GeneratedClient;
    use crate::domain::{IpNetwork, PublicKey};
    for mut store in test_stores("secrets_generated").await {
        let backend = store.backend();
        let (_dir, sealer) = secrets_key();
        store.sealed(sealer).await;
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
        assert!(store.has_client_config(id).await.unwrap(), "{backend}");
        assert_eq!(store.client_config(id).await.unwrap().unwrap().expose(), config, "{backend}");
        let raw = store.texts("SELECT client_config_sealed FROM clients", &[]).await[0][0].clone().unwrap();
        assert!(raw.starts_with("v1:") && !raw.contains("PrivateKey"), "{backend}: {raw}");
        store.finish().await;
    }
}
