//! Schedules: a profile (model family, surface, modality, network) and a list of timed steps
//! (the application's operations and the faults), all drawn from one seed.

use std::fmt;

use gemini_fake::Family;

use crate::rng::Rng;

/// What a schedule runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The model family the fake serves.
    pub family: Family,
    /// Vertex AI surface (else the Developer API).
    pub vertex: bool,
    /// The client asks for transparent resumption (Vertex only).
    pub transparent: bool,
    /// AUDIO modality with transcription (else TEXT).
    pub audio: bool,
    /// The fake issues handles this many client messages late.
    pub handle_lag: u64,
    /// One-way network latency, in ms.
    pub latency: u64,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{} {} lag={} latency={}ms",
            self.family.short_name(),
            if self.vertex {
                "vertex"
            } else {
                "developer-api"
            },
            if self.transparent { " transparent" } else { "" },
            if self.audio { "audio" } else { "text" },
            self.handle_lag,
            self.latency
        )
    }
}

/// One operation of the application or one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A typed user turn.
    Text,
    /// A typed user turn naming tool `k` (0 or 1): the model calls it.
    TextTool(u8),
    /// `n` items appended as history (a user note, or a user and a model note).
    Append(u8),
    /// `update_chat_ctx` with a context derived from the snapshot taken `age` operations ago
    /// plus a note: refused as a conflict (then appended) unless nothing changed since.
    StaleUpdate(u8),
    /// `update_chat_ctx` editing the text of the oldest user message.
    Edit,
    /// `generate_reply`, with instructions or not.
    GenerateReply(bool),
    /// `update_instructions`.
    Instructions,
    /// `update_tools` (alternating tool sets, both naming the tools).
    Tools,
    /// `interrupt()`.
    Interrupt,
    /// The application answers every tool call it has not answered yet, now.
    AnswerCalls,
    /// Speech of this many tens of ms, then silence (automatic activity detection).
    Speech(u8),
    /// `end_audio_stream()`.
    AudioStreamEnd,
    /// The server drops the connection (TCP reset).
    Drop,
    /// The server closes with this code (1011, 1000, 1001).
    Close(u16),
    /// The server sends `goAway` with this many seconds left.
    GoAway(u8),
    /// The next resumed setup is refused (1007, unknown handle).
    RefuseResume,
    /// Every handle expires.
    ExpireHandles,
    /// No new handle is issued until released.
    WithholdHandles,
    /// Handles flow again.
    ReleaseHandles,
    /// The next `n` dials are refused (HTTP 503).
    RefuseDials(u8),
    /// The server's frames are held for this many tens of ms (a stalled path).
    Stall(u8),
    /// The server stops reading the current connection for this many seconds: the client's
    /// socket takes no more writes (past the write timeout, the session gives the connection
    /// up and reports the audio it had written).
    PeerStopsReading(u8),
    /// The server answers pings on the current connection this many seconds late (past the
    /// keepalive timeout, the session gives the connection up).
    SlowPongs(u8),
}

impl Op {
    /// Whether this is a fault (removed first when shrinking is not the point).
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Op::Drop
                | Op::Close(_)
                | Op::GoAway(_)
                | Op::RefuseResume
                | Op::ExpireHandles
                | Op::WithholdHandles
                | Op::ReleaseHandles
                | Op::RefuseDials(_)
                | Op::Stall(_)
                | Op::PeerStopsReading(_)
                | Op::SlowPongs(_)
        )
    }
}

/// One timed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Virtual ms after the previous step.
    pub gap: u64,
    /// What happens.
    pub op: Op,
}

/// A whole schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// What it runs against.
    pub profile: Profile,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The schedule of `seed`: 8 to 40 steps.
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = Rng::stream(seed, 1);
        let family = match rng.below(3) {
            0 => Family::Gemini25,
            1 => Family::Gemini31,
            _ => Family::Gemini38,
        };
        let vertex = rng.chance(40);
        let transparent = vertex && rng.chance(50);
        let audio = rng.chance(30);
        let handle_lag = if rng.chance(25) { rng.range(1, 2) } else { 0 };
        let latency = rng.range(1, 20);
        let profile = Profile {
            family,
            vertex,
            transparent,
            audio,
            handle_lag,
            latency,
        };
        let count = rng.range(8, 40);
        let steps = (0..count)
            .map(|_| Step {
                gap: gap(&mut rng),
                op: op(&mut rng, audio),
            })
            .collect();
        Schedule {
            seed,
            profile,
            steps,
        }
    }

    /// The schedule with only the steps at `keep` (indices into `steps`).
    pub fn keep(&self, keep: &[usize]) -> Schedule {
        Schedule {
            seed: self.seed,
            profile: self.profile,
            steps: keep
                .iter()
                .filter_map(|&k| self.steps.get(k).copied())
                .collect(),
        }
    }
}

fn gap(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=3 => rng.range(0, 5),
        4..=7 => rng.range(5, 120),
        _ => rng.range(120, 2_500),
    }
}

fn op(rng: &mut Rng, audio: bool) -> Op {
    let ops: &[(u64, Op)] = &[
        (14, Op::Text),
        (8, Op::TextTool(0)),
        (4, Op::TextTool(1)),
        (5, Op::Append(1)),
        (3, Op::Append(2)),
        (3, Op::StaleUpdate(1)),
        (2, Op::StaleUpdate(3)),
        (1, Op::Edit),
        (3, Op::GenerateReply(true)),
        (3, Op::GenerateReply(false)),
        (3, Op::Instructions),
        (2, Op::Tools),
        (3, Op::Interrupt),
        (2, Op::AnswerCalls),
        (if audio { 6 } else { 0 }, Op::Speech(0)),
        (if audio { 1 } else { 0 }, Op::AudioStreamEnd),
        (5, Op::Drop),
        (2, Op::Close(1011)),
        (1, Op::Close(1000)),
        (1, Op::Close(1001)),
        (4, Op::GoAway(0)),
        (2, Op::RefuseResume),
        (1, Op::ExpireHandles),
        (2, Op::WithholdHandles),
        (2, Op::ReleaseHandles),
        (2, Op::RefuseDials(0)),
        (2, Op::Stall(0)),
        (1, Op::PeerStopsReading(0)),
        (1, Op::SlowPongs(0)),
    ];
    match rng.weighted(ops).unwrap_or(Op::Text) {
        Op::Speech(_) => Op::Speech(u8::try_from(rng.range(30, 150)).unwrap_or(60)),
        Op::GoAway(_) => Op::GoAway(u8::try_from(rng.range(1, 20)).unwrap_or(5)),
        Op::RefuseDials(_) => Op::RefuseDials(u8::try_from(rng.range(1, 3)).unwrap_or(1)),
        Op::Stall(_) => Op::Stall(u8::try_from(rng.range(5, 150)).unwrap_or(20)),
        Op::PeerStopsReading(_) => {
            Op::PeerStopsReading(u8::try_from(rng.range(2, 20)).unwrap_or(8))
        }
        Op::SlowPongs(_) => Op::SlowPongs(u8::try_from(rng.range(8, 30)).unwrap_or(12)),
        other => other,
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} ({})", self.seed, self.profile)?;
        for (k, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {k:>2}. +{:>4} ms  {:?}", step.gap, step.op)?;
        }
        Ok(())
    }
}
