//! A flood of a million tiny server frames: the session reads one frame at a time and stops
//! reading while the application's event queue is full, so memory stays flat (TCP pushes back
//! on the server), and the application receives every event, in order. Runs in a binary of
//! its own: it measures the process's memory. On paused tokio time (a current-thread runtime):
//! nothing here waits on a clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent};
use futures_util::{SinkExt, StreamExt};
use gemini_transport::wire::Modality;
use scripted::{MODEL, Scripted, idle_until, rss};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(start_paused = true)]
async fn a_flood_of_a_million_tiny_server_frames_keeps_memory_flat_and_loses_nothing() {
    const FRAMES: usize = 1_000_000;
    let server = Scripted::start(|_, ws| async move {
        // The server reads while it floods (as a real one does: pings are answered).
        let (mut sink, mut stream) = ws.split();
        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        for n in 0..FRAMES {
            let usage = format!(r#"{{"usageMetadata":{{"totalTokenCount":{n}}}}}"#);
            if sink.feed(Message::text(usage)).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
        // Then holds the connection open until the test ends.
        std::future::pending::<()>().await;
    })
    .await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .connect()
        .await
        .expect("connects");
    let before = rss();
    // Not read for a while: the session holds its queue's worth and the server waits.
    // Reading stops at twice the capacity (usage reports are never shed): the queue reaches
    // it, and stays there (a second on paused time ends only once nothing is left to run: a
    // reader going on would be reading still).
    idle_until("the reader to stop", Duration::from_secs(5), || {
        session.buffered().events >= 2 * 1_024
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        session.buffered().events <= 2 * 1_024 + 4,
        "{:?}",
        session.buffered()
    );
    let mut usage = 0usize;
    let mut peak = 0usize;
    while usage < FRAMES {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("the flood keeps coming")
            .expect("open");
        if let SessionEvent::Usage(u) = event {
            assert_eq!(u.total_tokens, Some(usage as u32), "out of order");
            usage += 1;
        }
        if usage.is_multiple_of(50_000) {
            peak = peak.max(rss().saturating_sub(before));
        }
    }
    assert!(peak < 16 << 20, "memory grew by {} KiB", peak >> 10);
    session.close().await.expect("close");
}
