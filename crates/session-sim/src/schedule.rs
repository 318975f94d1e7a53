//! Schedules: a profile (model family, surface, modality, network, policy, the application's
//! habits) and a list of timed steps (the application's operations and the faults), all drawn
//! from one seed.

use std::fmt;

use gemini_fake::Family;

use crate::rng::Rng;

/// The resume policy a schedule's session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// `DefaultPolicy` as the builder makes it (edits of delivered items reseed).
    #[default]
    Default,
    /// `DefaultPolicy` with `EditHandling::Report` (edits of delivered items are reported).
    ReportEdits,
    /// `resume_policy::legacy::ReplayAlways`: a mutant the checks must catch.
    ReplayAlways,
    /// `resume_policy::legacy::SkipReplay`: a mutant the checks must catch.
    SkipReplay,
}

impl Policy {
    /// Whether this is a `DefaultPolicy` (the invariant must hold; the mutants must fail it).
    pub fn is_default(self) -> bool {
        matches!(self, Policy::Default | Policy::ReportEdits)
    }

    /// The name `--policy` takes.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Default => "default",
            Policy::ReportEdits => "report-edits",
            Policy::ReplayAlways => "replay-always",
            Policy::SkipReplay => "skip-replay",
        }
    }

    /// The policy named `name` (see [`Policy::name`]).
    pub fn from_name(name: &str) -> Option<Policy> {
        [
            Policy::Default,
            Policy::ReportEdits,
            Policy::ReplayAlways,
            Policy::SkipReplay,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

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
    /// The server's automatic activity detection is off (AUDIO only): the application
    /// brackets utterances with `activityStart`/`activityEnd` ([`Op::ActivityStart`],
    /// [`Op::ActivityEnd`]).
    pub manual_activity: bool,
    /// The resume policy.
    pub policy: Policy,
    /// The application calls `interrupt()` as some answers start (when the first output of a
    /// model turn arrives): this share of them, in percent.
    pub interrupt_answers: u8,
    /// A connection age limit short enough for a schedule to meet, as `(rotate_after, max)`
    /// in virtual ms (`LiveSessionBuilder::connection_age`); `None`: the session's default
    /// (45 and 50 minutes), which no schedule reaches.
    pub age_limit: Option<(u64, u64)>,
    /// The application declares its tools non-blocking (without `behavior` on 3.8, whose
    /// default that is; `NON_BLOCKING` elsewhere, which 3.1 ignores) and answers with
    /// scheduled and interim results; else every declaration says `BLOCKING`.
    pub non_blocking: bool,
    /// Context window compression, small enough for a schedule to meet, as
    /// `(trigger_tokens, target_tokens)` (`LiveSessionBuilder::compression`, a sliding window):
    /// the server forgets its oldest turns; `None`: no compression (the context window is
    /// far beyond any schedule).
    pub compression: Option<(u64, u64)>,
    /// Two workers and a session store (`None`: one worker, no store): the session holds a
    /// lease with expiry on the store's clock, the workers' clocks drift, and the schedule
    /// kills ([`Op::Kill`]), drains ([`Op::Drain`]) and partitions ([`Op::Partition`]) the
    /// owner; the other worker takes the session over.
    pub fleet: Option<Fleet>,
}

/// Two workers sharing a session store (see [`Profile::fleet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    /// The lease's time-to-live, in ms (at least `MIN_LEASE_TTL`, a second).
    pub ttl: u64,
    /// How fast each worker's clock runs against the store's, in parts per million above or
    /// below (worker 0, worker 1).
    pub drift_ppm: [i32; 2],
    /// One-way latency to the store, in ms.
    pub store_latency: u64,
    /// How often the waiting worker tries to acquire the lease, in ms.
    pub poll: u64,
}

impl Profile {
    /// The `behavior` of the application's declarations.
    pub fn behavior(&self) -> Option<gemini_transport::wire::Behavior> {
        use gemini_transport::wire::Behavior;
        match (self.non_blocking, self.family) {
            (false, _) => Some(Behavior::Blocking),
            (true, Family::Gemini38 | Family::Gemini38ExtendedThinking) => None,
            (true, _) => Some(Behavior::NonBlocking),
        }
    }

