//! Sessions on `agent_glue::LiveSession`, through its public API only: `connect`,
//! `push_audio` and the event stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agent_glue::{LiveSession, SessionEvent, SessionEvents};
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use gemini_transport::Endpoint;

use crate::audio::{CHUNK, microphone_chunk};
use crate::run::{DRAIN, Plan, SessionCtx, SessionOutcome};
use crate::{ClientArgs, Pace};

async fn connect(ctx: &SessionCtx) -> Result<(LiveSession, SessionEvents), String> {
    let _dial = ctx.dials.acquire().await.map_err(|e| e.to_string())?;
    LiveSession::builder(ctx.endpoint.clone(), ctx.args.model.clone())
        // Frames of 20 ms, as the bare clients send.
        .audio_chunk(CHUNK)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// What the event reader saw: model audio chunks, and the first sign that the session broke.
#[derive(Debug, Default)]
struct Heard {
    received: u64,
    error: Option<String>,
}

/// Reads the session's events in a task of its own (as the bare clients read their socket in
/// a reader task, apart from the sending loop) until the stream ends. A reconnect, dropped
/// microphone audio, or a close this client did not ask for is an error.
fn read_events(mut events: SessionEvents, closing: Arc<AtomicBool>) -> JoinHandle<Heard> {
    tokio::spawn(async move {
        let mut heard = Heard::default();
        while let Some(event) = events.recv().await {
            let error = match event {
                SessionEvent::Audio { .. } => {
                    heard.received += 1;
                    None
                }
                SessionEvent::Reconnecting { .. } => Some("the session reconnected"),
                SessionEvent::AudioDropped { .. } => Some("the session dropped audio"),
                SessionEvent::Closed { .. } if !closing.load(Ordering::Acquire) => {
                    Some("the session closed")
                }
                _ => None,
            };
            if let Some(error) = error {
                heard.error.get_or_insert_with(|| error.to_owned());
            }
        }
        heard
    })
}

/// One streaming session.
pub(crate) async fn session(mut ctx: SessionCtx) -> SessionOutcome {
    let (session, events) = match connect(&ctx).await {
        Ok(connected) => {
            let _ = ctx.ready.send(Ok(()));
            connected
        }
        Err(error) => {
            let _ = ctx.ready.send(Err(error.clone()));
            return SessionOutcome::failed(error);
        }
    };
    let closing = Arc::new(AtomicBool::new(false));
    let reader = read_events(events, Arc::clone(&closing));
    let mut outcome = SessionOutcome {
        connected: true,
        ..SessionOutcome::default()
    };
    let Some(plan) = ctx.plan().await else {
        return outcome;
    };
    let streamed = match ctx.args.pace {
        Pace::Realtime => realtime(&ctx, plan, &session, &mut outcome).await,
        Pace::Afap => afap(&ctx, plan, &session, &mut outcome).await,
    };
    if let Err(error) = streamed {
        outcome.error = Some(error);
    }
    // Let the server's stream run out, then close; the event stream ends after `Closed`.
    sleep_until(Instant::now() + DRAIN).await;
    closing.store(true, Ordering::Release);
    if let Err(error) = session.close().await {
        outcome.error.get_or_insert(format!("close: {error}"));
    }
    match reader.await {
        Ok(heard) => {
            outcome.received = heard.received;
            if let Some(error) = heard.error {
                outcome.error.get_or_insert(error);
            }
        }
        Err(error) => {
            outcome
                .error
                .get_or_insert(format!("event reader: {error}"));
        }
    }
    outcome
}

/// One chunk every 20 ms. A tick the task reaches late is still sent, at once
/// (`MissedTickBehavior::Burst`): a microphone keeps capturing while the application is busy,
/// so the audio is there to send and a late loop must catch up, not skip it. Lateness is
/// measured against each tick's schedule.
async fn realtime(
    ctx: &SessionCtx,
    plan: Plan,
    session: &LiveSession,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let chunk = Bytes::from(microphone_chunk());
    let end = plan.end();
    let (mut ticks, due) = plan.microphone(ctx.index, ctx.args.sessions);
    outcome.due = due;
    loop {
        if !outcome.tick_in_run(ticks.tick().await, end) {
            return Ok(());
        }
        session
            .push_audio(chunk.clone())
            .map_err(|e| format!("push_audio: {e}"))?;
        outcome.sent += 1;
    }
}

/// As fast as the session takes them, one 20 ms chunk per call (a producer that does not
/// batch: the session coalesces what comes faster than real time, as `bare-coalesce` does by
/// hand), with the async push that waits while the session's backlog is at its bound (the
/// socket is slower than this producer), as a source that is not real time should. It yields
/// to the runtime every `batch` chunks, as the bare clients do after each flush of `batch`.
async fn afap(
    ctx: &SessionCtx,
    plan: Plan,
    session: &LiveSession,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let chunk = Bytes::from(microphone_chunk());
    let end = plan.end();
    sleep_until(plan.start).await;
    while Instant::now() < end {
        for _ in 0..ctx.args.batch {
            session
                .push_audio_wait(chunk.clone())
                .await
                .map_err(|e| format!("push_audio_wait: {e}"))?;
        }
        outcome.sent += ctx.args.batch as u64;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// One timed `connect()` (it returns once the first `setup` is complete), then an untimed
/// close.
pub(crate) async fn connect_once(
    args: &ClientArgs,
    endpoint: &Endpoint,
) -> Result<std::time::Duration, String> {
    let started = Instant::now();
    let (session, events) = LiveSession::builder(endpoint.clone(), args.model.clone())
        .audio_chunk(CHUNK)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let took = started.elapsed();
    let _ = session.close().await;
    // Until the close handshake is over (the stream ends after `Closed`, once the socket is
    // gone), as the bare client waits for the server's close frame.
    let mut events = events;
    while events.recv().await.is_some() {}
    Ok(took)
}

/// One idle session: connected, reading nothing, until the run stops.
pub(crate) async fn idle(mut ctx: SessionCtx) -> SessionOutcome {
    match connect(&ctx).await {
        Ok((session, events)) => {
            let _ = ctx.ready.send(Ok(()));
            let _ = ctx.plan().await;
            let _ = session.close().await;
            drop(events);
            SessionOutcome {
                connected: true,
                ..SessionOutcome::default()
            }
        }
        Err(error) => {
            let _ = ctx.ready.send(Err(error.clone()));
            SessionOutcome::failed(error)
        }
    }
}
