//! Terminal errors say what failed and keep the transport error as their source; a first
//! connect that cannot succeed fails fast with that cause; a server message over the client's
//! own size limit is the client's doing, not a rejection of the user's turn. Against real
//! loopback listeners: a closed port, a plain TCP port given `wss://`, servers answering the
//! upgrade with 503 and 401, the fake server stalled before `setupComplete`, the fake server's
//! reply over a small `max_message_size`, and the fake refusing the key on a reconnect while a
//! tool result and a note are owed.
//!
//! On paused tokio time (a current-thread runtime): the backoff between attempts and the setup
//! timeout elapse on virtual time, and how long a failing connect took is virtual time, the
//! session's own timers and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_glue::{Error, LiveSession, ReconnectReason, SessionError, SessionEvent};
use common::{WAIT, endpoint, server, until, weather_call, weather_tool};
use gemini_fake::{Family, FaultAction, Trigger};
use gemini_transport::wire::Modality;
use gemini_transport::{ConnectConfig, Endpoint, SecretString};
use resume_policy::DivergenceReason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A builder for `base_url` (any model name the capability table knows).
fn builder(base_url: &str) -> agent_glue::LiveSessionBuilder {
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url(base_url)
        .expect("loopback URL");
    LiveSession::builder(
        endpoint,
        "models/gemini-2.5-flash-native-audio-preview-12-2025",
    )
    .modality(Modality::Text)
    .transcription(false)
}

/// Connects `builder` (bounded by [`WAIT`]) and returns the session error and how long it took.
async fn connect_error(builder: agent_glue::LiveSessionBuilder) -> (SessionError, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(WAIT, builder.connect())
        .await
        .expect("connect() fails within the wait, not after the whole backoff");
    let elapsed = started.elapsed();
    match result {
        Err(Error::Session(error)) => (error, elapsed),
        Err(other) => panic!("expected Error::Session, got {other:?}"),
        Ok(_) => panic!("connected to a server that cannot serve"),
    }
}

/// The transport error behind `error`, found through `source()` as an application would.
fn transport_source(error: &SessionError) -> &gemini_transport::Error {
    error
        .source()
        .and_then(|s| s.downcast_ref::<gemini_transport::Error>())
        .unwrap_or_else(|| panic!("{error:?} has no transport error as its source"))
}

/// A TCP listener that answers every connection with `response` (after reading what the
/// client sent first) and counts the connections.
async fn answering(response: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr.to_string(), accepted)
}

