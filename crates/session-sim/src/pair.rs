//! The scripted pair: [`Pair`], a session core and a fake server on virtual time, driven by a
//! test.

use std::borrow::Cow;
use std::sync::Arc;

use agent_glue::conduit::{Command, Receipt};
use agent_glue::{LiveSessionBuilder, SessionError, SessionEvent};
use ctx_model::ChatContext;
use gemini_fake::{FakeConfig, Faults, SimServer};
use gemini_transport::wire::FunctionDeclaration;
use resume_policy::ResumePolicy;
use serde_json::Value;

use crate::checks::Violation;
use crate::schedule::{Profile, Schedule};
use crate::world::{Outcome, Setup, World};

/// How long [`Pair::until`] waits by default (virtual ms).
const STEP_MS: u64 = 3_000;

/// How long the first connection may take before [`PairBuilder::start`] fails (virtual ms).
const CONNECT_MS: u64 = 60_000;

/// How long [`Pair::finish`] lets the pair settle (virtual ms).
const SETTLE_MS: u64 = 300_000;

/// The jitter seed of a scripted session (the backoff's waits are the same in every run).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

type ServerTweak = Box<dyn FnOnce(FakeConfig) -> FakeConfig>;
type SessionTweak = Box<dyn FnOnce(LiveSessionBuilder) -> LiveSessionBuilder>;
type FaultsBefore = Box<dyn FnOnce(&Faults)>;

/// How a [`Pair`] starts: the profile, the policy, the session's and the server's settings.
#[must_use]
pub struct PairBuilder {
    profile: Profile,
    policy: Option<Arc<dyn ResumePolicy>>,
    server: ServerTweak,
    session: SessionTweak,
    faults: FaultsBefore,
    tools: Vec<FunctionDeclaration>,
    instructions: Option<String>,
    seed: u64,
}

impl std::fmt::Debug for PairBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairBuilder")
            .field("profile", &self.profile)
            .field("tools", &self.tools)
            .field("instructions", &self.instructions)
            .finish_non_exhaustive()
    }
}

impl PairBuilder {
    /// The resume policy (default: `DefaultPolicy`, as `LiveSession::builder` has it).
    pub fn policy(mut self, policy: Arc<dyn ResumePolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The functions the model may call (default: none).
    pub fn tools(mut self, tools: Vec<FunctionDeclaration>) -> Self {
        self.tools = tools;
        self
    }

    /// The system instruction (default: none).
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Some(text.into());
        self
    }

    /// Earlier conversation to seed the first session with (default: empty).
    pub fn initial_context(self, context: ChatContext) -> Self {
        self.session(move |b| b.initial_context(context))
    }

    /// Any other setting of the session's builder (`go_away_margin`, `compression`, …),
    /// applied after the profile's and the ones above. Tools and instructions go through
    /// [`tools`](Self::tools) and [`instructions`](Self::instructions), which the invariant's
    /// configuration check reads.
    pub fn session(
        mut self,
        tweak: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder + 'static,
    ) -> Self {
        let before = self.session;
        self.session = Box::new(move |b| tweak(before(b)));
        self
    }

    /// Any setting of the fake server (`with_chunk_interval`, `with_handle_expiry`, …),
    /// applied after the profile's family, surface and handle lag.
    pub fn server(mut self, tweak: impl FnOnce(FakeConfig) -> FakeConfig + 'static) -> Self {
        let before = self.server;
        self.server = Box::new(move |c| tweak(before(c)));
        self
    }

    /// Faults injected before the first dial (`withhold_handles`, `refuse_upgrades`, a
    /// scheduled fault, …).
    pub fn faults(mut self, inject: impl FnOnce(&Faults) + 'static) -> Self {
        let before = self.faults;
        self.faults = Box::new(move |f| {
            before(f);
            inject(f);
        });
        self
    }

