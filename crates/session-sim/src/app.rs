//! What the application does at each step of a schedule, shared by the simulator and the
//! loopback soak: the command an operation becomes, the fault it injects, and the state the
//! application keeps (its snapshots of `L`, its latest instructions and tools).

use std::collections::VecDeque;
use std::time::Duration;

use agent_glue::conduit::Command;
use ctx_model::{ChatContext, Item, Message, Role};
use gemini_fake::{FaultAction, Faults, Trigger};
use gemini_transport::wire::{Behavior, FunctionDeclaration};

use resume_policy::{Backoff, DefaultPolicy, EditHandling, ReplayAlways, ResumePolicy, SkipReplay};

use crate::schedule::{Op, Policy};

/// The tools the application declares; texts naming one make the model call it.
pub const TOOLS: [&str; 2] = ["get_weather", "lookup_order"];

/// The tools the application declares: the two tools, and a third in odd sets (so that a
/// change of tools is visible on the server), each with `behavior` (the profile's:
/// [`Profile::behavior`](crate::schedule::Profile::behavior)).
pub(crate) fn declarations(set: u64, behavior: Option<Behavior>) -> Vec<FunctionDeclaration> {
    let declare = |name: &str| {
        let tool = FunctionDeclaration::new(name, "a tool");
        match &behavior {
            Some(behavior) => tool.with_behavior(behavior.clone()),
            None => tool,
        }
    };
    let mut tools: Vec<FunctionDeclaration> = TOOLS.iter().map(|name| declare(name)).collect();
    if set % 2 == 1 {
        tools.push(declare("set_alarm"));
    }
    tools
}

/// 16 kHz PCM16 of `ms` of speech (a tone well above the fake's voice threshold) then 700 ms
/// of silence, which ends the spoken turn.
pub(crate) fn speech(ms: u64) -> Vec<u8> {
    let mut pcm = voice(ms);
    pcm.resize(pcm.len() + samples(700) * 2, 0);
    pcm
}

/// 16 kHz PCM16 of `ms` of voiced audio: a tone well above the fake's voice threshold (RMS
/// about 5,600 against 500).
pub(crate) fn voice(ms: u64) -> Vec<u8> {
    let len = samples(ms) * 2;
    let mut pcm = Vec::with_capacity(len);
    while pcm.len() < len {
        let take = (len - pcm.len()).min(TONE.len());
        pcm.extend_from_slice(&TONE[..take]);
    }
    pcm
}

/// One period of the tone (36 samples, 444 Hz at 16 kHz), as PCM16 bytes.
const TONE: [u8; 72] = tone();

const fn tone() -> [u8; 72] {
    // sin(2πk/36) for k in 0..36, times 8,000, rounded toward zero.
    const SAMPLES: [i16; 36] = [
        0, 1389, 2736, 3999, 5142, 6128, 6928, 7517, 7878, 8000, 7878, 7517, 6928, 6128, 5142,
        3999, 2736, 1389, 0, -1389, -2736, -4000, -5142, -6128, -6928, -7517, -7878, -8000, -7878,
        -7517, -6928, -6128, -5142, -4000, -2736, -1389,
    ];
    let mut bytes = [0; 72];
    let mut k = 0;
    while k < 36 {
        let [lo, hi] = SAMPLES[k].to_le_bytes();
        bytes[2 * k] = lo;
        bytes[2 * k + 1] = hi;
        k += 1;
    }
    bytes
}

/// 16 kHz PCM16 of `ms` of silence.
pub(crate) fn silence(ms: u64) -> Vec<u8> {
    vec![0; samples(ms) * 2]
}

fn samples(ms: u64) -> usize {
    usize::try_from(ms * 16).unwrap_or(0)
}

/// Silence after voice from which the fake's activity detection may have ended the utterance
/// (its silence duration), in ms.
pub(crate) const VAD_SILENCE_MS: u64 = 500;

/// The longest the application waits for the transcript of an utterance the activity
/// detection may have ended, in ms of virtual time: longer than a slow write (up to 2.5 s) or
/// a peer that stops reading (up to 20 s) keeps the audio from the server, so that the wait
/// does not end before the server heard it.
pub(crate) const TRANSCRIPT_WAIT_MS: u64 = 25_000;

