//! A session that owns its key in a `SessionStore` (feature `store`), over loopback against
//! the fake: refused before any dial while another owner holds the key, closed when its lease
//! is lost or cannot be renewed, the lease given back when it ends otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_glue::{Error, LiveSession, SessionEvent};
use async_trait::async_trait;
use common::*;
use gemini_fake::Family;
use gemini_transport::wire::Modality;
use session_store::{
    Error as StoreError, Lease, ManualClock, MemoryStore, OwnerId, Saved, SessionKey, SessionStore,
    StoredSession,
};

fn key() -> SessionKey {
    SessionKey::new("call-1").unwrap()
}

fn owner(name: &str) -> OwnerId {
    OwnerId::new(name).unwrap()
}

/// Acquires `key` for `who`, polling every 10 ms for at most 5 s while it is held.
async fn acquire_eventually(store: &dyn SessionStore, who: &OwnerId) -> Lease {
    for _ in 0..500 {
        match store.acquire(&key(), who, Duration::from_secs(60)).await {
            Ok(lease) => return lease,
            Err(StoreError::Held { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(err) => panic!("{err:?}"),
        }
    }
    panic!("the session never gave its lease back");
}

#[tokio::test]
async fn a_held_key_is_refused_before_any_dial() {
    let server = server(Family::Gemini25, |c| c).await;
    let store = Arc::new(MemoryStore::new());
    let other = store
        .acquire(&key(), &owner("worker-b"), Duration::from_secs(60))
        .await
        .unwrap();
    let refused = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .store(store.clone(), key())
        .connect()
        .await;
    match refused {
        Err(Error::Store(StoreError::Held { owner, epoch, .. })) => {
            assert_eq!((owner, epoch), (other.owner().clone(), other.epoch()));
        }
        other => panic!("connected to a held session: {:?}", other.map(|_| ())),
    }
    assert!(server.connections().is_empty(), "dialed anyway");
    // The other owner's lease is untouched.
    store.renew(&other).await.unwrap();
}

#[tokio::test]
async fn a_lost_lease_closes_the_session_and_its_socket() {
    let server = server(Family::Gemini25, |c| c).await;
    let clock = ManualClock::new(1_000_000);
    let store = Arc::new(MemoryStore::new().with_clock(Arc::new(clock.clone())));
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .store(store.clone(), key())
            .lease_owner(owner("worker-a"))
            .lease_ttl(Duration::from_secs(1))
            .connect()
            .await
            .unwrap();
    barrier(&session, &mut events, "hello").await;
    // The store's clock jumps past the lease (a paused worker), and worker B takes over.
    clock.advance(Duration::from_secs(5));
    let taken = store
        .acquire(&key(), &owner("worker-b"), Duration::from_secs(60))
        .await
        .unwrap();
    closed_with_warning(&mut events, &server, "lease was lost").await;
    assert!(matches!(session.generate_reply(None), Err(Error::Closed)));
    // The session did not release B's lease on its way out.
    store.renew(&taken).await.unwrap();
    assert_eq!(server.connections().len(), 1, "it dialed again");
}

#[tokio::test]
async fn closing_the_session_gives_the_lease_back() {
    let server = server(Family::Gemini25, |c| c).await;
    let store = Arc::new(MemoryStore::new());
    let (session, _events) = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .store(store.clone(), key())
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        store
            .acquire(&key(), &owner("worker-b"), Duration::from_secs(60))
            .await,
        Err(StoreError::Held { .. })
    ));
    session.close().await.unwrap();
    let next = acquire_eventually(store.as_ref(), &owner("worker-b")).await;
    assert_eq!(next.epoch().0, 2);
}

