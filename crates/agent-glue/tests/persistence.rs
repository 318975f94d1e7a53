//! Scenario S31 end to end (feature `store`): a session that saves its state in a
//! `SessionStore` as it runs, and a second session, built with the same store and key as if
//! in another process, that takes it over, over loopback against the fake.
//!
//! Session A has a conversation with a tool call and context appends, then hands the session
//! off (or is abandoned, its store gone with it, as when its process dies: then only the saves
//! made as it ran count). Session B, given the same context, resumes A's server session with
//! no seed, and the server ends up holding `L` exactly once; given another context, it starts
//! a fresh server session seeded once from its own context and reports what it did not carry.
//! The server's side is read through the fake's inspection API, never from the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use agent_glue::{ChatContext, DivergenceReason, Error, Item, LiveSession, Message, SessionEvent};
use async_trait::async_trait;
use common::*;
use gemini_fake::{FakeServer, Family};
use gemini_transport::wire::Modality;
use serde_json::json;
use session_store::{
    Error as StoreError, FileStore, Lease, ManualClock, MemoryStore, OwnerId, Saved, SessionKey,
    SessionStore, StoredSession,
};

const TTL: Duration = Duration::from_secs(2);

fn key() -> SessionKey {
    SessionKey::new("call-31").unwrap()
}

fn owner(name: &str) -> OwnerId {
    OwnerId::new(name).unwrap()
}

/// A store that dies with its process: once `kill`ed, every call fails as an unreachable
/// store's do, and nothing more is written. Counts the saves that reached the store.
#[derive(Debug)]
struct Mortal {
    inner: Arc<dyn SessionStore>,
    dead: AtomicBool,
    /// Saves fail (as an unreachable store's do) while the rest works.
    saves_fail: AtomicBool,
    saves: AtomicU32,
}

impl Mortal {
    fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            dead: AtomicBool::new(false),
            saves_fail: AtomicBool::new(false),
            saves: AtomicU32::new(0),
        })
    }

    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            Err(StoreError::Timeout {
                limit: Duration::from_millis(1),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for Mortal {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        self.alive()?;
        self.inner.acquire(key, owner, ttl).await
    }

    async fn renew(&self, lease: &Lease) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.renew(lease).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, StoreError> {
        self.alive()?;
        self.inner.load(key).await
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), StoreError> {
        self.alive()?;
        if self.saves_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Timeout {
                limit: Duration::from_millis(1),
            });
        }
        self.inner.save(lease, session).await?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.release(lease).await
    }
}

/// Which store the test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    File,
    #[cfg(feature = "store-redis")]
    Redis,
}

/// A store of `kind` (on a clock the test moves, except Redis's), and what it needs while it
/// lives: the file store's directory (removed on drop), the `redis-server` (killed on drop).
struct Backing {
    store: Arc<dyn SessionStore>,
    clock: Option<ManualClock>,
    dir: Option<PathBuf>,
    #[cfg(feature = "store-redis")]
    _redis: Option<redis_server::RedisServer>,
}

impl Backing {
    /// The store, or `None` when the test must be skipped (no `redis-server` outside CI).
    async fn new(kind: Kind) -> Option<Self> {
        let clock = ManualClock::new(1_000_000);
        Some(match kind {
            Kind::Memory => Self {
                store: Arc::new(MemoryStore::new().with_clock(Arc::new(clock.clone()))),
                clock: Some(clock),
                dir: None,
                #[cfg(feature = "store-redis")]
                _redis: None,
            },
            Kind::File => {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let dir = std::env::temp_dir().join(format!(
                    "agent-glue-persistence-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::SeqCst)
                ));
                let store = FileStore::new(&dir)
                    .unwrap()
                    .with_clock(Arc::new(clock.clone()));
                Self {
                    store: Arc::new(store),
                    clock: Some(clock),
                    dir: Some(dir),
                    #[cfg(feature = "store-redis")]
                    _redis: None,
                }
            }
            #[cfg(feature = "store-redis")]
            Kind::Redis => {
                let server = redis_server::RedisServer::start()?;
                let store = session_store::RedisStore::connect(&server.url())
                    .await
                    .unwrap();
                Self {
                    store: Arc::new(store),
                    clock: None,
                    dir: None,
                    _redis: Some(server),
                }
            }
        })
    }