/// The microphone's utterance as the application knows it, for the one rule that keeps the
/// check decidable.
///
/// Automatic activity detection ends an utterance on the server when it has heard enough
/// silence; the client learns where only from the input transcript that follows. Which of a
/// message sent between the two the server took first, the spoken turn or the message, the
/// protocol does not tell the client (the real server's detection runs on its own clock). So
/// after audio that may have ended an utterance, the application waits for the transcript
/// (or the end of the connection, or [`TRANSCRIPT_WAIT_MS`]) before it acts again. Explicit
/// ends (`audioStreamEnd`, `activityEnd`) are ordered with everything else the client sends:
/// no waiting. Everything else the application does while the user speaks (typed turns,
/// tool results, appends, updates, reply requests, interrupts) is what the simulator
/// exercises.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mic {
    /// Voice was pushed since the utterance last ended (the user is speaking).
    open: bool,
    /// Silence pushed since the last voice, in ms.
    silence: u64,
    /// Utterances ended explicitly whose transcript has not arrived (transcripts come in
    /// order: the next ones are theirs).
    owed: u32,
}

impl Mic {
    /// Whether an utterance is open (voice since its end).
    pub(crate) fn speaking(self) -> bool {
        self.open
    }

    /// Voice was pushed (or, with manual detection, the activity started).
    pub(crate) fn voice(&mut self, ms: u64) {
        if ms > 0 {
            self.open = true;
            self.silence = 0;
        }
    }

    /// Silence was pushed: `true` if the activity detection may have ended the utterance,
    /// so the application waits for its transcript.
    pub(crate) fn silence(&mut self, ms: u64) -> bool {
        self.silence = self.silence.saturating_add(ms);
        self.open && self.silence >= VAD_SILENCE_MS
    }

    /// The application ended the utterance (`audioStreamEnd`, `activityEnd`).
    pub(crate) fn end(&mut self) {
        if self.open {
            self.owed += 1;
        }
        self.open = false;
        self.silence = 0;
    }

    /// A finished input transcript arrived: an explicitly ended utterance's, or else the one
    /// the activity detection ended.
    pub(crate) fn transcript(&mut self) {
        if self.owed > 0 {
            self.owed -= 1;
        } else {
            self.open = false;
            self.silence = 0;
        }
    }

    /// The connection ended: the server's detection state (and any transcript owed) with it.
    pub(crate) fn connection_ended(&mut self) {
        *self = Mic::default();
    }
}

/// Whether `event` is media (audio, text and transcript chunks, usage): the checks read the
/// rest.
pub(crate) fn is_media(event: &agent_glue::SessionEvent) -> bool {
    use agent_glue::SessionEvent as E;
    matches!(
        event,
        E::Audio { .. }
            | E::Text(_)
            | E::OutputTranscript { .. }
            | E::InputTranscript { .. }
            | E::Usage(_)
            | E::GenerationComplete
    )
}

/// How long the application takes to answer the `n`-th tool call of the schedule `seed`, in
/// virtual ms: mostly under 300 ms, one call in five up to 3 s.
pub(crate) fn answer_delay(seed: u64, n: u64) -> u64 {
    let mut rng = crate::rng::Rng::stream(seed, 1_000 + n);
    if rng.chance(20) {
        rng.range(300, 3_000)
    } else {
        rng.range(0, 300)
    }
}

/// The reason the service gives with a close `code` (see the protocol's table of close codes).
pub(crate) fn close_reason(code: u16) -> &'static str {
    match code {
        1011 => "Internal error encountered.",
        1001 => "going away",
        1007 => "Request contains an invalid argument.",
        1008 => "Operation is not implemented, or supported, or enabled.",
        1009 => "Request payload size exceeds the limit.",
        _ => "",
    }
}

