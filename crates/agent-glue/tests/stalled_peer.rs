//! A server that stops reading for 60 s (a half-open connection, a stalled proxy) while audio
//! is pushed at real time and as fast as the session takes it: the shell's buffers and the
//! process's memory stay flat, the session gives the stalled connection up (write deadline,
//! keepalive) and reconnects, and `close()` returns in under a second while the socket is
//! still stalled. Runs in a binary of its own: it measures the process's memory.
//!
//! Time is tokio's paused clock: the 60 s take milliseconds. While the runtime has nothing to
//! do (the pusher waits for its next tick or for room, the peer reads nothing) the clock jumps
//! to the next timer, so the session's write deadline and keepalive fire on virtual time, as
//! they would on the wall clock against a peer that is stalled on purpose; every duration
//! measured here (the stall, the close) is virtual time, the session's own timers included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent_glue::LiveSession;
use gemini_transport::wire::Modality;
use scripted::{CHUNK, MODEL, Scripted, Seen, drain, rss, tally};
use tokio::time::Instant;

/// How long the peer stops reading.
const STALL: Duration = Duration::from_secs(60);

/// Every connection stops reading after its setup, for `STALL` from the server's start (the
/// socket stays open: a half-open peer, or a proxy that stalled); connections made after
/// that are read normally.
async fn stalling_server() -> Scripted {
    let stall_ends = Instant::now() + STALL;
    Scripted::start(move |_, ws| async move {
        tokio::time::sleep_until(stall_ends).await;
        drain(ws).await;
    })
    .await
}

/// Pushes audio against a stalled server for `STALL` with `push`, checking the shell's
/// buffers and the process's memory every half second; then closes while the socket is
/// still stalled.
async fn stalled_peer(realtime: bool) {
    let server = stalling_server().await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .jitter_seed(1)
        .connect()
        .await
        .expect("connects");
    let session = Arc::new(session);
    let pusher = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut pushed = 0usize;
            loop {
                let result = if realtime {
                    tick.tick().await;
                    session.push_audio(vec![1u8; CHUNK])
                } else {
                    session.push_audio_wait(vec![1u8; CHUNK]).await
                };
                if result.is_err() {
                    return pushed;
                }
                pushed += 1;
            }
        })
    };
    let mut seen = Seen::default();
    let start = Instant::now();
    let mut baseline = None;
    let mut peak = 0usize;
    // One 20 ms frame per chunk: at most the backlog (1 s), the gap (2 s) and a command's
    // worth of slack may be queued.
    let max_frames = (3_000 / 20) + 10;
    while start.elapsed() < STALL - Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tally(&mut events, &mut seen);
        let buffered = session.buffered();
        assert!(
            buffered.queued_frames <= max_frames,
            "queued frames unbounded: {buffered:?}"
        );
        assert!(
            buffered.backlog <= Duration::from_millis(1_020),
            "{buffered:?}"
        );
        assert!(buffered.gap <= Duration::from_millis(2_020), "{buffered:?}");
        if start.elapsed() > Duration::from_secs(5) {
            let now = rss();
            let base = *baseline.get_or_insert(now);
            peak = peak.max(now.saturating_sub(base));
        }
    }
    tally(&mut events, &mut seen);
    // Every connection so far stalled: the session noticed each one and replaced it.
    assert!(
        seen.lost >= 1,
        "the stalled connection was never given up: {seen:?}"
    );
    assert!(server.connections.load(Ordering::SeqCst) >= 2, "{seen:?}");
    assert!(
        peak < 24 << 20,
        "memory grew by {} KiB during the stall",
        peak >> 10
    );
    // Close while the current socket is still stalled.
    let before_close = session.describe();
    let closing = Instant::now();
    session.close().await.expect("close");
    let took = closing.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "close() took {took:?}; the session was: {before_close}"
    );
    assert!(matches!(
        session.send_text("after close"),
        Err(agent_glue::Error::Closed)
    ));
    let pushed = pusher.await.expect("pusher");
    assert!(pushed > 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_for_60_s_while_audio_is_pushed_at_real_time() {
    stalled_peer(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_for_60_s_while_audio_is_pushed_as_fast_as_possible() {
    stalled_peer(false).await;
}
