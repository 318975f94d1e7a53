//! What the application does at each step of a schedule, shared by the simulator and the
//! loopback soak: the command an operation becomes, the fault it injects, and the state the
//! application keeps (its snapshots of `L`, its latest instructions and tools).

use std::time::Duration;

use agent_glue::core::Command;
use ctx_model::{ChatContext, Item, Message, Role};
use gemini_fake::Faults;
use gemini_transport::wire::FunctionDeclaration;

use crate::schedule::Op;

/// The tools the application declares; texts naming one make the model call it.
pub const TOOLS: [&str; 2] = ["get_weather", "lookup_order"];

/// The tools the application declares: the two tools, and a third in odd sets (so that a
/// change of tools is visible on the server).
pub(crate) fn declarations(set: u64) -> Vec<FunctionDeclaration> {
    let mut tools: Vec<FunctionDeclaration> = TOOLS
        .iter()
        .map(|name| FunctionDeclaration::new(*name, "a tool"))
        .collect();
    if set % 2 == 1 {
        tools.push(FunctionDeclaration::new("set_alarm", "a tool"));
    }
    tools
}

/// 16 kHz PCM16 of `ms` of speech (a tone well above the fake's voice threshold) then 700 ms
/// of silence, which ends the spoken turn.
pub(crate) fn speech(ms: u64) -> Vec<u8> {
    let samples_voiced = usize::try_from(ms * 16).unwrap_or(0);
    let samples_silent = 700 * 16;
    let mut pcm = Vec::with_capacity((samples_voiced + samples_silent) * 2);
    for n in 0..samples_voiced {
        let phase = (n % 36) as f64 / 36.0 * std::f64::consts::TAU;
        let sample = (phase.sin() * 8_000.0) as i16;
        pcm.extend_from_slice(&sample.to_le_bytes());
    }
    pcm.resize(pcm.len() + samples_silent * 2, 0);
    pcm
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

/// How long the user speaks (and the application waits) for `Op::Speech(tens)`, in ms.
pub(crate) fn speaking(tens: u8) -> u64 {
    u64::from(tens) * 10 + 700
}

/// What one step asks of the world that runs it.
pub(crate) enum Action {
    /// Run this command.
    Command(Command),
    /// Run `command`; if it is refused as a conflict, run `fallback` instead.
    Update { command: Command, fallback: Command },
    /// The user speaks for this many ms.
    Speech(u64),
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

/// The application's state across steps.
#[derive(Debug, Default)]
pub(crate) struct AppState {
    /// Steps run so far (numbers the texts: `t7 …` is step 7's).
    pub(crate) counter: u64,
    /// `(version, L)` after each step (and at the start).
    snapshots: Vec<(u64, ChatContext)>,
    /// The latest instructions the application set.
    pub(crate) instructions: Option<String>,
    /// The names of the latest tools the application declared.
    pub(crate) tools: Vec<String>,
    tool_set: u64,
}

impl AppState {
    /// The state at the start, with `L` at `version`.
    pub(crate) fn new(version: u64, context: ChatContext) -> Self {
        Self {
            snapshots: vec![(version, context)],
            tools: declarations(0).iter().map(|t| t.name.clone()).collect(),
            ..Self::default()
        }
    }

    /// Records `L` after a step.
    pub(crate) fn snapshot(&mut self, version: u64, context: ChatContext) {
        self.snapshots.push((version, context));
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
                let tools = declarations(self.tool_set);
                self.tools = tools.iter().map(|t| t.name.clone()).collect();
                Action::Command(Command::UpdateTools(tools))
            }
            Op::Interrupt => Action::Command(Command::Interrupt),
            Op::AnswerCalls => Action::AnswerCalls,
            Op::Speech(tens) => Action::Speech(u64::from(tens) * 10),
            Op::AudioStreamEnd => Action::Command(Command::AudioStreamEnd),
            Op::Stall(tens) => Action::Stall(u64::from(tens) * 10 / scale),
            Op::PeerStopsReading(secs) => Action::PeerStopsReading(u64::from(secs) * 1_000 / scale),
            Op::SlowPongs(secs) => Action::SlowPongs(u64::from(secs) * 1_000 / scale),
            Op::Drop => {
                faults.drop_connections();
                Action::Done
            }
            Op::Close(code) => {
                let reason = match code {
                    1011 => "Internal error encountered.",
                    1001 => "going away",
                    _ => "",
                };
                faults.close_connections(code, reason);
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
        }
    }
}
