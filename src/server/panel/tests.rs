#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::server::poller::TransportFactory;
use crate::server::startup::poll_settings;
use crate::server::store::sqlite::SqliteStore;
use crate::server::transport::fake::{Behaviour, FakeHost, DUMP};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn adding_a_server_reads_it_through_the_factorys_transport_and_polls_on_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(keys.join("id_ed25519"))
        .status()
        .unwrap();
    assert!(made.success());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());

    let commands = Arc::new(AtomicUsize::new(0));
    let transports = Arc::new(AtomicUsize::new(0));
    let (c, t) = (commands.clone(), transports.clone());
    let factory: TransportFactory = Arc::new(move |target: SshTarget| {
        assert_eq!(target.host.as_str(), "198.18.3.2");
        t.fetch_add(1, Ordering::SeqCst);
        Box::new(FakeHost::new(Behaviour::Answer, c.clone()))
    });
    let config = Config { database_url: url, ssh_key_dir: Some(keys.clone()), ..Config::default() };
    let bus = Arc::new(crate::server::bus::LocalBus::default());
    let poller = Supervisor::with_factory(store.clone(), bus, poll_settings(&config), factory);
    let panel = Panel::new(store, config, poller.clone());

    let request = AddServerRequest {
        name: "fake".into(),
        host: "198.18.3.2".into(),
        user: "root".into(),
        private_key_path: Some(keys.join("id_ed25519").display().to_string()),
        interface: Some("wg0".into()),
        ..AddServerRequest::default()
    };
    let added = panel.add_server(request).await.unwrap();
    assert_eq!(added.host_key_fingerprint, "SHA256:fake", "the key the transport saw is pinned");
    let peers = parse_dump(DUMP, DumpFlavor::WireGuard).unwrap().peers.len();
    assert_eq!(panel.clients(added.id).await.unwrap().len(), peers, "what the host reported is stored");

    assert!(panel.sync_now(added.id).await.unwrap().applied);
    assert_eq!(commands.load(Ordering::SeqCst), 2, "one read to add the server, one poll");
    assert_eq!(transports.load(Ordering::SeqCst), 1, "the poller goes on with the transport that added it");
    assert!(poller.shutdown(Duration::from_secs(5)).await);
}
