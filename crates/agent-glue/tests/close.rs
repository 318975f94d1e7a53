//! `close()` ends the session at once: once it returns, every later call is `Err(Closed)` and
//! nothing more reaches the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use agent_glue::{Error, SessionEvent};
use common::{server, session};
use gemini_fake::Family;
use resume_policy::DefaultPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_close_are_refused_and_never_sent() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        session(&server, Box::new(DefaultPolicy::default()), Vec::new()).await;
    session.close().await.expect("closes");
    assert!(
        matches!(session.close().await, Err(Error::Closed)),
        "a second close is refused, as every call after the first"
    );
    for _ in 0..1_000 {
        assert!(matches!(
            session.send_text("after close"),
            Err(Error::Closed)
        ));
    }
    assert!(matches!(session.push_audio([0u8; 640]), Err(Error::Closed)));
    assert!(matches!(session.generate_reply(None), Err(Error::Closed)));
    assert!(matches!(
        session.update_instructions("late"),
        Err(Error::Closed)
    ));
    assert!(matches!(session.interrupt(), Err(Error::Closed)));
    let (version, context) = session.snapshot();
    assert!(matches!(
        session.update_chat_ctx(context, version),
        Err(Error::Closed)
    ));
    let mut last = None;
    while let Some(event) = events.recv().await {
        last = Some(event);
    }
    assert_eq!(
        last,
        Some(SessionEvent::Closed { error: None }),
        "the stream ends with Closed"
    );
    let sent: usize = server
        .connections()
        .iter()
        .map(|c| c.frames_of("realtimeInput").count() + c.frames_of("clientContent").count())
        .sum();
    assert_eq!(sent, 0, "nothing was sent after close");
}

/// `LiveSession` is a cheap handle: a clone dropped leaves the session open (the original
/// still sends, the server answers), and dropping the last clone closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_the_session_and_the_last_drop_closes_it() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        session(&server, Box::new(DefaultPolicy::default()), Vec::new()).await;
    let clone = session.clone();
    let task = tokio::spawn(async move { clone.send_text("from a task").map(|_| ()) });
    task.await.expect("joins").expect("a clone sends");
    session.send_text("from the original").expect("still open");
    let mut answers = 0;
    while answers < 2 {
        match events.recv().await.expect("the session is open") {
            SessionEvent::TurnComplete => answers += 1,
            SessionEvent::Closed { .. } => panic!("closed while a clone was alive"),
            _ => {}
        }
    }
    let texts: Vec<String> = common::s_entries(&server);
    assert!(texts.iter().any(|e| e == "user: from a task"), "{texts:?}");
    assert!(
        texts.iter().any(|e| e == "user: from the original"),
        "{texts:?}"
    );
    drop(session);
    let mut closed = false;
    while let Some(event) = events.recv().await {
        closed |= matches!(event, SessionEvent::Closed { .. });
    }
    assert!(closed, "dropping the last clone closes the session");
}