    /// Whether the model talks on after a call (the family honours non-blocking calls).
    pub fn calls_non_blocking(&self) -> bool {
        self.non_blocking && self.family != Family::Gemini31
    }
}

impl Default for Profile {
    /// Gemini 2.5 on the Developer API, TEXT, no handle lag, 5 ms latency, automatic
    /// activity detection, the default policy, no reactive interrupts.
    fn default() -> Self {
        Self {
            family: Family::Gemini25,
            vertex: false,
            transparent: false,
            audio: false,
            handle_lag: 0,
            latency: 5,
            manual_activity: false,
            policy: Policy::Default,
            interrupt_answers: 0,
            age_limit: None,
            non_blocking: false,
            compression: None,
            fleet: None,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{} {}{} lag={} latency={}ms policy={}",
            self.family.short_name(),
            if self.vertex {
                "vertex"
            } else {
                "developer-api"
            },
            if self.transparent { " transparent" } else { "" },
            if self.audio { "audio" } else { "text" },
            if self.manual_activity {
                " manual-activity"
            } else {
                ""
            },
            self.handle_lag,
            self.latency,
            self.policy.name(),
        )?;
        if self.interrupt_answers > 0 {
            write!(f, " interrupts {}% of answers", self.interrupt_answers)?;
        }
        if let Some((after, max)) = self.age_limit {
            write!(f, " age limit {after}/{max}ms")?;
        }
        if self.non_blocking {
            write!(f, " non-blocking tools")?;
        }
        if let Some((trigger, target)) = self.compression {
            write!(f, " compression {trigger}/{target} tokens")?;
        }
        if let Some(fleet) = self.fleet {
            write!(
                f,
                " fleet ttl={}ms drift={:?}ppm store-latency={}ms poll={}ms",
                fleet.ttl, fleet.drift_ppm, fleet.store_latency, fleet.poll
            )?;
        }
        Ok(())
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
    /// Speech of this many tens of ms, then 700 ms of silence (which ends the utterance by
    /// automatic activity detection), pushed at once.
    Speech(u8),
    /// This many tens of ms of voiced audio, with no silence after it: the utterance goes on.
    Voice(u8),
    /// This many tens of ms of silence. Silence of 500 ms or more since the utterance's last
    /// voice ends the utterance by the fake's activity detection (its silence duration is
    /// 500 ms, its RMS threshold 500).
    Silence(u8),
    /// `end_audio_stream()`.
    AudioStreamEnd,
    /// `activity_start()` (manual activity detection).
    ActivityStart,
    /// `activity_end()` (manual activity detection): ends the utterance.
    ActivityEnd,
    /// The server drops the connection (TCP reset).
    Drop,
    /// The server closes with this code and the reason the service gives with it: 1011
    /// (internal error), 1000, 1001, and 1007 / 1008 / 1009 after setup (a payload refused:
    /// invalid argument, operation not supported, message too big).
    Close(u16),
    /// The server closes with 1007 `API key not valid. Please pass a valid API key.`
    /// (authentication: the session must end).
    AuthClose,
    /// The server closes with 1011 `You exceeded your current quota…` (quota: the session
    /// must end).
    QuotaClose,
    /// The server sends `goAway` with this many seconds left.
    GoAway(u8),
    /// The server closes as 3.8 does at 58:00 of a connection's age, whatever the session
    /// does: 1011 `Deadline expired …` and no `goAway`; `true`: the next resume of the session
    /// is refused with 1007, as reported after such closes (the session starts fresh).
    HardClose(bool),
    /// The next resumed setup is refused (1007, unknown handle).
    RefuseResume,
    /// One more setup (resumed or not; faults of this kind queue) is closed with this code
    /// (1007 invalid argument, 1008 not supported): a refused resume starts fresh, a refused
    /// fresh setup ends the session.
    RefuseSetup(u16),
    /// Every handle expires.
    ExpireHandles,
    /// No new handle is issued until released.
    WithholdHandles,
    /// Handles flow again.
    ReleaseHandles,
    /// The next `n` dials are refused (HTTP 503).
    RefuseDials(u8),
    /// The next dial is refused with this HTTP status (401, 403, 429: authentication or
    /// quota; the session must end).
    RefuseDial(u16),
    /// The server never answers the next `n` setups (the client's setup timeout ends each
    /// attempt).
    IgnoreSetups(u8),
    /// The server's frames are held for this many tens of ms (a stalled path).
    Stall(u8),
    /// The server stops reading the current connection for this many seconds: the client's
    /// socket takes no more writes (past the write timeout, the session gives the connection
    /// up and reports the audio it had written).
    PeerStopsReading(u8),
    /// The server answers pings on the current connection this many seconds late (8–60 s:
    /// within the keepalive timeout, 40 s, the session keeps the connection; past it, with no
    /// other frame from the server meanwhile, it gives the connection up).
    SlowPongs(u8),
    /// The worker that owns the session dies (its process is killed): its sockets reset,
    /// its lease runs out on the store's clock, and the other worker takes the session over
    /// from what was last saved ([`Profile::fleet`] only).
    Kill,
    /// The application hands the session off (`LiveSession::hand_off`: drain, close, final
    /// save, release); the other worker takes it over ([`Profile::fleet`] only).
    Drain,
    /// The owner cannot reach the store for this many tenths of a second: every call
    /// fails at once (`false`) or is never answered (`true`, until the keeper's bound). A
    /// partition longer than the lease's margin makes the owner give the session up, and the
    /// other worker takes it over ([`Profile::fleet`] only).
    Partition(u8, bool),
}

impl Op {
    /// Whether this pushes microphone audio (which comes in real time: a push starts when the
    /// one before it has been played out).
    pub fn is_audio(self) -> bool {
        matches!(self, Op::Speech(_) | Op::Voice(_) | Op::Silence(_))
    }

