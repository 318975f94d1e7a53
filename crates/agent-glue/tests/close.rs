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