    /// The seed of the session's backoff jitter and of the network's random choices (where
    /// a reset overtakes frames in flight; default: a fixed one).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Starts the session at virtual time 0 and runs until its first setup is complete, as
    /// `LiveSession::connect` does; `Err` if it never completes (or the session ended first).
    pub fn start(self) -> Result<Pair, String> {
        let schedule = Schedule {
            seed: self.seed,
            profile: self.profile,
            steps: Vec::new(),
        };
        let tools = self.tools;
        let names: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
        let instructions = self.instructions;
        let policy = self.policy;
        let session = self.session;
        let text = instructions.clone();
        let setup = Setup {
            server: self.server,
            session: Box::new(move |b| {
                let mut b = b.tools(tools);
                if let Some(text) = text {
                    b = b.instructions(text);
                }
                if let Some(policy) = policy {
                    b = b.shared_policy(policy);
                }
                session(b)
            }),
            scripted: true,
        };
        let mut world = World::with_setup(Cow::Owned(schedule), setup)?;
        (self.faults)(&world.server.faults());
        world.app.state.tools = names;
        world.app.state.instructions = instructions;
        let mut pair = Pair {
            world,
            read: 0,
            step: STEP_MS,
        };
        pair.run_until(CONNECT_MS, |p| {
            p.world.conduit.core().has_connected() || p.world.conduit.core().closed().is_some()
        });
        if pair.world.conduit.core().has_connected() {
            Ok(pair)
        } else {
            Err(format!(
                "connect: the first setup never completed: {:?}; events {:?}",
                pair.world.conduit.core().closed(),
                pair.events()
            ))
        }
    }
}

