//! The conformance suite every `SessionStore` runs: the same checks, the same expectations.
//!
//! A store's test file implements [`Harness`] and calls `conformance_suite!(make_harness)`,
//! which makes one `#[tokio::test]` per check. Times are short (tens to hundreds of
//! milliseconds); a store on a manual clock moves it, a store on a real clock (Redis) sleeps,
//! and where expiry is awaited on a real clock the check polls with a bound instead of
//! assuming how late a sleep wakes up.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ctx_model::{ChatContext, Delivery, FunctionOutput, Item, Message, Scheduling};
use resume_policy::{
    ClientMessageIndex, ConfigVersion, ConnectionId, Coverage, DeliveryState, Freshness,
    HandleRecord, HandleSerial, HandleToken, Millis, MirrorVersion, OpId, OpKind, Operation,
    Outbox, SessionEpoch,
};
use serde_json::json;
use session_store::{Error, MAX_TTL, OwnerId, SessionKey, SessionStore, StoredSession};

/// A store under test, seen from two processes.
pub trait Harness {
    /// The store's type.
    type Store: SessionStore;
    /// The first process's handle on the store.
    fn a(&self) -> &Self::Store;
    /// A second process's handle on the same data.
    fn b(&self) -> &Self::Store;
    /// Lets `by` pass on the store's clock.
    async fn pass(&self, by: Duration);
    /// Whether the store's clock runs on its own (expiry is then polled for).
    fn real_time(&self) -> bool;
    /// Writes `bytes` where the store keeps `key`'s saved state, as another program could;
    /// `false` when the store has no bytes to corrupt (memory).
    async fn write_raw(&self, key: &SessionKey, bytes: &[u8]) -> bool;
}

pub fn key(name: &str) -> SessionKey {
    SessionKey::new(name).expect("valid key")
}

pub fn owner(name: &str) -> OwnerId {
    OwnerId::new(name).expect("valid owner")
}

const LONG: Duration = Duration::from_secs(60);

/// Waits until `who` acquires `key`: on a manual clock at once (the caller moved time past the
/// lease), on a real clock polling every 10 ms for at most 5 s.
async fn acquire_after_expiry<H: Harness>(
    h: &H,
    store: &H::Store,
    key: &SessionKey,
    who: &OwnerId,
) -> session_store::Lease {
    for _ in 0..500 {
        match store.acquire(key, who, LONG).await {
            Ok(lease) => return lease,
            Err(Error::Held { .. }) if h.real_time() => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("the expired lease was not granted: {err:?}"),
        }
    }
    panic!("the lease did not expire within 5 s");
}

/// A session as a worker would store it mid-conversation: a stale handle with exact
/// coverage, every kind of item (a non-blocking result among them), and live operations in
/// both live states.
pub fn realistic_session(tag: &str) -> StoredSession {
    let result = FunctionOutput::new("o1", "call-1", "lookup", json!({"temp": 21, "unit": "°C"}))
        .with_delivery(Delivery::non_blocking(Some(Scheduling::Interrupt), true));
    let mut desired = ChatContext::builder()
        .user("u1", format!("What is the weather? {tag}"))
        .function_call(
            "c1",
            "call-1",
            "lookup",
            json!({"city": "Zürich", "days": [1, 2]}),
        )
        .model_transcript("m1", "Let me check — one moment.")
        .build()
        .expect("ids");
    desired.push(result.clone()).expect("new id");
    desired
        .push(Message::user("u2", "And tomorrow?"))
        .expect("new id");
    let held = ChatContext::from_items(desired.items()[..3].to_vec()).expect("ids");
    let handle = HandleRecord::new(
        HandleToken::new(format!("handle-token-{tag}")),
        Coverage {
            connection: ConnectionId(4),
            through: Some(ClientMessageIndex(9)),
            exact: true,
            answered: Some(ClientMessageIndex(7)),
        },
        Freshness::StaleSince(Millis(61_000)),
        Millis(60_500),
        HandleSerial(12),
        SessionEpoch(2),
    );
    let outbox = Outbox::from_operations([
        Operation::new(
            OpId(7),
            OpKind::ToolResponse { output: result },
            DeliveryState::Sent {
                connection: ConnectionId(4),
                index: ClientMessageIndex(10),
            },
        ),
        Operation::new(
            OpId(8),
            OpKind::Append {
                items: vec![Message::user("u2", "And tomorrow?").into()],
                turn_complete: true,
            },
            DeliveryState::Queued,
        ),
        Operation::new(
            OpId(9),
            OpKind::InstructionChange {
                version: ConfigVersion(3),
            },
            DeliveryState::Queued,
        ),
        Operation::new(
            OpId(10),
            OpKind::GenerateReply {
                instructions: Some("Be brief.".to_owned()),
            },
            DeliveryState::Superseded,
        ),
    ]);
    StoredSession::new(Some(handle), MirrorVersion(41), held, &outbox, desired)
}

