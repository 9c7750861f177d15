#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::server::bus::LocalBus;
use crate::server::poller::PollSettings;
use crate::server::store::test_support::sqlite_store;
use crate::server::transport::ssh::SshTimeouts;

fn sealer(dir: &tempfile::TempDir, name: &str) -> Arc<Sealer> {
    let path = dir.path().join(name);
    Sealer::create(&path).unwrap();
    Arc::new(Sealer::load(&path).unwrap())
}

fn settings() -> PollSettings {
    let s = Duration::from_secs(5);
    PollSettings {
        interval: s,
        max_backoff: s,
        ssh: SshTimeouts { connect: s, authenticate: s, command: s },
        deadline: s,
        timezone: chrono_tz::Tz::UTC,
    }
}

fn call_for(sealer: &Sealer, to: &str, at_ms: i64, id: &str) -> String {
    let envelope = Envelope { id: id.into(), to: to.into(), at_ms, server: ServerId::new(1), call: HostCall::PollNow };
    sealer.seal(CALL_AAD, &serde_json::to_string(&envelope).unwrap()).unwrap()
}

#[tokio::test]
async fn only_a_fresh_call_sealed_for_this_replica_is_carried_out_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = sealer(&dir, "shared.key");
    let store = sqlite_store().await;
    let shared = store.store.shared();
    let poller = Supervisor::new(shared.clone(), Arc::new(LocalBus::default()), settings());
    let here = Forwarder::new(shared, key.clone(), "replica-b", Duration::from_secs(5));
    let open = CancellationToken::new();
    let now = Utc::now().timestamp_millis();

    // A good call: carried out (no poller runs for server 1 here, which is
    // the reply), and the reply opens only for that call's id.
    let call = call_for(&key, "replica-b", now, "c1");
    let reply = here.serve(&poller, &call, &open).await.unwrap();
    assert!(key.open(&reply_aad("c2"), &reply).is_err(), "a reply answers only its own call");
    let opened = key.open(&reply_aad("c1"), &reply).unwrap();
    let result: Result<HostReply, WorkerError> = serde_json::from_str(opened.expose()).unwrap();
    assert_eq!(result, Err(WorkerError::NotRunning));

    assert_eq!(here.serve(&poller, &call, &open).await, Err(Refusal::Replayed), "the same call again");
    let old = now - i64::try_from(MAX_AGE.as_millis()).unwrap() - 1000;
    assert_eq!(here.serve(&poller, &call_for(&key, "replica-b", old, "c3"), &open).await, Err(Refusal::Replayed));
    assert_eq!(here.serve(&poller, &call_for(&key, "replica-a", now, "c4"), &open).await, Err(Refusal::NotForMe));
    let other_key = sealer(&dir, "other.key");
    let forged = call_for(&other_key, "replica-b", now, "c5");
    assert_eq!(here.serve(&poller, &forged, &open).await, Err(Refusal::Unauthentic));
    assert_eq!(here.serve(&poller, "v1:garbage", &open).await, Err(Refusal::Unauthentic));
    // A value sealed at rest is not a call, even with the same key.
    let at_rest = key.seal("servers.ssh_private_key:1", "{}").unwrap();
    assert_eq!(here.serve(&poller, &at_rest, &open).await, Err(Refusal::Unauthentic));
    store.finish().await;
}

#[tokio::test]
async fn a_server_no_other_replica_holds_is_not_forwarded() {
    use crate::domain::Protocol;
    use crate::server::store::test_support::test_server;
    use crate::server::store::Replica;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store().await;
    let shared = store.store.shared();
    let here = Forwarder::new(shared, sealer(&dir, "k"), "replica-a", Duration::from_secs(5));
    let server = store.insert_server(&test_server("s", Protocol::Wireguard), Utc::now()).await.unwrap();
    // No lease at all.
    assert_eq!(here.ask(server, HostCall::PollNow).await, Err(WorkerError::NotRunning));
    // Its own lease (its poller not started yet): not sent to itself.
    let me = Replica { id: "replica-a".into(), name: "a".into(), address: Some("http://127.0.0.1:9".into()) };
    assert_eq!(store.lease_round(&me, Utc::now(), Duration::from_secs(30)).await.unwrap().held.len(), 1);
    assert_eq!(here.ask(server, HostCall::PollNow).await, Err(WorkerError::NotRunning));
    store.finish().await;
}