#[tokio::test(start_paused = true)]
async fn a_closed_port_fails_connect_fast_with_the_tcp_cause() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (error, elapsed) = connect_error(builder(&format!("ws://127.0.0.1:{port}"))).await;
    assert!(matches!(error, SessionError::Connect { .. }), "{error:?}");
    assert!(
        matches!(
            transport_source(&error),
            gemini_transport::Error::Connect { .. }
        ),
        "{error:?}"
    );
    // Two attempts and one short backoff, not eight attempts and 24 s.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn tls_to_a_plain_port_fails_on_the_first_attempt() {
    let (addr, accepted) =
        answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    let (error, elapsed) = connect_error(builder(&format!("wss://{addr}"))).await;
    assert!(matches!(error, SessionError::Tls { .. }), "{error:?}");
    assert!(
        matches!(
            transport_source(&error),
            gemini_transport::Error::Tls { .. }
        ),
        "{error:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "TLS is not retried");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn http_503_on_the_upgrade_fails_fast_with_the_status() {
    let (addr, accepted) =
        answering(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let (error, elapsed) = connect_error(builder(&format!("ws://{addr}"))).await;
    assert!(
        matches!(
            error,
            SessionError::Upgrade {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        matches!(
            transport_source(&error),
            gemini_transport::Error::Handshake {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    let attempts = accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&attempts), "{attempts} attempts");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn http_401_on_the_upgrade_is_an_auth_error_at_once() {
    let (addr, accepted) =
        answering(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").await;
    let (error, _) = connect_error(builder(&format!("ws://{addr}"))).await;
    assert!(
        matches!(
            error,
            SessionError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        matches!(
            transport_source(&error),
            gemini_transport::Error::Handshake {
                status: Some(401),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "auth is not retried");
    // `Error::Session` keeps the chain: its source is the session error.
    let outer = Error::Session(error.clone());
    assert_eq!(
        outer.source().map(ToString::to_string),
        Some(error.to_string())
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_completes_setup_fails_within_about_one_setup_timeout() {
    const SETUP_TIMEOUT: Duration = Duration::from_millis(500);
    let server = server(Family::Gemini25, |c| c).await;
    // The upgrade succeeds; no frame (`setupComplete` included) is ever sent.
    server.faults().stall();
    let builder = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .connect_config(ConnectConfig::default().with_setup_timeout(SETUP_TIMEOUT));
    let (error, elapsed) = connect_error(builder).await;
    assert!(
        matches!(error, SessionError::SetupTimeout { after, .. } if after == SETUP_TIMEOUT),
        "{error:?}"
    );
    assert!(
        matches!(
            transport_source(&error),
            gemini_transport::Error::SetupTimeout { .. }
        ),
        "{error:?}"
    );
    assert!(elapsed < 3 * SETUP_TIMEOUT, "took {elapsed:?}");
    assert_eq!(server.connections().len(), 1, "one attempt");
}

#[tokio::test(start_paused = true)]
async fn a_reply_over_the_clients_size_limit_reconnects_and_keeps_the_users_turn() {
    const LIMIT: usize = 1024;
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .connect_config(ConnectConfig::default().with_max_message_size(LIMIT))
            .connect()
            .await
            .expect("session connects");
    // The fake echoes the turn word by word: one word longer than the limit makes one frame
    // over it, while the turn is not yet covered by any handle.
    let long_word = "x".repeat(2 * LIMIT);
    let turn = session.send_text(long_word.clone()).unwrap();
    let seen = until(&mut events, "Reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let reason = seen.iter().find_map(|e| match e {
        SessionEvent::Reconnecting { reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        matches!(reason, Some(ReconnectReason::MessageTooLarge { size, max: LIMIT }) if size > LIMIT),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence {
                why: DivergenceReason::RejectedByServer { .. },
                ..
            }
        )),
        "the user's turn is not reported as rejected: {seen:#?}"
    );
    let Some(SessionEvent::Reconnected(report)) = seen.last() else {
        panic!("{seen:#?}");
    };
    assert!(report.lost.is_empty(), "{report:?}");
    assert!(
        !report.replayed.is_empty(),
        "the turn is sent again: {report:?}"
    );
    assert!(
        session.chat_ctx().get(&turn).is_some(),
        "the turn stays in the context"
    );
    // The server received it again on the new connection.
    server
        .wait_for(WAIT, "the turn on the new connection", |view| {
            view.connections()
                .iter()
                .skip(1)
                .any(|c| c.frames.iter().any(|f| f.raw.contains(&long_word)))
        })
        .await
        .unwrap();
    session.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_key_refused_on_a_reconnect_ends_the_session_reporting_what_was_owed() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .tools(vec![weather_tool()])
            .connect()
            .await
            .expect("session connects");
    let (call_id, _) = weather_call(&session, &mut events).await;
    // The connection drops and the reconnect's setup is refused: the key is no longer valid.
    server.faults().schedule(
        Trigger::SetupReceived,
        FaultAction::Close(
            1008,
            "API key not valid. Please pass a valid API key.".to_owned(),
        ),
    );
    server.faults().drop_connections();
    until(&mut events, "Reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await;
    // Owed when the key is refused: the tool's result and a note, queued while reconnecting.
    let output = session
        .send_tool_result(call_id.clone(), serde_json::json!({ "celsius": 21 }))
        .unwrap()
        .expect("the call is not cancelled");
    let note = session
        .append_chat_items(vec![ctx_model::Message::user("note-1", "(in Rome)").into()])
        .unwrap();
    let seen = until(&mut events, "Closed", |e| {
        matches!(e, SessionEvent::Closed { .. })
    })
    .await;
    let reported: Vec<&ctx_model::ItemId> = seen
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Divergence {
                items,
                why: DivergenceReason::GaveUp,
                ..
            } => Some(items),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        reported.contains(&&output) && note.iter().all(|id| reported.contains(&id)),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence { calls, why: DivergenceReason::GaveUp, .. }
                if calls.contains(&call_id)
        )),
        "{seen:#?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(SessionEvent::Closed {
                error: Some(SessionError::Auth {
                    code: Some(1008),
                    ..
                })
            })
        ),
        "{seen:#?}"
    );
    assert!(matches!(session.send_text("anyone?"), Err(Error::Closed)));
    assert_eq!(server.connections().len(), 2, "no dial after the refusal");
}