pub async fn a_live_lease_is_refused_to_everyone<H: Harness>(h: &H) {
    let k = key("held");
    let (a, b) = (owner("worker-a"), owner("worker-b"));
    let lease = h.a().acquire(&k, &a, LONG).await.expect("free");
    assert_eq!((lease.key(), lease.owner(), lease.ttl()), (&k, &a, LONG));
    match h.b().acquire(&k, &b, LONG).await {
        Err(Error::Held {
            owner,
            epoch,
            expires_in,
            ..
        }) => {
            assert_eq!((owner, epoch), (a.clone(), lease.epoch()));
            assert!(expires_in.is_none_or(|left| left <= LONG), "{expires_in:?}");
        }
        other => panic!("B took a held session: {other:?}"),
    }
    // Its own owner too: a second acquire must not fence the first silently.
    assert!(matches!(
        h.a().acquire(&k, &a, LONG).await,
        Err(Error::Held { .. })
    ));
    // Other sessions are not affected.
    assert!(h.b().acquire(&key("other"), &b, LONG).await.is_ok());
}

pub async fn epochs_grow_with_every_grant<H: Harness>(h: &H) {
    let k = key("epochs");
    let (a, b) = (owner("worker-a"), owner("worker-b"));
    let first = h.a().acquire(&k, &a, LONG).await.expect("free");
    h.a().release(&first).await.expect("current");
    let second = h.b().acquire(&k, &b, LONG).await.expect("released");
    h.b().release(&second).await.expect("current");
    let third = h.a().acquire(&k, &a, LONG).await.expect("released");
    assert!(first.epoch() < second.epoch(), "{first:?} {second:?}");
    assert!(second.epoch() < third.epoch(), "{second:?} {third:?}");
}

pub async fn a_release_frees_the_session_at_once<H: Harness>(h: &H) {
    let k = key("release");
    let lease = h.a().acquire(&k, &owner("a"), LONG).await.expect("free");
    h.a().release(&lease).await.expect("current");
    let next = h.b().acquire(&k, &owner("b"), LONG).await;
    assert!(next.is_ok(), "not free after release: {next:?}");
}

pub async fn renewing_keeps_the_lease_past_its_ttl<H: Harness>(h: &H) {
    let k = key("renew");
    let ttl = Duration::from_millis(300);
    let lease = h.a().acquire(&k, &owner("a"), ttl).await.expect("free");
    // Six renewals 100 ms apart: 600 ms in all, twice the TTL.
    for round in 0..6 {
        h.pass(Duration::from_millis(100)).await;
        h.a()
            .renew(&lease)
            .await
            .unwrap_or_else(|err| panic!("renewal {round} refused: {err:?}"));
        assert!(
            matches!(
                h.b().acquire(&k, &owner("b"), LONG).await,
                Err(Error::Held { .. })
            ),
            "lost after renewal {round}"
        );
    }
    h.a()
        .save(&lease, &realistic_session("renewed"))
        .await
        .expect("still current");
}

pub async fn an_expired_lease_passes_to_the_next_owner<H: Harness>(h: &H) {
    let k = key("expire");
    let ttl = Duration::from_millis(40);
    let old = h.a().acquire(&k, &owner("a"), ttl).await.expect("free");
    let state = realistic_session("a");
    h.a().save(&old, &state).await.expect("current");
    h.pass(Duration::from_millis(50)).await;
    let new = acquire_after_expiry(h, h.b(), &k, &owner("b")).await;
    assert!(new.epoch() > old.epoch());
    // The state outlives the lease that wrote it.
    let saved = h.b().load(&k).await.expect("readable").expect("saved");
    assert_eq!((saved.epoch, saved.session), (old.epoch(), state));
}

