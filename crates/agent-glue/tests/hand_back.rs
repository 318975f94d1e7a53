//! Who polls the socket: the application's task while it waits in `SessionEvents::recv` (it
//! reads) or in `push_audio_wait` (it writes a blocked socket), the session's own task
//! otherwise. A call the application gives up on (dropped in a `select!`) must hand the socket
//! back, or the server's frames would wait unread, or the backlog unwritten, until the
//! application called again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod scripted;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_glue::SessionEvent;
use common::{server, session};
use futures_util::StreamExt as _;
use gemini_fake::Family;
use resume_policy::DefaultPolicy;

/// Takes what is queued now, without waiting and without reading the socket.
fn drain(events: &mut agent_glue::SessionEvents) -> Vec<SessionEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

#[tokio::test]
async fn a_recv_dropped_in_a_select_leaves_the_socket_to_the_session() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(&server, Box::new(DefaultPolicy::default()), vec![]).await;
    drain(&mut events);
    // The queue is empty: this `recv` reads the socket itself, and nothing comes before the
    // timer wins and drops it.
    tokio::select! {
        event = events.recv() => panic!("nothing was asked for, yet {event:?}"),
        () = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    // A frame the client did not ask for (nothing the client does wakes the session's task):
    // `try_recv` never reads the socket, so it is queued only if the session reads.
    server.faults().send_raw(
        br#"{"serverContent":{"modelTurn":{"parts":[{"text":"unprompted"}]}}}"#.to_vec(),
        false,
    );
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            seen.extend(drain(&mut events));
            if seen
                .iter()
                .any(|e| matches!(e, SessionEvent::Text(t) if t == "unprompted"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(read.is_ok(), "the frame was never read: {seen:?}");
    session.close().await.expect("closes");
}

#[tokio::test]
async fn recv_and_the_stream_in_turn_see_every_answer_once_and_in_order() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(&server, Box::new(DefaultPolicy::default()), vec![]).await;
    let mut texts = Vec::new();
    for n in 0..20 {
        session.send_text(format!("turn {n}")).expect("open");
        let mut text = String::new();
        loop {
            // Every other turn through the `Stream` (which waits on the queue while the
            // session's task reads), the rest through `recv` (which reads itself).
            let event = if n % 2 == 0 {
                events.recv().await
            } else {
                events.next().await
            };
            match event.expect("session open") {
                SessionEvent::Text(part) => text.push_str(&part),
                SessionEvent::TurnComplete => break,
                _ => {}
            }
        }
        texts.push(text);
    }
    let expected: Vec<String> = (0..20).map(|n| format!("echo: turn {n}")).collect();
    assert_eq!(texts, expected);
    session.close().await.expect("closes");
}

#[tokio::test]
async fn a_push_audio_wait_dropped_while_the_socket_is_blocked_leaves_the_backlog_to_the_session() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;

    // A peer that reads nothing for its first second, then counts the audio frames it gets.
    let received = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&received);
    let server = scripted::Scripted::start(move |_, mut ws| {
        let counted = Arc::clone(&counted);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame {
                    if text.contains("realtimeInput") {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    })
    .await;
    let (session, _events) = agent_glue::LiveSession::builder(server.endpoint(), scripted::MODEL)
        .modality(agent_glue::Modality::Text)
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .connect()
        .await
        .expect("connects");
    // Pushes until one waits (the socket blocked, the backlog at its bound), then gives that
    // one up: it was writing the socket itself.
    let mut pushed = 0usize;
    loop {
        tokio::select! {
            result = session.push_audio_wait(vec![1u8; scripted::CHUNK]) => {
                result.expect("open");
                pushed += 1;
            }
            () = tokio::time::sleep(Duration::from_millis(300)) => break,
        }
    }
    assert!(pushed > 50, "the socket never blocked: {pushed} chunks");
    // No call of the application's from now on: the session alone must write the backlog once
    // the peer reads again, on the same connection. (The driver's own timers would also bring
    // it back to a blocked socket, later: this checks that nothing is left unwritten, not
    // which task writes it.)
    let delivered = tokio::time::timeout(Duration::from_secs(5), async {
        while received.load(Ordering::SeqCst) < pushed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        delivered.is_ok(),
        "{} of {pushed} chunks reached the peer; {}",
        received.load(Ordering::SeqCst),
        session.describe()
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}
