//! Sessions on `agent_glue::LiveSession`, through its public API only: `connect`,
//! `push_audio` and the event stream.

use agent_glue::{LiveSession, SessionEvent, SessionEvents};
use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use crate::Pace;
use crate::audio::{CHUNK, microphone_chunk};
use crate::run::{DRAIN, Plan, SessionCtx, SessionOutcome};

async fn connect(ctx: &SessionCtx) -> Result<(LiveSession, SessionEvents), String> {
    let _dial = ctx.dials.acquire().await.map_err(|e| e.to_string())?;
    LiveSession::builder(ctx.endpoint.clone(), ctx.args.model.clone())
        // Frames of 20 ms, as the bare clients send.
        .audio_chunk(CHUNK)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Counts one event; an error if it says the session broke.
fn on_event(event: SessionEvent, outcome: &mut SessionOutcome) -> Result<(), String> {
    match event {
        SessionEvent::Audio { .. } => outcome.received += 1,
        SessionEvent::Reconnecting { .. } => return Err("the session reconnected".to_owned()),
        SessionEvent::Closed { .. } => return Err("the session closed".to_owned()),
        SessionEvent::AudioDropped { .. } => return Err("the session dropped audio".to_owned()),
        _ => {}
    }
    Ok(())
}

/// One streaming session.
pub(crate) async fn session(mut ctx: SessionCtx) -> SessionOutcome {
    let (session, mut events) = match connect(&ctx).await {
        Ok(connected) => {
            let _ = ctx.ready.send(Ok(()));
            connected
        }
        Err(error) => {
            let _ = ctx.ready.send(Err(error.clone()));
            return SessionOutcome::failed(error);
        }
    };
    let mut outcome = SessionOutcome {
        connected: true,
        ..SessionOutcome::default()
    };
    let Some(plan) = ctx.plan().await else {
        return outcome;
    };
    let streamed = match ctx.args.pace {
        Pace::Realtime => realtime(&ctx, plan, &session, &mut events, &mut outcome).await,
        Pace::Afap => afap(&ctx, plan, &session, &mut events, &mut outcome).await,
    };
    if let Err(error) = streamed {
        outcome.error = Some(error);
    }
    // Keep reading while the server's stream runs out, then close; the stream ends after the
    // session's `Closed` event.
    let drain_end = Instant::now() + DRAIN;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if let Err(error) = on_event(event, &mut outcome) {
                        outcome.error.get_or_insert(error);
                    }
                }
                None => break,
            },
            () = sleep_until(drain_end) => break,
        }
    }
    if let Err(error) = session.close().await {
        outcome.error.get_or_insert(format!("close: {error}"));
    }
    while let Some(event) = events.recv().await {
        if let SessionEvent::Audio { .. } = event {
            outcome.received += 1;
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
    events: &mut SessionEvents,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let chunk = Bytes::from(microphone_chunk());
    let first = plan.first_tick(ctx.index, ctx.args.sessions);
    let end = plan.end();
    let mut ticks = interval_at(first, CHUNK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    outcome.due = ticks_between(first, end);
    loop {
        tokio::select! {
            at = ticks.tick() => {
                if at >= end {
                    return Ok(());
                }
                outcome.lateness.record(Instant::now().saturating_duration_since(at));
                session
                    .push_audio(chunk.clone())
                    .map_err(|e| format!("push_audio: {e}"))?;
                outcome.sent += 1;
            }
            event = events.recv() => match event {
                Some(event) => on_event(event, outcome)?,
                None => return Err("the event stream ended".to_owned()),
            },
        }
    }
}

/// As fast as the session takes them: `batch` chunks handed over in one call (the session
/// cuts them into 20 ms frames and flushes once, as `bare-coalesce` does), with the async push
/// that waits while the session's backlog is at its bound (the socket is slower than this
/// producer), as a source that is not real time should.
async fn afap(
    ctx: &SessionCtx,
    plan: Plan,
    session: &LiveSession,
    events: &mut SessionEvents,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let chunk = microphone_chunk();
    let batch = Bytes::from(chunk.repeat(ctx.args.batch));
    let end = plan.end();
    sleep_until(plan.start).await;
    while Instant::now() < end {
        session
            .push_audio_wait(batch.clone())
            .await
            .map_err(|e| format!("push_audio_wait: {e}"))?;
        outcome.sent += ctx.args.batch as u64;
        while let Some(event) = events.try_recv() {
            on_event(event, outcome)?;
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Ticks of a 20 ms grid from `first` (included) to `end` (excluded).
pub(crate) fn ticks_between(first: Instant, end: Instant) -> u64 {
    let span = end.saturating_duration_since(first).as_nanos();
    let period = CHUNK.as_nanos();
    u64::try_from(span.div_ceil(period)).unwrap_or(u64::MAX)
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