pub async fn a_stale_owner_can_never_write<H: Harness>(h: &H) {
    let k = key("stale");
    let old = h
        .a()
        .acquire(&k, &owner("a"), Duration::from_millis(40))
        .await
        .expect("free");
    h.pass(Duration::from_millis(50)).await;
    let new = acquire_after_expiry(h, h.b(), &k, &owner("b")).await;
    let mine = realistic_session("b");
    h.b().save(&new, &mine).await.expect("current");

    // The old owner wakes up: every write is refused and names the newer epoch.
    match h.a().save(&old, &realistic_session("a-late")).await {
        Err(Error::Fenced { epoch, current, .. }) => {
            assert_eq!((epoch, current), (old.epoch(), Some(new.epoch())));
        }
        other => panic!("a stale save was not fenced: {other:?}"),
    }
    assert!(matches!(h.a().renew(&old).await, Err(Error::Fenced { .. })));
    assert!(matches!(
        h.a().release(&old).await,
        Err(Error::Fenced { .. })
    ));
    let saved = h.a().load(&k).await.expect("readable").expect("saved");
    assert_eq!((saved.epoch, saved.session), (new.epoch(), mine));
    // And the new owner still holds the session.
    h.b().renew(&new).await.expect("still current");
}

pub async fn a_lease_nobody_renewed_is_lost_even_unclaimed<H: Harness>(h: &H) {
    let k = key("lost");
    let lease = h
        .a()
        .acquire(&k, &owner("a"), Duration::from_millis(40))
        .await
        .expect("free");
    h.pass(Duration::from_millis(50)).await;
    if h.real_time() {
        // Let the expiry be certain before asserting on it: a second owner can acquire.
        let probe = acquire_after_expiry(h, h.b(), &key("lost-probe"), &owner("p")).await;
        drop(probe);
    }
    match h.a().save(&lease, &realistic_session("late")).await {
        Err(Error::Fenced { current, .. }) => assert_eq!(current, None),
        other => panic!("a save after expiry was not fenced: {other:?}"),
    }
    assert!(matches!(
        h.a().renew(&lease).await,
        Err(Error::Fenced { .. })
    ));
    assert!(h.a().load(&k).await.expect("readable").is_none());
}

