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

#[tokio::test]
async fn the_dashboard_counts_users_online_on_the_chosen_server_only() {
    use crate::domain::keys::PublicKey;
    use crate::server::store::test_support::{apply_dump, test_event, test_server};
    use crate::server::store::{ClientUpdate, UserFields};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let now = chrono::Utc::now();
    let month = month_key(now, &chrono_tz::UTC);
    let mut servers = Vec::new();
    for (name, seed) in [("a", 5u8), ("b", 6u8)] {
        let id = store.insert_server(&test_server(name, Protocol::Wireguard), now).await.unwrap();
        let own = PublicKey::from_bytes([1; 32]).to_base64();
        let peer = PublicKey::from_bytes([seed; 32]).to_base64();
        let fresh = now.timestamp() - 5;
        let text = format!(
            "{own}\t{own}\t51820\toff\n{peer}\t(none)\t198.18.4.1:4000\t10.6.0.{seed}/32\t{fresh}\t10\t20\toff\n"
        );
        apply_dump(&*store, id, &text, now, true).await;
        servers.push(id);
    }
    let event = test_event("test");
    let fields = UserFields { name: "Dana".into(), email: None, max_connections: 0 };
    let dana = store.create_user(&fields, &event).await.unwrap();
    let device = store.clients(servers[0], &month).await.unwrap().remove(0);
    let update = ClientUpdate { user_id: Some(dana), ..ClientUpdate::of(&device) };
    store.update_client(device.id, &update, &event).await.unwrap();

    let factory: TransportFactory = Arc::new(|_| panic!("the dashboard reaches no host"));
    let config = Config { database_url: url, ..Config::default() };
    let bus = Arc::new(crate::server::bus::LocalBus::default());
    let poller = Supervisor::with_factory(store.clone(), bus, poll_settings(&config), factory);
    let panel = Panel::new(store, config, poller);
    let online = |d: crate::api::DashboardView| (d.online_users, d.users, d.online);
    assert_eq!(online(panel.dashboard(None).await.unwrap()), (1, 1, 2), "both peers online, one owned");
    assert_eq!(online(panel.dashboard(Some(servers[0])).await.unwrap()), (1, 1, 1), "Dana's device is on a");
    assert_eq!(online(panel.dashboard(Some(servers[1])).await.unwrap()), (0, 1, 1), "b's peer has no user");
}

#[tokio::test]
async fn open_dashboards_share_one_answer_until_the_next_live_event() {
    use crate::server::bus::EventBus;
    use crate::server::store::test_support::test_event;
    use crate::server::store::UserFields;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let factory: TransportFactory = Arc::new(|_| panic!("the dashboard reaches no host"));
    let config = Config { database_url: url, ..Config::default() };
    let bus = Arc::new(crate::server::bus::LocalBus::default());
    let poller = Supervisor::with_factory(store.clone(), bus.clone(), poll_settings(&config), factory);
    let panel = Panel::new(store.clone(), config, poller);
    assert_eq!(panel.dashboard(None).await.unwrap().users, 0);

    // A change that announced nothing is not seen by the shared answer...
    let fields = UserFields { name: "Eve".into(), email: None, max_connections: 0 };
    let eve = store.create_user(&fields, &test_event("test")).await.unwrap();
    assert_eq!(panel.dashboard(None).await.unwrap().users, 0, "no event since: the shared answer");
    // ...and is once an event says something changed, as every change
    // made through the panel does.
    bus.publish(LiveEvent::UserChanged { user: eve });
    assert_eq!(panel.dashboard(None).await.unwrap().users, 1);
}