/// What one step asks of the world that runs it.
pub(crate) enum Action {
    /// Run this command.
    Command(Command),
    /// Run `command`; if it is refused as a conflict, run `fallback` instead.
    Update { command: Command, fallback: Command },
    /// The user speaks for this many ms, then 700 ms of silence.
    Speech(u64),
    /// This many ms of voiced audio.
    Voice(u64),
    /// This many ms of silence.
    Silence(u64),
    /// Answer every call not answered yet.
    AnswerCalls,
    /// Hold the server's frames this many ms.
    Stall(u64),
    /// The server stops reading for this many ms.
    PeerStopsReading(u64),
    /// The server answers pings this many ms late.
    SlowPongs(u64),
    /// Nothing more to do (a fault was injected, or there was nothing to edit).
    Done,
}

/// How many snapshots of `L` the application keeps (`Op::StaleUpdate` looks at most 3 back).
const SNAPSHOTS: usize = 4;

/// The application's state across steps.
#[derive(Debug, Default)]
pub(crate) struct AppState {
    /// Steps run so far (numbers the texts: `t7 …` is step 7's).
    pub(crate) counter: u64,
    /// `(version, L)` after each of the last [`SNAPSHOTS`] steps (and at the start): as far
    /// back as `Op::StaleUpdate` looks.
    snapshots: VecDeque<(u64, ChatContext)>,
    /// The latest instructions the application set.
    pub(crate) instructions: Option<String>,
    /// The names of the latest tools the application declared.
    pub(crate) tools: Vec<String>,
    /// Items as `L` held them before an edit changed them.
    pub(crate) prior_versions: Vec<Item>,
    tool_set: u64,
    /// The `behavior` of its declarations.
    behavior: Option<Behavior>,
}

impl AppState {
    /// The state at the start, with `L` at `version`.
    pub(crate) fn new(version: u64, context: ChatContext, behavior: Option<Behavior>) -> Self {
        Self {
            snapshots: VecDeque::from([(version, context)]),
            tools: declarations(0, behavior.clone())
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            behavior,
            ..Self::default()
        }
    }

    /// The application's latest instructions and tool declarations (a worker that takes the
    /// session over is built with them).
    pub(crate) fn config(
        &self,
    ) -> (
        Option<String>,
        Vec<gemini_transport::wire::FunctionDeclaration>,
    ) {
        (
            self.instructions.clone(),
            declarations(self.tool_set, self.behavior.clone()),
        )
    }

    /// Records the items of `before` that `after` holds changed (an edit ran between them).
    pub(crate) fn edited(&mut self, before: &ChatContext, after: &ChatContext) {
        for item in before.iter() {
            if after.get(item.id()).is_some_and(|now| now != item) {
                self.prior_versions.push(item.clone());
            }
        }
    }

    /// The application restarted on another worker with `L` at `version`: the snapshots it
    /// had (the previous worker's) are gone with its process.
    pub(crate) fn restarted(&mut self, version: u64, context: ChatContext) {
        self.snapshots.clear();
        self.snapshots.push_back((version, context));
    }

    /// Records `L` after a step.
    pub(crate) fn snapshot(&mut self, version: u64, context: ChatContext) {
        if self.snapshots.len() == SNAPSHOTS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back((version, context));
    }