    /// Lets a lease taken for [`TTL`] run out: the test's clock moves past it, or (Redis, on
    /// the server's own clock) the time passes.
    async fn expire(&self) {
        match &self.clock {
            Some(clock) => clock.advance(TTL + Duration::from_millis(1)),
            None => tokio::time::sleep(TTL + Duration::from_millis(50)).await,
        }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TEXT session with the weather tool, holding `key` in `store` as `who`.
async fn open(
    server: &FakeServer,
    store: Arc<dyn SessionStore>,
    who: &str,
    context: ChatContext,
) -> (LiveSession, agent_glue::SessionEvents) {
    LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .tools(vec![weather_tool()])
        .initial_context(context)
        .store(store, key())
        .lease_owner(owner(who))
        .lease_ttl(TTL)
        .connect()
        .await
        .expect("session connects")
}

/// Session A's conversation: a turn, a tool call answered, a note appended as history and a
/// turn after it, and (when `trailing`) a last note appended as the session is left, which
/// no handle can be shown to hold yet.
async fn converse(
    session: &LiveSession,
    events: &mut agent_glue::SessionEvents,
    server: &FakeServer,
    store: &dyn SessionStore,
    trailing: bool,
) {
    barrier(session, events, "hello").await;
    adopted(server, store).await;
    weather_round(session, events, json!({"temperature": 21})).await;
    adopted(server, store).await;
    session
        .append_chat_items(vec![Message::user("note-1", "the door is blue").into()])
        .unwrap();
    barrier(session, events, "and now?").await;
    adopted(server, store).await;
    if trailing {
        session
            .append_chat_items(vec![
                Message::user("note-2", "the key is under the mat").into(),
            ])
            .unwrap();
    }
    session.settled().await.unwrap();
}

/// Waits until the session has adopted (and saved) the handle the server issued last. A
/// handle that arrives after the application sent more content may not be adopted (its
/// coverage of that content is a guess); waiting for it keeps the test's steps apart.
async fn adopted(server: &FakeServer, store: &dyn SessionStore) {
    for _ in 0..500 {
        let issued = server
            .latest_session()
            .and_then(|s| s.handles_issued().last().map(|h| h.handle.clone()));
        let saved = store
            .load(&key())
            .await
            .unwrap()
            .and_then(|saved| saved.session.handle)
            .map(|h| h.token.expose().to_owned());
        if issued.is_some() && saved == issued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server's last handle was never saved");
}

/// Waits until `store` holds `expected` as the session's context with a handle.
async fn saved_as(store: &dyn SessionStore, expected: &ChatContext) -> StoredSession {
    for _ in 0..500 {
        if let Some(saved) = store.load(&key()).await.unwrap() {
            if &saved.session.desired == expected && saved.session.handle.is_some() {
                return saved.session;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store never held the session's current state");
}

/// Every event received so far.
fn drain(events: &mut agent_glue::SessionEvents) -> Vec<SessionEvent> {
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        seen.push(event);
    }
    seen
}

/// What the server holds once: its context equals `L`, and no entry twice.
fn l_equals_s_once(server: &FakeServer, session: &LiveSession) {
    let l = l_entries(&session.chat_ctx());
    let s = s_entries(server);
    assert_eq!(s, l, "the server's context is not L");
    let mut unique = s.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), s.len(), "an entry twice: {s:#?}");
}

/// Whether any frame of connection `k` carries `text`.
fn frames_with(server: &FakeServer, k: usize, kind: &str, text: &str) -> usize {
    server.connections()[k]
        .frames_of(kind)
        .filter(|f| f.raw.contains(text))
        .count()
}

/// No two sockets of one session at once: the fake refused no resume, saw no overlap.
fn one_socket_at_a_time(server: &FakeServer) {
    for id in server.sessions() {
        assert_eq!(
            server.session(id).unwrap().overlaps(),
            0,
            "overlapping sockets"
        );
    }
    for connection in server.connections() {
        assert_ne!(
            connection.closed_with().map(|(code, _)| code),
            Some(1011),
            "a connection was refused: {connection:?}"
        );
    }
}

/// How A leaves the session.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaving {
    /// `hand_off()`.
    HandOff,
    /// Its store dies with it before it is dropped: only the saves made as it ran count.
    Abandoned,
}

/// S31 with the same context: B resumes A's server session with no seed.
async fn restart_same_context(kind: Kind, leaving: Leaving) {
    let server = server(Family::Gemini25, |c| c).await;
    let Some(backing) = Backing::new(kind).await else {
        return;
    };
    let mortal = Mortal::new(Arc::clone(&backing.store));
    let (a, mut a_events) = open(&server, mortal.clone(), "worker-a", ChatContext::new()).await;
    converse(
        &a,
        &mut a_events,
        &server,
        backing.store.as_ref(),
        leaving == Leaving::HandOff,
    )
    .await;
    let l = a.chat_ctx();
    match leaving {
        Leaving::HandOff => {
            a.hand_off().await.expect("handed off");
            assert!(matches!(a.send_text("late"), Err(Error::Closed)));
            // The server saw A's socket end (its record closes when the close frame arrives,
            // before its reply lets anyone dial again).
            assert!(
                server.connections().iter().all(|c| !c.is_open()),
                "A's socket is still open after hand_off"
            );
            let saved = backing.store.load(&key()).await.unwrap().unwrap();
            assert_eq!(saved.session.desired, l, "the final state is not A's");
        }
        Leaving::Abandoned => {
            // Saved as it ran, without any final save.
            saved_as(backing.store.as_ref(), &l).await;
            let saves = mortal.saves.load(Ordering::SeqCst);
            assert!(saves >= 2, "{saves} saves while A ran");
            mortal.kill();
            drop(a);
            server
                .wait_for(WAIT, "A's socket to close", |view| {
                    view.open_connections() == 0
                })
                .await
                .unwrap();
            // A never gave its lease back: B must wait for it to run out.
            assert!(matches!(
                backing.store.acquire(&key(), &owner("someone"), TTL).await,
                Err(StoreError::Held { .. })
            ));
            backing.expire().await;
        }
    }
    let stored = backing.store.load(&key()).await.unwrap().unwrap().session;
    let token = stored
        .handle
        .as_ref()
        .expect("a handle saved")
        .token
        .expose()
        .to_owned();
    let connections = server.connections().len();

    let (b, mut b_events) = open(&server, Arc::clone(&backing.store), "worker-b", l.clone()).await;
    // B goes on where A stopped. The fake processes a connection's frames in order: once the
    // answer is back, every frame B sent before it is on record.
    barrier(&b, &mut b_events, "still there?").await;
    assert_eq!(
        server.sessions().len(),
        1,
        "B started another server session"
    );
    assert_eq!(server.connections().len(), connections + 1);
    assert_eq!(
        server.connections()[connections].resumed_from.as_deref(),
        Some(token.as_str()),
        "B did not resume from the saved handle"
    );
    // No seed: nothing the saved handle holds is sent again (the session's first turn and
    // the tool's result at least; what A sent after the handle is replayed, once).
    let held: Vec<String> = stored.held.iter().map(from_l).collect();
    for expected in [
        "user: hello",
        "user: the door is blue",
        "model: echo: and now?",
    ] {
        assert!(held.contains(&expected.to_owned()), "{expected}: {held:#?}");
    }
    assert!(held.iter().any(|e| e.starts_with("response ")), "{held:#?}");
    let sent: Vec<String> = server.connections()[connections]
        .frames
        .iter()
        .map(|f| f.raw.clone())
        .collect();
    for item in stored.held.iter() {
        let text = match item {
            Item::Message(m) => m.text(),
            Item::FunctionOutput(o) => o.call_id.clone(),
            Item::FunctionCall(c) => c.call_id.clone(),
        };
        assert!(
            !sent.iter().any(|raw| raw.contains(&format!("\"{text}\""))),
            "{text:?}, which the saved handle holds, was sent again: {sent:#?}"
        );
    }
    if leaving == Leaving::HandOff {
        // The note A appended last, which no handle holds, is sent once.
        assert_eq!(
            frames_with(
                &server,
                connections,
                "clientContent",
                "the key is under the mat"
            ),
            1
        );
    }
    let l_b = b.chat_ctx();
    assert!(l_b.starts_with(&l), "B's context does not continue A's");
    assert_eq!(l_b.len(), l.len() + 2);
    l_equals_s_once(&server, &b);
    let s = s_entries(&server);
    for once in [
        "user: hello",
        "user: the door is blue",
        "model: echo: still there?",
    ] {
        assert_eq!(s.iter().filter(|e| *e == once).count(), 1, "{once}: {s:#?}");
    }
    if leaving == Leaving::HandOff {
        assert_eq!(
            s.iter()
                .filter(|e| *e == "user: the key is under the mat")
                .count(),
            1,
            "{s:#?}"
        );
    }
    let seen = drain(&mut b_events);
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence { .. }
                | SessionEvent::Reconnecting { .. }
                | SessionEvent::InvariantBroken { .. }
        )),
        "{seen:#?}"
    );
    let tool_calls = server.latest_session().unwrap().tool_calls().len();
    assert_eq!(tool_calls, 1, "the tool ran again");
    one_socket_at_a_time(&server);
    b.close().await.unwrap();
}