pub async fn a_released_lease_cannot_write<H: Harness>(h: &H) {
    let k = key("released");
    let lease = h.a().acquire(&k, &owner("a"), LONG).await.expect("free");
    h.a().release(&lease).await.expect("current");
    assert!(matches!(
        h.a().save(&lease, &realistic_session("x")).await,
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(
        h.a().release(&lease).await,
        Err(Error::Fenced { .. })
    ));
    assert!(h.a().load(&k).await.expect("readable").is_none());
}

pub async fn a_realistic_session_round_trips<H: Harness>(h: &H) {
    let k = key("round-trip");
    assert!(h.b().load(&k).await.expect("readable").is_none());
    let lease = h.a().acquire(&k, &owner("a"), LONG).await.expect("free");
    let state = realistic_session("rt");
    assert_eq!(
        state.outbox.len(),
        3,
        "the superseded operation is not stored"
    );
    h.a().save(&lease, &state).await.expect("current");
    let saved = h.b().load(&k).await.expect("readable").expect("saved");
    assert_eq!(saved.epoch, lease.epoch());
    assert_eq!(saved.session, state);
    // What `PartialEq` does not look at: the token, the record's connection, deliveries.
    let handle = saved.session.handle.as_ref().expect("a handle");
    assert_eq!(handle.token.expose(), "handle-token-rt");
    assert_eq!(handle.connection, ConnectionId(4));
    let delivery = |ctx: &ChatContext| {
        ctx.get("o1")
            .and_then(Item::as_function_output)
            .map(|o| o.delivery)
    };
    assert_eq!(
        delivery(&saved.session.desired),
        Some(Delivery::non_blocking(Some(Scheduling::Interrupt), true))
    );
    let op_delivery = saved.session.outbox.iter().find_map(|op| match &op.kind {
        OpKind::ToolResponse { output } => Some(output.delivery),
        _ => None,
    });
    assert_eq!(op_delivery, delivery(&state.desired));
    // A second save replaces the first.
    let newer = realistic_session("rt2");
    h.a().save(&lease, &newer).await.expect("current");
    let saved = h.b().load(&k).await.expect("readable").expect("saved");
    assert_eq!(saved.session, newer);
}

/// What an error must be.
type Expect = fn(&Error) -> bool;

pub async fn unreadable_data_is_a_typed_error<H: Harness>(h: &H) {
    let k = key("corrupt");
    let valid = {
        let lease = h.a().acquire(&k, &owner("a"), LONG).await.expect("free");
        h.a()
            .save(&lease, &realistic_session("c"))
            .await
            .expect("current");
        lease
    };
    let cases: [(&[u8], Expect); 8] = [
        (b"\x00\xffnot json", |e| matches!(e, Error::Corrupt { .. })),
        (b"", |e| matches!(e, Error::Corrupt { .. })),
        (br#"{"format":"gemini-live-rs/session","version":1,"epoch":1,"sess"#, |e| {
            matches!(e, Error::Corrupt { .. })
        }),
        (br#"{"hello":"world"}"#, |e| {
            matches!(e, Error::Foreign { found: None, .. })
        }),
        (br#"[1,2,3]"#, |e| matches!(e, Error::Foreign { found: None, .. })),
        (br#"{"format":"other-app","version":1}"#, |e| {
            matches!(e, Error::Foreign { found: Some(f), .. } if f == "other-app")
        }),
        (br#"{"format":"gemini-live-rs/session","version":99}"#, |e| {
            matches!(
                e,
                Error::UnsupportedVersion {
                    version: 99,
                    supported: 1,
                    ..
                }
            )
        }),
        (
            br#"{"format":"gemini-live-rs/session","version":1,"epoch":1,"session":{"handle":null,"mirror_version":0,"held":[],"outbox":[],"desired":[{"Message":{"id":"x","role":"User","parts":[],"origin":"Typed"}},{"Message":{"id":"x","role":"User","parts":[],"origin":"Typed"}}]}}"#,
            |e| matches!(e, Error::Corrupt { .. }),
        ),
    ];
    for (bytes, expected) in cases {
        if !h.write_raw(&k, bytes).await {
            eprintln!("this store keeps no bytes that another program could corrupt: skipped");
            return;
        }
        match h.b().load(&k).await {
            Err(err) => assert!(
                expected(&err),
                "{:?}: unexpected {err:?}",
                String::from_utf8_lossy(bytes)
            ),
            Ok(found) => panic!("{:?} read as {found:?}", String::from_utf8_lossy(bytes)),
        }
    }
    // The owner's next save replaces what could not be read.
    let fixed = realistic_session("fixed");
    h.a().save(&valid, &fixed).await.expect("current");
    let saved = h.b().load(&k).await.expect("readable").expect("saved");
    assert_eq!(saved.session, fixed);
}

pub async fn bad_ttls_are_refused<H: Harness>(h: &H) {
    let k = key("ttl");
    for ttl in [
        Duration::ZERO,
        Duration::from_micros(500),
        MAX_TTL + Duration::from_millis(1),
    ] {
        match h.a().acquire(&k, &owner("a"), ttl).await {
            Err(Error::InvalidTtl { ttl: refused }) => assert_eq!(refused, ttl),
            other => panic!("ttl {ttl:?} gave {other:?}"),
        }
    }
    // Nothing was granted by the refusals.
    assert!(h.b().acquire(&k, &owner("b"), LONG).await.is_ok());
}

/// One `#[tokio::test]` per check, on harnesses made by `$make` (an async expression).
macro_rules! conformance_suite {
    ($make:expr) => {
        conformance_suite!(@tests $make;
            a_live_lease_is_refused_to_everyone,
            epochs_grow_with_every_grant,
            a_release_frees_the_session_at_once,
            renewing_keeps_the_lease_past_its_ttl,
            an_expired_lease_passes_to_the_next_owner,
            a_stale_owner_can_never_write,
            a_lease_nobody_renewed_is_lost_even_unclaimed,
            a_released_lease_cannot_write,
            a_realistic_session_round_trips,
            unreadable_data_is_a_typed_error,
            bad_ttls_are_refused,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(harness) = $make.await else { return };
                conformance::$check(&harness).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;