    /// What `op` does, given `L` now (`version`, `context`): faults are injected into
    /// `faults` at once (goAway times divided by `scale`), the rest is returned.
    pub(crate) fn action(
        &mut self,
        op: Op,
        version: u64,
        context: &ChatContext,
        faults: &Faults,
        scale: u64,
    ) -> Action {
        self.counter += 1;
        let k = self.counter;
        let note = |text: &str| -> Item {
            Message::user(format!("app-{k}-u"), format!("t{k} {text}")).into()
        };
        match op {
            Op::Text => Action::Command(Command::Text(format!("t{k} hello"))),
            Op::TextTool(i) => {
                let tool = TOOLS[usize::from(i) % TOOLS.len()];
                Action::Command(Command::Text(format!("t{k} please {tool}")))
            }
            Op::Append(n) => {
                let mut items = vec![note("note")];
                if n > 1 {
                    items.push(Message::model(format!("app-{k}-m"), format!("t{k} noted")).into());
                }
                Action::Command(Command::Append(items))
            }
            Op::StaleUpdate(age) => {
                let back = usize::from(age).clamp(1, self.snapshots.len().max(1));
                let (based_on, mut derived) = self
                    .snapshots
                    .len()
                    .checked_sub(back)
                    .and_then(|at| self.snapshots.get(at).cloned())
                    .unwrap_or_else(|| (version, context.clone()));
                let note = note("update note");
                if derived.push(note.clone()).is_err() {
                    return Action::Done;
                }
                Action::Update {
                    command: Command::UpdateContext {
                        context: derived,
                        based_on,
                    },
                    // Derived from an old version: append instead.
                    fallback: Command::Append(vec![note]),
                }
            }
            Op::Edit => {
                let mut edited = context.clone();
                let target = edited
                    .iter()
                    .filter_map(Item::as_message)
                    .find(|m| m.role == Role::User && m.text().starts_with('t'))
                    .map(|m| (m.id.clone(), m.text()));
                match target {
                    Some((id, text)) => {
                        let _ = edited.replace(Message::user(id, format!("{text} (edited {k})")));
                        Action::Command(Command::UpdateContext {
                            context: edited,
                            based_on: version,
                        })
                    }
                    None => Action::Done,
                }
            }
            Op::GenerateReply(with) => Action::Command(Command::GenerateReply(
                with.then(|| format!("t{k} reply request")),
            )),
            Op::Instructions => {
                let text = format!("instructions v{k}");
                self.instructions = Some(text.clone());
                Action::Command(Command::UpdateInstructions(text))
            }
            Op::Tools => {
                self.tool_set += 1;
                let tools = declarations(self.tool_set, self.behavior.clone());
                self.tools = tools.iter().map(|t| t.name.clone()).collect();
                Action::Command(Command::UpdateTools(tools))
            }
            Op::Interrupt => Action::Command(Command::Interrupt),
            Op::AnswerCalls => Action::AnswerCalls,
            Op::Speech(tens) => Action::Speech(u64::from(tens) * 10),
            Op::Voice(tens) => Action::Voice(u64::from(tens) * 10),
            Op::Silence(tens) => Action::Silence(u64::from(tens) * 10),
            Op::AudioStreamEnd => Action::Command(Command::AudioStreamEnd),
            Op::ActivityStart => Action::Command(Command::ActivityStart),
            Op::ActivityEnd => Action::Command(Command::ActivityEnd),
            Op::Stall(tens) => Action::Stall(u64::from(tens) * 10 / scale),
            Op::PeerStopsReading(secs) => Action::PeerStopsReading(u64::from(secs) * 1_000 / scale),
            Op::SlowPongs(secs) => Action::SlowPongs(u64::from(secs) * 1_000 / scale),
            Op::Drop => {
                faults.drop_connections();
                Action::Done
            }
            Op::Close(code) => {
                faults.close_connections(code, close_reason(code));
                Action::Done
            }
            Op::HardClose(refuse_resume) => {
                if refuse_resume {
                    faults.refuse_resumes_after_hard_close(1);
                }
                faults.hard_close_now();
                Action::Done
            }
            Op::AuthClose => {
                faults.close_connections(1007, "API key not valid. Please pass a valid API key.");
                Action::Done
            }
            Op::QuotaClose => {
                faults.close_connections(
                    1011,
                    "You exceeded your current quota, please check your plan and billing details.",
                );
                Action::Done
            }
            Op::RefuseSetup(code) => {
                let action = FaultAction::Close(code, close_reason(code).to_owned());
                faults.schedule(Trigger::SetupReceived, action);
                Action::Done
            }
            Op::RefuseDial(status) => {
                faults.refuse_upgrades(1, status);
                Action::Done
            }
            Op::IgnoreSetups(n) => {
                faults.ignore_setups(u32::from(n));
                Action::Done
            }
            Op::GoAway(secs) => {
                faults.go_away(Duration::from_millis(u64::from(secs) * 1_000 / scale));
                Action::Done
            }
            Op::RefuseResume => {
                faults.refuse_next_resume(1007, "Request contains an invalid argument.");
                Action::Done
            }
            Op::ExpireHandles => {
                faults.expire_all_handles();
                Action::Done
            }
            Op::WithholdHandles => {
                faults.withhold_handles();
                Action::Done
            }
            Op::ReleaseHandles => {
                faults.release_handles();
                Action::Done
            }
            Op::RefuseDials(n) => {
                faults.refuse_upgrades(u32::from(n), 503);
                Action::Done
            }
            // The world carries these out on its workers and store (`fleet.rs`).
            Op::Kill | Op::Drain | Op::Partition(..) => Action::Done,
        }
    }
}

