//! Modes and inputs: S23–S27.

use agent_glue::{ReconnectStrategy, SessionEvent};
use ctx_model::Message;
use gemini_fake::Family;
use gemini_transport::wire::{ClientMessage, RealtimeInput};
use session_sim::{Pair, Profile};

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S23",
            title: "transparent mode (Vertex): what the index says was not consumed is replayed, once",
            body: s23,
            // ReplayAlways re-sends the whole history onto the resumed session; SkipReplay
            // sends nothing it sent before, so the unconsumed messages are lost.
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S24",
            title: "transparent requested on the Developer API: not sent, basic resumption, one warning",
            body: s24,
            // The warning is the default policy's note; the legacy policies say nothing.
            exposes: &[],
        },
        Scenario {
            id: "S25",
            title: "user audio during the gap: buffered and sent after the resume, or dropped and reported",
            body: s25,
            // The microphone's path is the shell's, whatever the policy; ReplayAlways still
            // duplicates the history it replays.
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S26",
            title: "generate_reply pending across a restart: issued once on the new connection",
            body: s26,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S27",
            title: "no duplicated speech after a fresh seed: the seed asks for no reply",
            body: s27,
            // Both seed everything on 3.1 too, where a typed turn goes as clientContent: 1007.
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
    ]
}

#[test]
fn s23_transparent_mode() {
    check("S23");
}

#[test]
fn s24_transparent_on_the_developer_api() {
    check("S24");
}

#[test]
fn s25_user_audio_during_the_gap() {
    check("S25");
}

#[test]
fn s26_generate_reply_across_a_restart() {
    check("S26");
}

#[test]
fn s27_no_duplicated_speech_after_a_fresh_seed() {
    check("S27");
}

// ---------------------------------------------------------------------------------------------
// S23

/// A Vertex profile with transparent resumption, handles `lag` messages behind.
fn transparent(family: Family, lag: u64) -> Profile {
    Profile {
        vertex: true,
        transparent: true,
        handle_lag: lag,
        ..profile(family)
    }
}

/// Appends `n` notes as silent history, one message each, named `{tag} k`.
fn notes(pair: &mut Pair, tag: &str, n: usize) -> Outcome {
    for k in 0..n {
        let (ctx, version) = appended(
            pair,
            vec![Message::user(format!("{tag}-{k}"), format!("{tag} {k}")).into()],
        )?;
        pair.update_chat_ctx(ctx, version).map_err(err)?;
    }
    Ok(())
}