#[tokio::test]
async fn a_failed_connect_gives_the_lease_back() {
    // A port nobody listens on: the first connect fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = agent_glue::Endpoint::api_key(agent_glue::SecretString::from("k"))
        .with_base_url(&format!("ws://127.0.0.1:{port}"))
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let failed = LiveSession::builder(
        endpoint,
        "models/gemini-2.5-flash-native-audio-preview-12-2025",
    )
    .modality(Modality::Text)
    .store(store.clone(), key())
    .connect()
    .await;
    assert!(failed.is_err());
    let next = store
        .acquire(&key(), &owner("worker-b"), Duration::from_secs(60))
        .await;
    assert!(next.is_ok(), "still held after a failed connect: {next:?}");
}

/// A store whose renewals fail as an unreachable store's do (transient errors), recording
/// when the session sent its acquire.
#[derive(Debug)]
struct Unreachable {
    inner: MemoryStore,
    acquired: Mutex<Option<Instant>>,
}

#[async_trait]
impl SessionStore for Unreachable {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        *self.acquired.lock().unwrap() = Some(Instant::now());
        self.inner.acquire(key, owner, ttl).await
    }

    async fn renew(&self, _lease: &Lease) -> Result<(), StoreError> {
        Err(StoreError::Timeout {
            limit: Duration::from_millis(1),
        })
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, StoreError> {
        self.inner.load(key).await
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), StoreError> {
        self.inner.save(lease, session).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }
}

#[tokio::test]
async fn an_unreachable_store_closes_the_socket_before_the_lease_runs_out() {
    let server = server(Family::Gemini25, |c| c).await;
    let store = Arc::new(Unreachable {
        inner: MemoryStore::new(),
        acquired: Mutex::new(None),
    });
    let ttl = Duration::from_secs(2);
    let (_session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .store(store.clone(), key())
            .lease_ttl(ttl)
            .connect()
            .await
            .unwrap();
    closed_with_warning(&mut events, &server, "could not be renewed in time").await;
    // The safety property itself: the socket was gone before the lease could pass on.
    let acquired = store.acquired.lock().unwrap().expect("acquired");
    let ended = server.connections()[0]
        .end
        .as_ref()
        .expect("ended")
        .1
        .into_std();
    assert!(
        ended < acquired + ttl,
        "closed {:?} after the acquire, past the {ttl:?} lease",
        ended - acquired
    );
}

/// The session closes, having warned with a text containing `warning`, and its socket is gone.
async fn closed_with_warning(
    events: &mut agent_glue::SessionEvents,
    server: &gemini_fake::FakeServer,
    warning: &str,
) {
    let seen = until(events, "the session to close", |event| {
        matches!(event, SessionEvent::Closed { .. })
    })
    .await;
    assert!(
        seen.iter().any(|event| matches!(
            event,
            SessionEvent::Warning(text) if text.contains(warning)
        )),
        "{seen:#?}"
    );
    server
        .wait_for(WAIT, "the socket to close", |view| {
            view.open_connections() == 0
        })
        .await
        .unwrap();
}

/// A store that takes and saves but never answers a release.
#[derive(Debug)]
struct NoRelease {
    inner: MemoryStore,
}

#[async_trait]
impl SessionStore for NoRelease {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        self.inner.acquire(key, owner, ttl).await
    }

    async fn renew(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.renew(lease).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, StoreError> {
        self.inner.load(key).await
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), StoreError> {
        self.inner.save(lease, session).await
    }

    async fn release(&self, _lease: &Lease) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

/// A release the store never answers is bounded by the lease's TTL (by then the lease has run
/// out anyway): `hand_off` returns the store's timeout instead of hanging.
#[tokio::test(start_paused = true)]
async fn a_release_that_never_answers_does_not_hang_hand_off() {
    let server = server(Family::Gemini25, |c| c).await;
    let store = Arc::new(NoRelease {
        inner: MemoryStore::new(),
    });
    let ttl = Duration::from_secs(2);
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .store(store, key())
            .lease_ttl(ttl)
            .connect()
            .await
            .unwrap();
    barrier(&session, &mut events, "hello").await;
    let handed = tokio::time::timeout(ttl * 10, session.hand_off())
        .await
        .expect("hand_off returned");
    assert!(
        matches!(handed, Err(Error::Store(StoreError::Timeout { .. }))),
        "{handed:?}"
    );
}