/// The resume policy of `policy`, with the default backoff.
pub(crate) fn resume_policy(policy: Policy) -> Box<dyn ResumePolicy> {
    match policy {
        Policy::Default => Box::new(DefaultPolicy::default()),
        Policy::ReportEdits => {
            Box::new(DefaultPolicy::new(Backoff::default(), EditHandling::Report))
        }
        Policy::ReplayAlways => Box::new(ReplayAlways::default()),
        Policy::SkipReplay => Box::new(SkipReplay::default()),
    }
}

/// Something the application did while the user spoke (between the first voice of an
/// utterance and its end), or as an answer started: the interleavings the statistics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interleaving {
    /// A typed turn during speech.
    TypedTurn,
    /// A typed turn naming a tool during speech.
    ToolTurn,
    /// A tool result during speech.
    ToolResult,
    /// An append during speech.
    Append,
    /// A reply request (`generate_reply`) during speech.
    ReplyRequest,
    /// An `update_chat_ctx` (stale or an edit) during speech.
    Update,
    /// An instructions or tools change during speech.
    Config,
    /// `interrupt()` during speech.
    Interrupt,
    /// A fault during speech.
    Fault,
    /// `interrupt()` as an answer starts (its first output arrived).
    InterruptAnswer,
}

impl Interleaving {
    /// Every kind, in the order the statistics print them.
    pub const ALL: [Interleaving; 10] = [
        Interleaving::TypedTurn,
        Interleaving::ToolTurn,
        Interleaving::ToolResult,
        Interleaving::Append,
        Interleaving::ReplyRequest,
        Interleaving::Update,
        Interleaving::Config,
        Interleaving::Interrupt,
        Interleaving::Fault,
        Interleaving::InterruptAnswer,
    ];

    /// Its name in the statistics.
    pub fn name(self) -> &'static str {
        match self {
            Interleaving::TypedTurn => "typed turn during speech",
            Interleaving::ToolTurn => "tool-naming turn during speech",
            Interleaving::ToolResult => "tool result during speech",
            Interleaving::Append => "append during speech",
            Interleaving::ReplyRequest => "reply request during speech",
            Interleaving::Update => "update during speech",
            Interleaving::Config => "instructions/tools change during speech",
            Interleaving::Interrupt => "interrupt during speech",
            Interleaving::Fault => "fault during speech",
            Interleaving::InterruptAnswer => "interrupt as an answer starts",
        }
    }

    /// The kind `op` is when the application performs it during speech.
    pub(crate) fn during_speech(op: Op) -> Option<Interleaving> {
        Some(match op {
            Op::Text => Interleaving::TypedTurn,
            Op::TextTool(_) => Interleaving::ToolTurn,
            Op::Append(_) => Interleaving::Append,
            Op::GenerateReply(_) => Interleaving::ReplyRequest,
            Op::StaleUpdate(_) | Op::Edit => Interleaving::Update,
            Op::Instructions | Op::Tools => Interleaving::Config,
            Op::Interrupt => Interleaving::Interrupt,
            op if op.is_fault() => Interleaving::Fault,
            _ => return None,
        })
    }
}

/// The interleavings one run performed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interleavings(u16);

impl Interleavings {
    /// Adds `kind`.
    pub fn insert(&mut self, kind: Interleaving) {
        self.0 |= 1 << (kind as u16);
    }

    /// Whether the run performed `kind`.
    pub fn contains(self, kind: Interleaving) -> bool {
        self.0 & (1 << (kind as u16)) != 0
    }
}