/// The text of every frame of connection `k` after its setup that carries a note of `tag`.
fn notes_on(pair: &Pair, k: usize, tag: &str) -> Vec<String> {
    pair.server()
        .connections()
        .get(k)
        .map(|c| {
            c.frames
                .iter()
                .skip(1)
                .filter(|f| f.raw.contains(&format!("{tag} ")))
                .map(|f| f.raw.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// S23: on Vertex with transparent resumption every handle says exactly which client message
/// it consumed last (`lastConsumedClientMessageIndex`), here `lag` messages behind. Many
/// silent appends, then a reset: the session resumes from the newest handle and replays
/// exactly the messages after its index (at most `lag` of them, however many were sent: the
/// buffer of unconsumed messages stays bounded), once. The new connection numbers its
/// messages afresh: a second round of appends and a reset on it is replayed as exactly.
fn s23(policy: PolicyKind) -> Outcome {
    each_case(
        [(Family::Gemini25, 2), (Family::Gemini38, 1)],
        |(family, lag)| s23_on(policy, family, lag),
    )
}

fn s23_on(policy: PolicyKind, family: Family, lag: u64) -> Outcome {
    let mut pair = open_with(transparent(family, lag), policy.fast(), |b| b)?;
    let setup = setup_of(&pair.server().connections()[0]);
    ensure_eq(
        "transparent in the setup",
        setup["setup"]["sessionResumption"]["transparent"].as_bool(),
        Some(true),
    )?;
    barrier(&mut pair, "one")?;
    let mut expected = strings(&["user: one", "model: echo: one"]);
    let lag = usize::try_from(lag).map_err(err)?;
    for (round, tag) in ["first", "second"].into_iter().enumerate() {
        let n = 12;
        notes(&mut pair, tag, n)?;
        // Every note reached the server; its newest handle consumed all but the last `lag`.
        pair.until_server("the notes on the server", WAIT, |s| {
            s.inspect(|v| {
                v.latest_session().is_some_and(|s| {
                    s.context_texts()
                        .iter()
                        .any(|t| t == &format!("{tag} {}", n - 1))
                })
            })
        })?;
        let newest = last_handle_on(pair.server(), round).ok_or("no handle")?;
        pair.faults().drop_connections();
        let report = reconnected(&mut pair)?;
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
        let connections = pair.server().connections();
        ensure_eq("connections", connections.len(), round + 2)?;
        ensure_eq(
            "resumed from",
            connections[round + 1].resumed_from.clone(),
            Some(newest),
        )?;
        barrier(&mut pair, &format!("after {tag}"))?;
        // The replay: the notes after the index, in order, and nothing the handle holds.
        let replayed = notes_on(&pair, round + 1, tag);
        let carried = |k: usize| {
            replayed
                .iter()
                .filter(|f| f.contains(&format!("\"{tag} {k}\"")))
                .count()
        };
        ensure(
            (0..n).all(|k| carried(k) == usize::from(k >= n - lag)),
            || format!("replayed {replayed:?}; only the last {lag} notes were not consumed"),
        )?;
        expected.extend((0..n).map(|k| format!("user: {tag} {k}")));
        expected.extend([
            format!("user: after {tag}"),
            format!("model: echo: after {tag}"),
        ]);
        contexts_are(&pair, &expected)?;
    }
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 2)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S24

/// S24: the application asks for transparent resumption on the Developer API, which does not
/// offer it (the service refuses the setup with 1007). No setup carries it, the session
/// resumes with basic resumption after a reset, and the application is told once.
fn s24(policy: PolicyKind) -> Outcome {
    let requested = Profile {
        transparent: true,
        ..profile(Family::Gemini25)
    };
    let mut pair = open_with(requested, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    barrier(&mut pair, "two")?;
    for conn in pair.server().connections() {
        let setup = setup_of(&conn);
        ensure(
            setup["setup"]["sessionResumption"]
                .get("transparent")
                .is_none(),
            || {
                format!(
                    "connection {} asked for transparent resumption: {setup}",
                    conn.id
                )
            },
        )?;
    }
    ensure(
        pair.server().connections()[1].resumed_from.is_some(),
        || "the second connection did not resume".into(),
    )?;
    pair.drain();
    let told = warnings(&pair)
        .iter()
        .filter(|w| w.contains("transparent"))
        .count();
    ensure_eq("warnings about transparent resumption", told, 1)?;
    contexts_are(
        &pair,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
        ],
    )?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S25

/// An AUDIO profile (transcription on, automatic activity detection).
fn speaking(family: Family) -> Profile {
    Profile {
        audio: true,
        ..profile(family)
    }
}

/// 16 kHz PCM16: `ms` of a tone well above the fake's voice threshold, or of silence.
fn pcm(ms: u64, voiced: bool) -> Vec<u8> {
    let samples = usize::try_from(ms * 16).unwrap_or(0);
    let mut out = Vec::with_capacity(samples * 2);
    for k in 0..samples {
        let phase = (k % 36) as f64 / 36.0 * std::f64::consts::TAU;
        let sample = if voiced {
            (phase.sin() * 8_000.0) as i16
        } else {
            0
        };
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// The microphone in real time: `voice_ms` of speech then `silence_ms` of silence, pushed in
/// 40 ms pieces, each when it is recorded. Returns the bytes pushed.
fn speak(pair: &mut Pair, voice_ms: u64, silence_ms: u64) -> usize {
    let mut pushed = 0;
    for (ms, voiced) in [(voice_ms, true), (silence_ms, false)] {
        let mut left = ms;
        while left > 0 {
            let piece = left.min(40);
            let chunk = pcm(piece, voiced);
            pushed += chunk.len();
            pair.push_audio(&chunk);
            pair.run_for(piece);
            left -= piece;
        }
    }
    pushed
}

/// Bytes of microphone audio connection `k` received (the fake's own records).
fn audio_bytes_on(pair: &Pair, k: usize) -> usize {
    pair.server()
        .connections()
        .get(k)
        .map(|c| {
            c.frames
                .iter()
                .filter_map(|f| match f.decode() {
                    Ok(ClientMessage::RealtimeInput(RealtimeInput::Audio(blob))) => {
                        Some(blob.data.len())
                    }
                    _ => None,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The spoken user turns in the latest server session's context (as heard, or seeded as
/// their transcript).
fn spoken_turns(pair: &Pair) -> usize {
    s_entries(pair.server())
        .iter()
        .filter(|e| e.starts_with("user: [audio"))
        .count()
}

/// Audio the application was told was dropped, in bytes of 16 kHz PCM16.
fn reported_dropped(pair: &Pair) -> usize {
    pair.events()
        .iter()
        .filter_map(|(_, e)| match e {
            SessionEvent::AudioDropped { duration } => {
                Some((duration.as_secs_f64() * 32_000.0).round() as usize)
            }
            _ => None,
        })
        .sum()
}

/// S25: the socket is reset and the dials are refused while the user speaks. The shell keeps
/// what the microphone delivers meanwhile (up to its 2 s bound, the oldest dropped and
/// reported beyond it) and sends it right after the new connection's plan: the server hears
/// one utterance, answers it once, and every byte was received or reported, none twice.
fn s25(policy: PolicyKind) -> Outcome {
    each_case([(600, 700), (2_300, 700)], |(voice, silence)| {
        s25_on(policy, voice, silence)
    })
}

fn s25_on(policy: PolicyKind, voice: u64, silence: u64) -> Outcome {
    let mut pair = open_with(speaking(Family::Gemini25), policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().refuse_upgrades(1_000, 503);
    pair.faults().drop_connections();
    reconnecting(&mut pair)?;
    let pushed = speak(&mut pair, voice, silence);
    ensure_eq(
        "connections while the user spoke",
        pair.server().connections().len(),
        1,
    )?;
    pair.faults().refuse_upgrades(0, 503);
    reconnected(&mut pair)?;
    until(&mut pair, "the transcript of the utterance", |e| {
        matches!(e, SessionEvent::InputTranscript { finished: true, .. })
    })?;
    turn_complete(&mut pair, "the answer to the utterance")?;
    barrier(&mut pair, "two")?;
    let received = audio_bytes_on(&pair, 1);
    let dropped = reported_dropped(&pair);
    let bound = 2 * 32_000;
    ensure(received <= bound, || {
        format!("{received} bytes sent after the gap, over the 2 s bound")
    })?;
    ensure(
        received + dropped + 1 >= pushed && received + dropped <= pushed + 1,
        || {
            format!(
                "pushed {pushed} bytes in the gap: {received} received, {dropped} reported dropped"
            )
        },
    )?;
    ensure_eq("audio reported dropped", dropped > 0, pushed > bound)?;
    ensure_eq("spoken turns on the server", spoken_turns(&pair), 1)?;
    answers_once(pair.server())?;
    l_equals_s(&pair)?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S26

/// How the connection is replaced in S26.
#[derive(Clone, Copy, Debug)]
enum Replaced {
    /// A tool-set change on 2.5: only a new `setup` carries it.
    Restart,
    /// A reset while the request waits (it is made between `Reconnecting` and `Reconnected`).
    Drop,
}

/// S26: `generate_reply` while the connection is being replaced: the request is not lost with
/// the old connection nor sent twice; the new connection carries it once and the model
/// answers it once (or the command fails, which the application sees).
fn s26(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Replaced::Restart, Some("say hello")),
            (Replaced::Restart, None),
            (Replaced::Drop, Some("say hello")),
        ],
        |(replaced, instructions)| s26_on(policy, replaced, instructions),
    )
}

fn s26_on(policy: PolicyKind, replaced: Replaced, instructions: Option<&str>) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| {
        b.tools(vec![weather_tool()])
    })?;
    barrier(&mut pair, "one")?;
    let requested = match replaced {
        Replaced::Restart => {
            pair.update_tools(vec![
                weather_tool(),
                gemini_transport::wire::FunctionDeclaration::new("get_time", "The time")
                    .with_behavior(gemini_transport::wire::Behavior::Blocking),
            ])
            .map_err(err)?;
            pair.generate_reply(instructions)
        }
        Replaced::Drop => {
            pair.faults().drop_connections();
            reconnecting(&mut pair)?;
            pair.generate_reply(instructions)
        }
    };
    reconnected(&mut pair)?;
    if requested.is_ok() {
        turn_complete(&mut pair, "the answer to the reply request")?;
    }
    barrier(&mut pair, "two")?;
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 2)?;
    // The request: on the new connection, once, and on no other.
    let asks = |k: usize| {
        connections[k]
            .frames
            .iter()
            .skip(1)
            .filter(|f| f.kind == "clientContent" || f.kind == "realtimeInput")
            .filter(|f| !f.raw.contains("\"two\"") && !f.raw.contains("\"one\""))
            .count()
    };
    if requested.is_ok() {
        ensure_eq("reply requests on the old connection", asks(0), 0)?;
        ensure_eq("reply requests on the new connection", asks(1), 1)?;
        // one, the reply, two.
        ensure_eq("generations", generations(pair.server()), 3)?;
    }
    if let Some(text) = instructions.filter(|_| requested.is_ok()) {
        ensure_eq(
            "the request in S",
            occurrences_in_s(pair.server(), &format!("user: {text}")),
            1,
        )?;
    }
    answers_once(pair.server())?;
    l_equals_s(&pair)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S27

/// S27: an AUDIO session with history and a spoken exchange, no handle ever issued, then a
/// reset: the fresh session is seeded with everything, and the seed asks for no reply (the
/// model does not speak its last answer again): no audio, no transcript and no generation
/// until the user's next turn, on 2.5, 3.1 and 3.8.
fn s27(policy: PolicyKind) -> Outcome {
    each_case(
        [Family::Gemini25, Family::Gemini31, Family::Gemini38],
        |family| s27_on(policy, family),
    )
}

fn s27_on(policy: PolicyKind, family: Family) -> Outcome {
    let history = ctx_model::ChatContext::builder()
        .user("h1", "my name is Ada")
        .model("h2", "nice to meet you Ada")
        .build()
        .map_err(err)?;
    let mut pair = open_with(speaking(family), policy.fast(), |b| {
        b.initial_context(history).faults(|f| f.withhold_handles())
    })?;
    speak(&mut pair, 600, 700);
    turn_complete(&mut pair, "the answer to the utterance")?;
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    let at = pair.now();
    // Quiet while nobody speaks.
    pair.run_for(2_000);
    let spoken_after: Vec<String> = pair
        .events()
        .iter()
        .filter(|(t, _)| *t >= at)
        .filter(|(_, e)| {
            matches!(
                e,
                SessionEvent::Audio { .. }
                    | SessionEvent::OutputTranscript { .. }
                    | SessionEvent::TurnComplete
            )
        })
        .map(|(t, e)| format!("{t} ms {e:?}"))
        .take(3)
        .collect();
    ensure(spoken_after.is_empty(), || {
        format!("the model spoke after the seed: {spoken_after:?}")
    })?;
    ensure_eq(
        "generations of the seeded session",
        generations(pair.server()),
        0,
    )?;
    pair.faults().release_handles();
    barrier(&mut pair, "again")?;
    ensure_eq(
        "generations of the seeded session",
        generations(pair.server()),
        1,
    )?;
    ensure_eq("spoken turns on the server", spoken_turns(&pair), 1)?;
    l_equals_s(&pair)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}