/// A scripted pair: the session core ([`agent_glue::conduit::SessionCore`]) and the fake server's
/// own logic ([`gemini_fake::SimServer`]) joined by the simulator's in-memory network on
/// virtual time, driven step by step by a test, as quinn tests its `Connection` against an
/// in-memory peer.
///
/// A test starts a session with a [`Profile`] (family, surface, transparent, modality, handle
/// lag, latency) and a resume policy, issues the application's commands at the virtual times
/// it chooses, injects the fake's faults ([`Pair::faults`]), runs until a time or a condition,
/// and reads what each side holds: the application's events and `L`, and the server's own
/// records (contexts, tool calls and responses, answers, handles, every frame of every
/// connection). [`Pair::finish`] lets the pair settle and checks the whole invariant, as
/// [`run`](crate::run) does after a random schedule.
///
/// Nothing sleeps: a second of the session's life costs the events in it, so a scenario runs
/// in milliseconds.
///
/// ```
/// use std::time::Duration;
///
/// use agent_glue::SessionEvent;
/// use session_sim::{Pair, Profile};
///
/// let mut pair = Pair::builder(Profile::default()).start()?;
/// pair.send_text("hello").map_err(|e| e.to_string())?;
/// pair.until("the answer", |e| matches!(e, SessionEvent::TurnComplete))?;
/// pair.faults().go_away(Duration::from_secs(50));
/// pair.until("the rotation", |e| matches!(e, SessionEvent::Reconnected(_)))?;
/// assert_eq!(pair.server().connections().len(), 2);
/// let outcome = pair.finish();
/// assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
/// # Ok::<(), String>(())
/// ```
pub struct Pair {
    world: World<'static>,
    /// Events [`Pair::until`] has read.
    read: usize,
    /// How long [`Pair::until`] waits (virtual ms).
    step: u64,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.world.now)
            .field("core", &self.world.conduit)
            .field("server", &self.world.server)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// A session on a `profile`'s model family, surface, modality and network, with no tools
    /// and no instructions.
    pub fn builder(profile: Profile) -> PairBuilder {
        PairBuilder {
            profile,
            policy: None,
            server: Box::new(|c| c),
            session: Box::new(|b| b),
            faults: Box::new(|_| {}),
            tools: Vec::new(),
            instructions: None,
            seed: SEED,
        }
    }

    // --- time -------------------------------------------------------------------------------

    /// The virtual time, in ms since the session started.
    #[must_use]
    pub fn now(&self) -> u64 {
        self.world.now
    }

    /// How long [`until`](Self::until) waits before it reports the wait as failed (virtual
    /// ms; default 3,000).
    pub fn set_step(&mut self, ms: u64) {
        self.step = ms;
    }

    /// Runs every event due in the next `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let at = self.world.now.saturating_add(ms);
        self.run_until_time(at);
    }

    /// Runs every event due until virtual time `at` (ms), and moves the clock there.
    pub fn run_until_time(&mut self, at: u64) {
        self.world.advance_to(self.world.now);
        while self.world.next_at().is_some_and(|t| t <= at) {
            self.world.run_next();
        }
        self.world.advance_to(at);
    }

    /// Runs events until `done` holds (checked before the first and after each one), for at
    /// most `within` ms of virtual time; whether it holds. The clock stops at the event that
    /// made it hold, or at the limit.
    pub fn run_until(&mut self, within: u64, mut done: impl FnMut(&Pair) -> bool) -> bool {
        self.world.advance_to(self.world.now);
        let deadline = self.world.now.saturating_add(within);
        loop {
            if done(self) {
                return true;
            }
            match self.world.next_at() {
                Some(t) if t <= deadline => {
                    self.world.run_next();
                }
                _ => {
                    self.world.advance_to(deadline);
                    return done(self);
                }
            }
        }
    }

    /// Reads the events the application has not read yet, running the pair as needed, until
    /// one satisfies `pred` (within [`set_step`](Self::set_step)'s limit), and returns it.
    /// The other events due at that virtual time run too (as a session's reader takes every
    /// frame that arrived at once before the application acts). `Err` says what was awaited
    /// and why it did not come: the limit, or the session's end (a `Closed` event read
    /// without a match).
    pub fn until(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&SessionEvent) -> bool,
    ) -> Result<SessionEvent, String> {
        let from = self.read;
        let mut found = None;
        let mut ended = false;
        let within = self.step;
        self.run_until(within, |p| {
            let events = p.events();
            for (k, (_, event)) in events.iter().enumerate().skip(from) {
                if pred(event) {
                    found = Some(k);
                    return true;
                }
                if matches!(event, SessionEvent::Closed { .. }) {
                    ended = true;
                    found = Some(k);
                    return true;
                }
            }
            false
        });
        if found.is_some() {
            self.finish_instant();
        }
        let all = self.world.tap.as_deref().unwrap_or_default();
        match found {
            Some(k) if !ended => {
                self.read = k + 1;
                Ok(all[k].1.clone())
            }
            other => {
                let why = if other.is_some() {
                    "the session ended"
                } else {
                    "timed out"
                };
                let meanwhile: Vec<String> = all[from..]
                    .iter()
                    .filter(|(_, e)| !crate::app::is_media(e))
                    .map(|(at, e)| format!("{at} ms {e:?}"))
                    .collect();
                self.read = all.len();
                Err(format!(
                    "waiting for {what}: {why} at {} ms; events meanwhile: {meanwhile:?}",
                    self.world.now
                ))
            }
        }
    }

    /// Runs the other events due at the current virtual time.
    fn finish_instant(&mut self) {
        let now = self.world.now;
        while self.world.next_at() == Some(now) {
            self.world.run_next();
        }
    }

    /// Runs until the server's state satisfies `cond`, for at most `within` ms; `Err` names
    /// what was awaited.
    pub fn until_server(
        &mut self,
        what: &str,
        within: u64,
        mut cond: impl FnMut(&SimServer) -> bool,
    ) -> Result<(), String> {
        if self.run_until(within, |p| cond(&p.world.server)) {
            Ok(())
        } else {
            Err(format!(
                "waiting for {what}: timed out at {} ms",
                self.world.now
            ))
        }
    }

    /// Marks every event as read (as an application that drained its queue).
    pub fn drain(&mut self) {
        self.read = self.tap().len();
    }

    // --- the application --------------------------------------------------------------------

    /// Runs `command` now, as the application would, and lets the core and the server act on
    /// it at once (frames leave, timers are armed).
    pub fn command(&mut self, command: Command) -> Result<Receipt, agent_glue::Error> {
        match &command {
            Command::UpdateInstructions(text) => {
                self.world.app.state.instructions = Some(text.clone());
            }
            Command::UpdateTools(tools) => {
                self.world.app.state.tools = tools.iter().map(|t| t.name.clone()).collect();
            }
            Command::ToolResult { call_id, .. } => {
                self.world.app.answered.insert(call_id.clone());
            }
            _ => {}
        }
        let result = self.world.command(command);
        self.world.advance_to(self.world.now);
        result
    }

    /// A typed user turn.
    pub fn send_text(&mut self, text: &str) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::Text(text.to_owned()))
    }

    /// The result of tool call `call_id`.
    pub fn send_tool_result(
        &mut self,
        call_id: &str,
        output: Value,
    ) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::ToolResult {
            call_id: call_id.to_owned(),
            output,
            is_error: false,
            scheduling: None,
            will_continue: false,
        })
    }

    /// `update_chat_ctx`: `L` becomes `context` if it is still at version `based_on`.
    pub fn update_chat_ctx(
        &mut self,
        context: ChatContext,
        based_on: u64,
    ) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::UpdateContext { context, based_on })
    }

    /// A new system instruction (the invariant then expects it on the server).
    pub fn update_instructions(&mut self, text: &str) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::UpdateInstructions(text.to_owned()))
    }

    /// A new tool set (the invariant then expects it on the server).
    pub fn update_tools(
        &mut self,
        tools: Vec<FunctionDeclaration>,
    ) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::UpdateTools(tools))
    }

    /// `generate_reply`, with instructions or not.
    pub fn generate_reply(
        &mut self,
        instructions: Option<&str>,
    ) -> Result<Receipt, agent_glue::Error> {
        self.command(Command::GenerateReply(instructions.map(str::to_owned)))
    }

    /// Microphone audio (16 kHz PCM16) through the shell's audio path, now.
    pub fn push_audio(&mut self, pcm: &[u8]) {
        self.world.microphone(pcm.to_vec());
        self.world.advance_to(self.world.now);
    }

    /// The server's WebSocket answers pings on the current connection `ms` late (slow pongs:
    /// past the keepalive timeout the session gives the connection up).
    pub fn slow_pongs(&mut self, ms: u64) {
        self.world.slow_pongs(ms);
    }

    /// Fault injection, as `FakeServer::faults`: a control addressed to connections (drop,
    /// close, `goAway`, raw frames, stall) acts at the current virtual time, when the pair
    /// next runs; the others (refused resumes and dials, expired or withheld handles,
    /// scheduled faults) at once.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.world.server.faults()
    }

    // --- what each side holds -----------------------------------------------------------

    /// Every event the session emitted (media included), with its virtual time, in order.
    #[must_use]
    pub fn events(&self) -> &[(u64, SessionEvent)] {
        self.tap()
    }

    /// The events [`until`](Self::until) has read (and [`drain`](Self::drain) marked read).
    #[must_use]
    pub fn read_events(&self) -> &[(u64, SessionEvent)] {
        let all = self.tap();
        &all[..self.read.min(all.len())]
    }

    /// `L`, the application's context.
    #[must_use]
    pub fn chat_ctx(&self) -> &ChatContext {
        self.world.conduit.core().chat_ctx()
    }

    /// `L` and its version, as `LiveSession::snapshot`.
    #[must_use]
    pub fn snapshot(&self) -> (u64, ChatContext) {
        (
            self.world.conduit.core().version(),
            self.world.conduit.core().chat_ctx().clone(),
        )
    }

    /// `Some` once the session has ended (with the error, if it failed).
    #[must_use]
    pub fn closed(&self) -> Option<&Option<SessionError>> {
        self.world.conduit.core().closed()
    }

    /// The fake server: its sessions (context, tool calls and responses, answers, handles)
    /// and its connections (every frame received, how each ended), read from its own state.
    #[must_use]
    pub fn server(&self) -> &SimServer {
        &self.world.server
    }

    /// What happened so far, one line per step of either side.
    #[must_use]
    pub fn trace(&self) -> &[String] {
        &self.world.trace
    }

    /// Lets the pair settle (nothing in flight, nothing queued, the model idle, every tool
    /// call answered), for at most 300 s of virtual time, then checks the whole invariant
    /// against the server's own state, as [`run`](crate::run) does.
    pub fn finish(mut self) -> Outcome {
        let settled = self.run_until(SETTLE_MS, |p| p.world.settled());
        if !settled {
            let state = format!(
                "not settled at {} ms: core {:?}",
                self.world.now, self.world.conduit
            );
            self.world
                .violations
                .push(Violation::new("liveness", state));
        }
        let mut world = self.world;
        world.check();
        Outcome {
            context: world.conduit.core().chat_ctx().clone(),
            events: world
                .tap
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|(_, e)| e)
                .filter(|e| !crate::app::is_media(e))
                .collect(),
            interleavings: world.app.interleavings,
            violations: world.violations,
            trace: world.trace,
            takeovers: 0,
            leases_lost: 0,
            elapsed: world.now,
        }
    }

    fn tap(&self) -> &[(u64, SessionEvent)] {
        self.world.tap.as_deref().unwrap_or_default()
    }
}
