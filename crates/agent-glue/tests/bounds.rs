//! The shell's bounds: a producer faster than the socket, an application that never reads
//! its events, and a resumption handle of 10 MB, each against a scripted server on loopback
//! and a real `LiveSession`. (The stalled peer and the frame flood measure the process's
//! memory, so each runs in a test binary of its own: `stalled_peer.rs`, `flood.rs`.)
//!
//! Every test runs on paused tokio time (a current-thread runtime): the session's timers
//! (backoff, keepalive, receipts) are virtual, and nothing waits on the wall clock. A wait is
//! on an event, on what the scripted server saw, or on the runtime having nothing left to run
//! ([`scripted::idle_until`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use std::sync::Arc;
use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent};
use futures_util::SinkExt;
use gemini_transport::ConnectConfig;
use gemini_transport::wire::Modality;
use scripted::{CHUNK, MODEL, Scripted, Seen, drain, hold, idle_until, talk, tally};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

/// A producer that never waits and never pauses (drop-oldest at the bound) against a server
/// that never reads: the backlog stays at its bound and what is shed is reported. The
/// producer yields to the session's tasks but never waits, so the paused clock stands still:
/// no write deadline or keepalive verdict ends the connection, the backlog alone bounds it.
#[tokio::test(start_paused = true)]
async fn a_producer_that_never_waits_is_bounded_by_the_backlog_and_told_what_was_dropped() {
    /// 1,000 s of audio: far more than any socket buffer holds.
    const CHUNKS: u64 = 50_000;
    let server = Scripted::start(|_, ws| hold(ws)).await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .audio_backlog(Duration::from_millis(500))
        .connect()
        .await
        .expect("connects");
    let mut pushed = 0u64;
    while pushed < CHUNKS {
        for _ in 0..100 {
            session.push_audio(vec![0u8; CHUNK]).expect("push");
            pushed += 1;
        }
        tokio::task::yield_now().await;
    }
    let buffered = session.buffered();
    assert!(
        buffered.backlog <= Duration::from_millis(500),
        "{buffered:?}"
    );
    let mut seen = Seen::default();
    tally(&mut events, &mut seen);
    // Far more was pushed than any socket buffer holds; the rest was reported.
    let pushed_audio = Duration::from_millis(20 * pushed);
    assert!(
        pushed_audio > Duration::from_secs(600),
        "pushed {pushed_audio:?}"
    );
    assert!(
        seen.dropped > pushed_audio / 2,
        "dropped {:?} of {pushed_audio:?}",
        seen.dropped
    );
    // try_push refuses instead.
    assert!(matches!(
        session.try_push_audio(vec![0u8; CHUNK]),
        Err(agent_glue::Error::Full { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_resumption_handle_over_the_bound_is_refused_and_never_sent_back() {
    // Told by the test once the session has read both handles.
    let both_read = Arc::new(Notify::new());
    let read = Arc::clone(&both_read);
    let server = Scripted::start(move |n, mut ws| {
        let read = Arc::clone(&read);
        async move {
            if n == 0 {
                let small =
                    r#"{"sessionResumptionUpdate":{"newHandle":"small-handle","resumable":true}}"#;
                let huge = format!(
                    r#"{{"sessionResumptionUpdate":{{"newHandle":"{}","resumable":true}}}}"#,
                    "h".repeat(10 << 20)
                );
                let _ = ws.send(Message::text(small)).await;
                let _ = ws.send(Message::text(huge)).await;
                // Once the client has read both, drop the connection (1006).
                read.notified().await;
                drop(ws);
            } else {
                drain(ws).await;
            }
        }
    })
    .await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .connect_config(ConnectConfig::default().with_max_message_size(32 << 20))
        .jitter_seed(3)
        .connect()
        .await
        .expect("connects");
    let mut refused = None;
    let mut reconnected = false;
    while !(reconnected && refused.is_some()) {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("events")
            .expect("open")
        {
            SessionEvent::HandleTooLarge { size, max } => {
                // Read after the small one: both are in, the connection can go.
                refused = Some((size, max));
                both_read.notify_one();
            }
            SessionEvent::Reconnected(_) => reconnected = true,
            _ => {}
        }
    }
    assert_eq!(refused, Some((10 << 20, 16 << 10)));
    let setups = server.setups.lock().await.clone();
    assert_eq!(setups.len(), 2);
    assert!(
        setups[1].contains(r#""handle":"small-handle""#),
        "the second setup resumes from the handle kept: {}",
        &setups[1][..setups[1].len().min(300)]
    );
    assert!(setups[1].len() < 4_096, "the huge handle went back out");
    session.close().await.expect("close");
}
#[tokio::test(start_paused = true)]
async fn an_application_that_never_reads_its_events_loses_only_model_audio_and_is_told() {
    const CHUNKS: usize = 5_000;
    let server = Scripted::start(|_, mut ws| async move {
        talk(&mut ws, CHUNKS).await;
        drain(ws).await;
    })
    .await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Audio)
        .transcription(false)
        .event_capacity(256)
        .connect()
        .await
        .expect("connects");
    // The application does not read for a while: past the capacity model audio is shed;
    // usage reports are not, and at twice the capacity the session stops reading. Far more
    // is on its way (10,001 frames): the reader reaches the bound, and stays there (the 2 s
    // on paused time end only once nothing is left to run: a reader going on would be
    // reading still).
    idle_until("the reader to stop", Duration::from_secs(5), || {
        session.buffered().events >= 512
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = session.buffered().events;
    assert!(
        (512..=516).contains(&waiting),
        "{waiting} events waiting, capacity 256"
    );
    // Now it reads everything: every usage report and the end of the turn arrive; the model
    // audio that is missing was reported, to the frame.
    let mut audio = Duration::ZERO;
    let mut dropped = Duration::ZERO;
    let mut usage = 0usize;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the turn ends")
            .expect("open");
        match event {
            SessionEvent::Audio { pcm, sample_rate } => {
                audio += Duration::from_secs_f64(pcm.len() as f64 / (f64::from(sample_rate) * 2.0));
            }
            SessionEvent::ModelAudioDropped { duration } => dropped += duration,
            SessionEvent::Usage(_) => usage += 1,
            SessionEvent::TurnComplete => break,
            _ => {}
        }
    }
    assert_eq!(usage, CHUNKS, "a usage event was lost");
    assert!(dropped > Duration::ZERO, "nothing was shed");
    let total = audio + dropped;
    let expected = Duration::from_millis(40 * CHUNKS as u64);
    assert!(
        total.abs_diff(expected) < Duration::from_millis(1),
        "{total:?} of model audio accounted for, {expected:?} sent"
    );
    session.close().await.expect("close");
}

/// The real-time hot path: a chunk pushed while the socket is idle is written from the
/// caller's thread; the driver task is not woken for it (before the shell rework every chunk
/// was handed to the session task). The server receives every chunk, in order.
///
/// The chunks come at real time, one every 20 ms (faster, they would be a burst, whose flush
/// is held: `conduit::BURST_LEAD`). On paused time, each pause ends once the runtime has
/// nothing left to run: the chunk is on the server's side and the writer idle again.
#[tokio::test(start_paused = true)]
async fn audio_pushed_while_the_socket_is_idle_wakes_no_other_task() {
    // Every text frame the server received, and how many of them were audio so far.
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (audio_count, mut audio_received) = watch::channel(0usize);
    let audio_count = Arc::new(audio_count);
    let seen = Arc::clone(&received);
    let server = Scripted::start(move |_, mut ws| {
        let (seen, audio_count) = (Arc::clone(&seen), Arc::clone(&audio_count));
        async move {
            use futures_util::StreamExt;
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame {
                    let audio = text.contains("realtimeInput");
                    seen.lock().unwrap().push(text.to_string());
                    if audio {
                        audio_count.send_modify(|n| *n += 1);
                    }
                }
            }
        }
    })
    .await;
    let (session, _events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .keepalive(None)
        .connect()
        .await
        .expect("connects");
    session.settled().await.expect("settled");
    let before = session.driver_wakeups();
    let chunks = 200u8;
    for n in 0..chunks {
        // A distinct chunk each time, shared with the session without a copy.
        session
            .push_audio(bytes::Bytes::from(vec![n; CHUNK]))
            .expect("push");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let woken = session.driver_wakeups() - before;
    assert!(
        woken <= 2,
        "the driver was woken {woken} times for {chunks} chunks"
    );
    session.settled().await.expect("settled");
    // Until the server has read as many audio frames as were pushed (one chunk, one frame).
    tokio::time::timeout(
        Duration::from_secs(10),
        audio_received.wait_for(|n| *n >= usize::from(chunks)),
    )
    .await
    .expect("every chunk reaches the server")
    .expect("the server runs");
    let audio: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.contains("realtimeInput"))
        .cloned()
        .collect();
    assert_eq!(
        audio.len(),
        usize::from(chunks),
        "every chunk reached the server"
    );
    for (n, frame) in audio.iter().enumerate() {
        let data = scripted::base64_standard(&vec![n as u8; CHUNK]);
        assert!(frame.contains(&data), "chunk {n} out of order or altered");
    }
    session.close().await.expect("close");
}

/// An application that pushes audio ten times faster than real time into a session whose
/// peer never reads, and never reads its own events: the pushes past the backlog's bound used
/// to queue one `AudioDropped` each (1.32 M events in 20 s); consecutive reports are one event
/// now, so the queue stays within twice its capacity for a minute of stalls and reconnects,
/// and what was dropped is all reported once the application reads.
#[tokio::test(start_paused = true)]
async fn an_application_that_never_reads_with_a_stalled_peer_holds_twice_the_capacity_at_most() {
    const CAPACITY: usize = 32;
    let server = Scripted::start(|_, ws| hold(ws)).await;
    let (session, mut events) = LiveSession::builder(server.endpoint(), MODEL)
        .modality(Modality::Text)
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .event_capacity(CAPACITY)
        .jitter_seed(1)
        .connect()
        .await
        .expect("connects");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut pushes = 0usize;
    let mut most = 0usize;
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        tick.tick().await;
        for _ in 0..10 {
            session.push_audio(vec![1u8; CHUNK]).expect("push");
            pushes += 1;
        }
        most = most.max(session.buffered().events);
    }
    assert!(
        most <= 2 * CAPACITY,
        "{most} events waited, capacity {CAPACITY}"
    );
    let mut seen = Seen::default();
    tally(&mut events, &mut seen);
    assert!(
        seen.lost >= 1,
        "the stalled peer was never given up: {seen:?}"
    );
    // Far more was pushed than any socket takes: most of it was reported dropped.
    let pushed = Duration::from_millis(20 * pushes as u64);
    assert!(
        seen.dropped > pushed / 2,
        "{:?} reported dropped of {pushed:?} pushed",
        seen.dropped
    );
    session.close().await.expect("close");
}
