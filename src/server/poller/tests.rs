#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::api::live::LiveEvent;
use crate::domain::Protocol;
use crate::server::bus::LocalBus;
use crate::server::poll::poll_server;
use crate::server::store::sqlite::SqliteStore;
use crate::server::store::test_support::test_server;
use crate::server::store::ServerStore;
use crate::server::transport::fake::{Behaviour, FakeHost};
use crate::server::transport::TransportError;
use std::sync::atomic::{AtomicUsize, Ordering};

fn settings(deadline: Duration) -> PollSettings {
    PollSettings {
        interval: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
        ssh: SshTimeouts {
            connect: Duration::from_secs(3600),
            authenticate: Duration::from_secs(3600),
            command: Duration::from_secs(3600),
        },
        deadline,
        timezone: Tz::UTC,
    }
}

async fn store_with_server(dir: &tempfile::TempDir) -> (Arc<SqliteStore>, ServerRecord) {
    let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("p.db").display())).await.unwrap();
    let id = store.insert_server(&test_server("fake", Protocol::Wireguard), Utc::now()).await.unwrap();
    let record = store.server(id, Utc::now(), "2026-11").await.unwrap().unwrap();
    (Arc::new(store), record)
}

async fn last_error(store: &SqliteStore, id: ServerId) -> Option<String> {
    store.server(id, Utc::now(), "2026-11").await.unwrap().unwrap().last_error
}

#[test]
fn backoff_doubles_per_failure_up_to_the_cap() {
    let s = PollSettings {
        interval: Duration::from_secs(30),
        max_backoff: Duration::from_secs(300),
        ..settings(Duration::from_secs(60))
    };
    let secs: Vec<u64> = (0..7).map(|f| s.delay_after(f).as_secs()).collect();
    assert_eq!(secs, [30, 30, 60, 120, 240, 300, 300]);
    assert_eq!(s.delay_after(u32::MAX), Duration::from_secs(300));
}

#[test]
fn first_polls_spread_over_one_interval() {
    let interval = Duration::from_secs(30);
    let delays: Vec<Duration> = (0..200).map(|_| jitter(interval)).collect();
    assert!(delays.iter().all(|d| *d < interval));
    let distinct: std::collections::HashSet<_> = delays.iter().map(|d| d.as_millis() / 1000).collect();
    assert!(distinct.len() > 10, "200 servers land on {} distinct seconds", distinct.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_that_panics_is_restarted_and_the_panic_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (store, record) = store_with_server(&dir).await;
    let id = record.id;
    let calls = Arc::new(AtomicUsize::new(0));
    let made = calls.clone();
    let factory: TransportFactory = Arc::new(move |_| Box::new(FakeHost::new(Behaviour::Answer, made.clone())));
    let bus = Arc::new(LocalBus::default());
    let supervisor = Supervisor::with_factory(store.clone(), bus.clone(), settings(Duration::from_secs(5)), factory);
    let panicking = FakeHost::new(Behaviour::PanicFirst, calls.clone());
    supervisor.spawn(record, Box::new(panicking), FirstPoll::Jittered);

    let mut recorded = None;
    for _ in 0..100 {
        if let Some(e) = last_error(&store, id).await {
            recorded = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = recorded.expect("the panic is recorded on the server");
    assert!(recorded.contains("crashed") && recorded.contains("ref "), "{recorded}");
    assert!(!recorded.contains("fake host"), "the panic's text stays in the log: {recorded}");

    let outcome = supervisor.poll_now(id).await.expect("the restarted task answers");
    assert!(outcome.applied);
    assert!(calls.load(Ordering::SeqCst) >= 2);
    assert_eq!(last_error(&store, id).await, None, "a good poll clears the error");
    assert!(supervisor.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_poll_and_a_first_failure_are_announced_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let (store, answering) = store_with_server(&dir).await;
    let hung = store.insert_server(&test_server("hung", Protocol::Wireguard), Utc::now()).await.unwrap();
    let hung = store.server(hung, Utc::now(), "2026-11").await.unwrap().unwrap();
    let (good, bad) = (answering.id, hung.id);
    let calls = Arc::new(AtomicUsize::new(0));
    let made = calls.clone();
    let factory: TransportFactory = Arc::new(move |_| Box::new(FakeHost::new(Behaviour::Answer, made.clone())));
    let bus = Arc::new(LocalBus::default());
    let mut events = bus.subscribe();
    let supervisor =
        Supervisor::with_factory(store.clone(), bus.clone(), settings(Duration::from_millis(300)), factory);
    supervisor.spawn(answering, Box::new(FakeHost::new(Behaviour::Answer, calls.clone())), FirstPoll::Now);
    // Hangs until each poll's deadline: failures in a row, announced once.
    supervisor.spawn(hung, Box::new(FakeHost::new(Behaviour::Hang, calls.clone())), FirstPoll::Now);
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(event)) = tokio::time::timeout_at(until, events.recv()).await {
        seen.push(event);
    }
    assert!(supervisor.shutdown(Duration::from_secs(5)).await);
    let failed = LiveEvent::ServerPolled { server: bad, ok: false, sessions_opened: 0, sessions_closed: 0 };
    assert_eq!(seen.iter().filter(|e| **e == failed).count(), 1, "{seen:?}");
    let applied =
        seen.iter().filter(|e| matches!(e, LiveEvent::ServerPolled { server, ok: true, .. } if *server == good));
    assert!(applied.count() >= 2, "every applied poll is announced: {seen:?}");
    assert!(seen.iter().all(|e| e.server() == Some(good) || *e == failed), "{seen:?}");
}

#[tokio::test]
async fn a_host_that_never_answers_fails_the_poll_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut record) = store_with_server(&dir).await;
    // Every per-call timeout is an hour: only the poll's deadline can end it.
    let mut host = FakeHost::new(Behaviour::Hang, Arc::new(AtomicUsize::new(0)));
    let deadline = Duration::from_millis(300);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        poll_server(&mut host, &mut record, store.as_ref(), settings(deadline).limits(), None),
    )
    .await
    .expect("the poll ends by itself");
    assert_eq!(result.unwrap_err(), PollError::Deadline(deadline));
    let shown = last_error(&store, record.id).await.unwrap();
    assert!(shown.contains("deadline of 300ms"), "{shown}");
}