/// S31 with another context: B starts fresh, seeds its own context once, and reports the
/// saved items it does not carry.
async fn restart_other_context(kind: Kind) {
    let server = server(Family::Gemini25, |c| c).await;
    let Some(backing) = Backing::new(kind).await else {
        return;
    };
    let (a, mut a_events) = open(
        &server,
        Arc::clone(&backing.store),
        "worker-a",
        ChatContext::new(),
    )
    .await;
    converse(&a, &mut a_events, &server, backing.store.as_ref(), false).await;
    let l = a.chat_ctx();
    a.hand_off().await.expect("handed off");
    // B's application kept only the conversation up to the tool's answer.
    let cut = l
        .iter()
        .position(|item| matches!(item, Item::Message(m) if m.text() == "the door is blue"))
        .unwrap();
    let given = l.prefix(cut);
    let left_out: Vec<_> = l.ids().skip(cut).cloned().collect();
    let connections = server.connections().len();

    let (b, mut b_events) = open(
        &server,
        Arc::clone(&backing.store),
        "worker-b",
        given.clone(),
    )
    .await;
    // The seed asks for no answer (L ends with one): a barrier shows it was processed.
    b.send_text("again").unwrap();
    let seen = until(&mut b_events, "the barrier's answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    assert_eq!(
        server.sessions().len(),
        2,
        "B did not start a fresh server session"
    );
    let fresh = &server.connections()[connections];
    assert_eq!(fresh.resumed_from, None);
    let kinds: Vec<_> = fresh
        .frames
        .iter()
        .map(|f| (f.kind, f.raw.clone()))
        .collect();
    // The seed, then the barrier.
    assert_eq!(fresh.frames_of("clientContent").count(), 2, "{kinds:#?}");
    assert_eq!(
        frames_with(&server, connections, "clientContent", "hello"),
        1
    );
    let mut expected = l_entries(&given);
    expected.extend(["user: again".to_owned(), "model: echo: again".to_owned()]);
    assert_eq!(s_entries(&server), expected);
    let reported: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Divergence { items, why, .. } => Some((items.clone(), *why)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reported,
        [(left_out, DivergenceReason::StoredContextMismatch)],
        "{seen:#?}"
    );
    l_equals_s_once(&server, &b);
    one_socket_at_a_time(&server);
    // B saves its own state over A's.
    b.hand_off().await.unwrap();
    let saved = backing.store.load(&key()).await.unwrap().unwrap();
    assert_eq!(saved.session.desired, b.chat_ctx());
    assert_eq!(saved.epoch.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_hand_off_memory() {
    restart_same_context(Kind::Memory, Leaving::HandOff).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_hand_off_file() {
    restart_same_context(Kind::File, Leaving::HandOff).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_a_dead_process_memory() {
    restart_same_context(Kind::Memory, Leaving::Abandoned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_a_dead_process_file() {
    restart_same_context(Kind::File, Leaving::Abandoned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_and_another_context_memory() {
    restart_other_context(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_and_another_context_file() {
    restart_other_context(Kind::File).await;
}

/// Saves that fail leave the session running, are reported once (not once per change), and
/// the state is saved once the store takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_saves_are_reported_once_and_retried() {
    let server = server(Family::Gemini25, |c| c).await;
    let backing = Backing::new(Kind::Memory).await.unwrap();
    let mortal = Mortal::new(Arc::clone(&backing.store));
    mortal.saves_fail.store(true, Ordering::SeqCst);
    // A long lease: no renewal (which retries a failed save) during the test.
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .store(mortal.clone(), key())
            .lease_ttl(Duration::from_secs(60))
            .connect()
            .await
            .unwrap();
    let mut seen = Vec::new();
    for text in ["one", "two", "three"] {
        session.send_text(text).unwrap();
        seen.extend(
            until(&mut events, "the answer", |e| {
                matches!(e, SessionEvent::TurnComplete)
            })
            .await,
        );
    }
    let warnings = seen
        .iter()
        .filter(|e| matches!(e, SessionEvent::Warning(w) if w.contains("could not save")))
        .count();
    assert_eq!(warnings, 1, "{seen:#?}");
    assert_eq!(mortal.saves.load(Ordering::SeqCst), 0);
    assert!(backing.store.load(&key()).await.unwrap().is_none());
    mortal.saves_fail.store(false, Ordering::SeqCst);
    barrier(&session, &mut events, "four").await;
    saved_as(backing.store.as_ref(), &session.chat_ctx()).await;
    session.close().await.unwrap();
}

/// A worker paused past its lease (its store's clock jumps) finds the session taken over at
/// its next save: the save is refused, the session closes, and the new owner's state stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_after_the_lease_passed_on_closes_the_session_and_writes_nothing() {
    let server = server(Family::Gemini25, |c| c).await;
    let backing = Backing::new(Kind::Memory).await.unwrap();
    let clock = backing.clock.clone().unwrap();
    let (a, mut events) = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .store(Arc::clone(&backing.store), key())
        .lease_ttl(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    barrier(&a, &mut events, "hello").await;
    adopted(&server, backing.store.as_ref()).await;
    // A is paused past its lease; B takes the session over and saves its own state.
    clock.advance(Duration::from_secs(61));
    let lease_b = backing
        .store
        .acquire(&key(), &owner("worker-b"), TTL)
        .await
        .unwrap();
    let mine = ChatContext::builder()
        .user("b-1", "B's context")
        .build()
        .unwrap();
    let state_b = StoredSession::new(
        None,
        resume_policy::MirrorVersion(1),
        ChatContext::new(),
        &resume_policy::Outbox::new(),
        mine,
    );
    backing.store.save(&lease_b, &state_b).await.unwrap();
    // A wakes up and changes its state: its save is refused, and it closes.
    let _ = a.send_text("late");
    let seen = until(&mut events, "A to close", |e| {
        matches!(e, SessionEvent::Closed { .. })
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, SessionEvent::Warning(w) if w.contains("lease was lost"))),
        "{seen:#?}"
    );
    let saved = backing.store.load(&key()).await.unwrap().unwrap();
    assert_eq!(saved.session, state_b, "A overwrote B's state");
    assert_eq!(saved.epoch, lease_b.epoch());
    // A did not give B's lease back either.
    backing.store.renew(&lease_b).await.unwrap();
    server
        .wait_for(WAIT, "A's socket to close", |view| {
            view.connections().iter().all(|c| !c.is_open())
        })
        .await
        .unwrap();
}

/// A saved state the store cannot read fails the connect with the store's error, dials
/// nothing and gives the lease back.
#[tokio::test]
async fn an_unreadable_saved_state_fails_the_connect() {
    let server = server(Family::Gemini25, |c| c).await;
    let dir = std::env::temp_dir().join(format!("agent-glue-unreadable-{}", std::process::id()));
    let store = FileStore::new(&dir).unwrap();
    std::fs::write(store.session_path(&key()), b"{ not json").unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let failed = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .store(Arc::clone(&store), key())
        .connect()
        .await;
    assert!(
        matches!(failed, Err(Error::Store(StoreError::Corrupt { .. }))),
        "{:?}",
        failed.map(|_| ())
    );
    assert!(server.connections().is_empty(), "dialed anyway");
    assert!(store.acquire(&key(), &owner("next"), TTL).await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A saved state given with `resume_from` beside a store is refused before the lease is taken:
/// the store's state is the newer one, and the first save would have overwritten it.
#[tokio::test]
async fn resume_from_beside_a_store_is_refused() {
    let server = server(Family::Gemini25, |c| c).await;
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let stale = agent_glue::conduit::Persisted::new(
        None,
        resume_policy::MirrorVersion(1),
        ChatContext::new(),
        Vec::new(),
        ChatContext::new(),
    );
    let refused = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .resume_from(stale)
        .store(Arc::clone(&store), key())
        .connect()
        .await;
    assert!(
        matches!(refused, Err(Error::Config(_))),
        "{:?}",
        refused.map(|_| ())
    );
    assert!(server.connections().is_empty(), "dialed anyway");
    assert!(
        store.acquire(&key(), &owner("next"), TTL).await.is_ok(),
        "the lease was taken"
    );
}

/// `hand_off` lets a tool still running answer this session: a non-blocking call's turn
/// completes while the tool runs, so the session is settled with a call awaiting its result;
/// `hand_off` waits for the result (within `HAND_OFF_DRAIN`), delivers it, then closes, saves
/// and releases. Closing at once would leave the next owner a call to report as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_off_waits_for_a_running_tool_to_answer() {
    let server = server(Family::Gemini25, |c| c).await;
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .tools(vec![
                weather_tool().with_behavior(gemini_transport::wire::Behavior::NonBlocking),
            ])
            .store(Arc::clone(&store), key())
            .lease_owner(owner("worker-a"))
            .lease_ttl(TTL)
            .connect()
            .await
            .expect("session connects");
    let (call_id, _) = weather_call(&session, &mut events).await;
    // The model's turn goes on without the result and completes: settled, the tool running.
    session.settled().await.unwrap();
    let session = Arc::new(session);
    let handing = tokio::spawn({
        let session = Arc::clone(&session);
        async move { session.hand_off().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !handing.is_finished(),
        "hand_off closed the session while its tool ran"
    );
    assert!(server.connections().iter().any(|c| c.is_open()));
    session
        .send_tool_result(call_id.clone(), json!({"temperature": 21}))
        .expect("the result is taken while hand_off waits");
    tokio::time::timeout(Duration::from_secs(10), handing)
        .await
        .expect("hand_off returns once the result is out")
        .unwrap()
        .expect("handed off");
    // The result went to this session's server before the socket closed.
    let responses: usize = server
        .connections()
        .iter()
        .map(|c| {
            c.frames_of("toolResponse")
                .filter(|f| f.raw.contains(&call_id))
                .count()
        })
        .sum();
    assert_eq!(responses, 1, "the result did not reach the server once");
    assert!(server.connections().iter().all(|c| !c.is_open()));
    let saved = store.load(&key()).await.unwrap().expect("saved");
    assert_eq!(saved.session.desired, session.chat_ctx());
    assert!(
        saved
            .session
            .desired
            .iter()
            .any(|item| matches!(item, Item::FunctionOutput(o) if o.call_id == call_id)),
        "the saved context has no result"
    );
}

#[tokio::test]
async fn hand_off_needs_a_store() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, _events) = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .connect()
        .await
        .unwrap();
    assert!(matches!(session.hand_off().await, Err(Error::Config(_))));
    // The session is untouched.
    session.send_text("still open").unwrap();
    session.close().await.unwrap();
}

#[cfg(feature = "store-redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_hand_off_redis() {
    restart_same_context(Kind::Redis, Leaving::HandOff).await;
}

#[cfg(feature = "store-redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_after_a_dead_process_redis() {
    restart_same_context(Kind::Redis, Leaving::Abandoned).await;
}

#[cfg(feature = "store-redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_restart_with_persisted_store_and_another_context_redis() {
    restart_other_context(Kind::Redis).await;
}

/// A `redis-server` of this test's own (as session-store's Redis tests run one).
#[cfg(feature = "store-redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

#[tokio::test]
async fn server_frames_that_change_nothing_saved_do_not_wake_the_lease_keeper() {
    let server = server(Family::Gemini25, |c| c).await;
    let store = Arc::new(MemoryStore::new());
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .store(store.clone(), key())
            .connect()
            .await
            .expect("connects");
    barrier(&session, &mut events, "hello").await;
    // Let the saves of the turn settle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = session.keeper_wakeups();
    // 200 frames that change nothing a resume depends on (usage only).
    for _ in 0..200 {
        server.faults().send_raw(
            br#"{"usageMetadata":{"promptTokenCount":1,"totalTokenCount":1}}"#.to_vec(),
            false,
        );
    }
    let mut usage = 0;
    while usage < 200 {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(SessionEvent::Usage(_))) => usage += 1,
            Ok(Some(_)) => {}
            other => panic!("after {usage} usage events: {other:?}"),
        }
    }
    let woken = session.keeper_wakeups() - before;
    assert!(woken <= 2, "the keeper woke {woken} times for 200 frames");
    session.close().await.expect("closes");
}