    /// Whether this is a fault.
    pub fn is_fault(self) -> bool {
        self.fault().is_some()
    }

    /// The fault's name in the statistics (`None` for the application's operations).
    pub fn fault(self) -> Option<&'static str> {
        Some(match self {
            Op::Drop => "drop",
            Op::Close(1000) => "close 1000",
            Op::Close(1001) => "close 1001",
            Op::Close(1007) => "close 1007 after setup",
            Op::Close(1008) => "close 1008 after setup",
            Op::Close(1009) => "close 1009 after setup",
            Op::Close(_) => "close 1011",
            Op::AuthClose => "auth close",
            Op::QuotaClose => "quota close",
            Op::GoAway(_) => "goAway",
            Op::HardClose(false) => "hard close",
            Op::HardClose(true) => "hard close, resume refused",
            Op::RefuseResume => "refused resume",
            Op::RefuseSetup(_) => "refused setup",
            Op::ExpireHandles => "expired handles",
            Op::WithholdHandles => "withheld handles",
            Op::ReleaseHandles => return None,
            Op::RefuseDials(_) => "dial refused 503",
            Op::RefuseDial(401) => "dial refused 401",
            Op::RefuseDial(403) => "dial refused 403",
            Op::RefuseDial(_) => "dial refused 429",
            Op::IgnoreSetups(_) => "setup never answered",
            Op::Stall(_) => "stall",
            Op::PeerStopsReading(_) => "peer stops reading",
            Op::SlowPongs(_) => "slow pongs",
            Op::Kill => "worker kill",
            Op::Drain => "hand-off (drain)",
            Op::Partition(_, false) => "store partition (calls fail)",
            Op::Partition(_, true) => "store partition (calls unanswered)",
            _ => return None,
        })
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

/// Whether [`Schedule::generate`] draws two workers and a store (on unless `--no-fleet`).
static FLEET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether [`Schedule::generate`] runs one schedule in five on two workers and a store, with
/// kills, hand-offs and store partitions (for this process; on by default, `--no-fleet` turns
/// it off).
pub fn draw_fleet(on: bool) {
    FLEET.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`Schedule::generate`] draws two workers and a store.
pub fn draws_fleet() -> bool {
    FLEET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether [`Schedule::generate`] runs every schedule on extended thinking.
static ONLY_EXTENDED_THINKING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Makes [`Schedule::generate`] run every schedule on gemini-3.8-live-extended-thinking (for
/// this process; `--only-extended-thinking`, to search its interleavings faster).
pub fn draw_only_extended_thinking(on: bool) {
    ONLY_EXTENDED_THINKING.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`Schedule::generate`] runs every schedule on extended thinking.
pub fn draws_only_extended_thinking() -> bool {
    ONLY_EXTENDED_THINKING.load(std::sync::atomic::Ordering::Relaxed)
}

impl Schedule {
    /// The schedule of `seed`: 8 to 200 steps (72% 8-24, 23% 25-80, 5% 81-200).
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = Rng::stream(seed, 1);
        let family = match rng.below(3) {
            0 => Family::Gemini25,
            1 => Family::Gemini31,
            _ => Family::Gemini38,
        };
        let vertex = rng.chance(40);
        let transparent = vertex && rng.chance(50);
        let audio = rng.chance(45);
        let handle_lag = if rng.chance(25) { rng.range(1, 2) } else { 0 };
        let latency = rng.range(1, 20);
        let manual_activity = audio && rng.chance(20);
        let policy = if rng.chance(15) {
            Policy::ReportEdits
        } else {
            Policy::Default
        };
        let interrupt_answers = if rng.chance(15) {
            u8::try_from(rng.range(20, 100)).unwrap_or(50)
        } else {
            0
        };
        // One schedule in four rotates for its connections' age (from 5 to 40 s, forced 2 to
        // 20 s later), drawn from a stream of its own so that the other draws of a seed stay
        // what they were.
        let mut ages = Rng::stream(seed, 5);
        let age_limit = ages.chance(25).then(|| {
            let after = ages.range(5_000, 40_000);
            (after, after + ages.range(2_000, 20_000))
        });
        // One 3.8 schedule in three runs on the extended-thinking variant, drawn from a
        // stream of its own (so the other draws of a seed stay what they were); every
        // schedule with `--only-extended-thinking`.
        let only = ONLY_EXTENDED_THINKING.load(std::sync::atomic::Ordering::Relaxed);
        let family = if only || (family == Family::Gemini38 && Rng::stream(seed, 8).chance(33)) {
            Family::Gemini38ExtendedThinking
        } else {
            family
        };
        // Half the schedules declare non-blocking tools, drawn from a stream of their own
        // (extended thinking's tools are non-blocking only).
        let non_blocking =
            family == Family::Gemini38ExtendedThinking || Rng::stream(seed, 6).chance(50);
        // One schedule in four compresses its context, with a window small enough for the
        // server to forget turns within the schedule (its own stream again).
        let mut window = Rng::stream(seed, 9);
        let compression = window.chance(25).then(|| {
            let trigger = window.range(20, 200);
            (trigger, trigger / 2)
        });
        // One schedule in five runs on two workers and a store, drawn (with
        // its kills, drains and partitions) from a stream of its own, so the other draws of a
        // seed stay.
        let mut workers = Rng::stream(seed, 10);
        let fleet = (draws_fleet() && workers.chance(20)).then(|| Fleet {
            ttl: workers.range(1_000, 4_000),
            drift_ppm: [0, 1]
                .map(|_| i32::try_from(workers.range(0, 200_000)).unwrap_or(0) - 100_000),
            store_latency: workers.range(1, 15),
            poll: workers.range(100, 1_000),
        });
        let profile = Profile {
            fleet,
            compression,
            non_blocking,
            family,
            vertex,
            transparent,
            audio,
            handle_lag,
            latency,
            manual_activity,
            policy,
            interrupt_answers,
            age_limit,
        };
        // Most schedules short, some long (the mean, about 31 steps, keeps CI's 100,000 within
        // the time 24-step schedules took before the simulator widened).
        let count = usize::try_from(match rng.below(100) {
            0..=71 => rng.range(8, 24),
            72..=94 => rng.range(25, 80),
            // Room for the three steps of a terminal fault.
            _ => rng.range(81, 197),
        })
        .unwrap_or(40);
        let mut steps = Vec::with_capacity(count + 8);
        while steps.len() < count {
            if audio && rng.chance(12) {
                utterance(&mut rng, manual_activity, &mut steps);
            } else {
                single(&mut rng, audio, &mut steps);
            }
        }
        steps.truncate(count);
        // One schedule in eight meets a fault that ends the session (authentication, quota,
        // a refused fresh setup), at a random step.
        if rng.chance(12) {
            let at = usize::try_from(rng.below(count as u64)).unwrap_or(0);
            let mut terminal = Vec::new();
            match rng.below(4) {
                0 => terminal.push(Op::AuthClose),
                1 => terminal.push(Op::QuotaClose),
                2 => {
                    let status = [401, 403, 429][usize::try_from(rng.below(3)).unwrap_or(0)];
                    terminal.push(Op::RefuseDial(status));
                    terminal.push(trigger(&mut rng));
                }
                _ => {
                    // A resume refused starts fresh; the fresh setup refused too ends it.
                    let code = if rng.chance(50) { 1007 } else { 1008 };
                    terminal.push(Op::RefuseSetup(code));
                    terminal.push(Op::RefuseSetup(code));
                    terminal.push(trigger(&mut rng));
                }
            }
            for (k, op) in terminal.into_iter().enumerate() {
                let gap = if k == 0 {
                    gap(&mut rng)
                } else {
                    rng.range(0, 20)
                };
                steps.insert((at + k).min(steps.len()), Step { gap, op });
            }
        }
        if fleet.is_some() {
            // One to three takeovers or partitions, anywhere in the schedule.
            for _ in 0..workers.range(1, 3) {
                let op = match workers.below(10) {
                    0..=3 => Op::Kill,
                    4..=6 => Op::Drain,
                    _ => Op::Partition(
                        u8::try_from(workers.range(2, 60)).unwrap_or(10),
                        workers.chance(50),
                    ),
                };
                let at = usize::try_from(workers.below(steps.len() as u64 + 1)).unwrap_or(0);
                let gap = match workers.below(3) {
                    0 => workers.range(0, 50),
                    1 => workers.range(50, 1_000),
                    _ => workers.range(1_000, 5_000),
                };
                steps.insert(at.min(steps.len()), Step { gap, op });
            }
        }
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

/// A duration in tens of ms, a multiple of 40 ms (the audio frame) between `lo` and `hi` tens.
fn tens(rng: &mut Rng, lo: u64, hi: u64) -> u8 {
    u8::try_from(rng.range(lo / 4, hi / 4) * 4).unwrap_or(40)
}

/// A fault that makes the session dial: a drop or a transient close.
fn trigger(rng: &mut Rng) -> Op {
    if rng.chance(60) {
        Op::Drop
    } else {
        Op::Close(1011)
    }
}

/// One operation or fault, drawn alone; dial faults come with a fault that makes the session
/// dial.
fn single(rng: &mut Rng, audio: bool, steps: &mut Vec<Step>) {
    let op = op(rng, audio, false);
    steps.push(Step { gap: gap(rng), op });
    if matches!(op, Op::RefuseDials(_) | Op::IgnoreSetups(_)) && rng.chance(70) {
        steps.push(Step {
            gap: rng.range(0, 20),
            op: trigger(rng),
        });
    }
}

/// An utterance in pieces: voice pushed in real time, the application's operations (and
/// faults) between the pieces, ended by silence, `audioStreamEnd`, or (manual detection)
/// `activityEnd`.
fn utterance(rng: &mut Rng, manual: bool, steps: &mut Vec<Step>) {
    if manual {
        steps.push(Step {
            gap: gap(rng),
            op: Op::ActivityStart,
        });
    }
    steps.push(Step {
        gap: if manual { rng.range(0, 40) } else { gap(rng) },
        op: Op::Voice(tens(rng, 4, 60)),
    });
    let pieces = rng.range(1, 6);
    for _ in 0..pieces {
        let piece = match rng.below(10) {
            0..=4 => op(rng, true, true),
            5..=7 => Op::Voice(tens(rng, 4, 48)),
            // A pause too short to end the utterance.
            _ => Op::Silence(tens(rng, 4, 24)),
        };
        steps.push(Step {
            gap: rng.range(0, 200),
            op: piece,
        });
    }
    let end = match (manual, rng.below(10)) {
        (true, 0) => Op::AudioStreamEnd,
        (true, _) => Op::ActivityEnd,
        // Sometimes no end: the next operations come after an utterance left open.
        (false, 0) => return,
        (false, 1..=3) => Op::AudioStreamEnd,
        (false, _) => Op::Silence(tens(rng, 60, 100)),
    };
    steps.push(Step {
        gap: rng.range(0, 200),
        op: end,
    });
}

/// One operation or fault. `during` (within an utterance): the operations the application
/// performs while the user speaks, and faults less often.
fn op(rng: &mut Rng, audio: bool, during: bool) -> Op {
    let faults = if during { 0 } else { 1 };
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
        (if during { 6 } else { 2 }, Op::AnswerCalls),
        (if audio && !during { 6 } else { 0 }, Op::Speech(0)),
        (if audio && !during { 1 } else { 0 }, Op::AudioStreamEnd),
        (if during { 2 } else { 5 }, Op::Drop),
        (2 * faults + 1, Op::Close(1011)),
        (faults, Op::Close(1000)),
        (faults, Op::Close(1001)),
        (faults, Op::Close(1007)),
        (faults, Op::Close(1008)),
        (faults, Op::Close(1009)),
        (if during { 2 } else { 4 }, Op::GoAway(0)),
        (faults, Op::HardClose(false)),
        (faults, Op::HardClose(true)),
        (2 * faults, Op::RefuseResume),
        (faults, Op::ExpireHandles),
        (2 * faults, Op::WithholdHandles),
        (2 * faults, Op::ReleaseHandles),
        (2 * faults, Op::RefuseDials(0)),
        (faults, Op::IgnoreSetups(0)),
        (2, Op::Stall(0)),
        (1, Op::PeerStopsReading(0)),
        (1, Op::SlowPongs(0)),
    ];
    match rng.weighted(ops).unwrap_or(Op::Text) {
        Op::Speech(_) => Op::Speech(u8::try_from(rng.range(30, 100)).unwrap_or(60)),
        Op::GoAway(_) => Op::GoAway(u8::try_from(rng.range(1, 20)).unwrap_or(5)),
        Op::RefuseDials(_) => Op::RefuseDials(if rng.chance(10) {
            9
        } else {
            u8::try_from(rng.range(1, 3)).unwrap_or(1)
        }),
        Op::IgnoreSetups(_) => Op::IgnoreSetups(if rng.chance(10) {
            9
        } else {
            u8::try_from(rng.range(1, 2)).unwrap_or(1)
        }),
        Op::Stall(_) => Op::Stall(u8::try_from(rng.range(5, 150)).unwrap_or(20)),
        Op::PeerStopsReading(_) => {
            Op::PeerStopsReading(u8::try_from(rng.range(2, 20)).unwrap_or(8))
        }
        Op::SlowPongs(_) => Op::SlowPongs(u8::try_from(rng.range(8, 60)).unwrap_or(12)),
        other => other,
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} ({})", self.seed, self.profile)?;
        for (k, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {k:>3}. +{:>4} ms  {:?}", step.gap, step.op)?;
        }
        Ok(())
    }
}