#[tokio::test]
async fn a_database_failure_is_shown_as_a_reference_and_host_failures_as_they_are() {
    let store_failure = PollError::internal("error returned from database: (code: 1) no such table: servers");
    let shown = store_failure.to_string();
    assert!(shown.starts_with("internal error (ref ") && !shown.contains("database"), "{shown}");
    assert!(!store_failure.is_host_side());
    let refused = PollError::from(TransportError::AuthRejected { user: "root".into() });
    assert_eq!(refused, PollError::Auth("the host refused public-key login as root".into()));
    assert!(refused.is_host_side());

    // Through a real poll: the store refuses, the admin sees a reference.
    let dir = tempfile::tempdir().unwrap();
    let (store, mut record) = store_with_server(&dir).await;
    record.id = ServerId::new(999);
    let mut host = FakeHost::new(Behaviour::Answer, Arc::new(AtomicUsize::new(0)));
    let e = poll_server(&mut host, &mut record, store.as_ref(), settings(Duration::from_secs(5)).limits(), None).await;
    assert!(matches!(e, Err(PollError::Internal(_))), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_short_by_a_lost_lease_is_interrupted_not_handed_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, record) = store_with_server(&dir).await;
    let id = record.id;
    let calls = Arc::new(AtomicUsize::new(0));
    let made = calls.clone();
    let factory: TransportFactory = Arc::new(move |_| Box::new(FakeHost::new(Behaviour::Hang, made.clone())));
    let bus = Arc::new(LocalBus::default());
    let supervisor = Supervisor::with_factory(store.clone(), bus, settings(Duration::from_secs(60)), factory);
    supervisor.spawn(record, Box::new(FakeHost::new(Behaviour::Hang, calls.clone())), FirstPoll::AfterInterval);
    // The poller takes the request and hangs on the host; then its lease goes.
    let asking = supervisor.clone();
    let asked = tokio::spawn(async move { asking.poll_now(id).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    supervisor.stop(id);
    let outcome = tokio::time::timeout(Duration::from_secs(5), asked).await.unwrap().unwrap();
    // Not `NotRunning`, which would send it to the next owner while the
    // change may have been made here.
    assert_eq!(outcome.unwrap_err(), WorkerError::Interrupted);
    assert_eq!(supervisor.poll_now(id).await.unwrap_err(), WorkerError::NotRunning, "now nothing runs it");
    assert!(supervisor.shutdown(Duration::from_secs(5)).await);
}
