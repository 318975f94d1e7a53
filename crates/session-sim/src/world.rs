//! One schedule run: the session's sans-IO layer ([`Conduit`], which owns the session core)
//! and the fake server's own logic on virtual time, joined by an in-memory network with
//! latency, stalls, resets, refused dials, slow writes, a peer that stops reading and slow
//! pongs, and an application that answers tool calls.
//!
//! The world is the conduit's IO side, as the shell is over real sockets: it carries out its
//! orders (dial, release a socket), gives it a socket to write to ([`SimSocket`], which takes
//! frames onto the network or says it would block), delivers what the network brings (server
//! messages, pongs, closes) and calls it when its timer is due. It decides nothing the conduit
//! decides.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use agent_glue::conduit::Command;
use agent_glue::conduit::{AtBound, AudioLoss, Conduit, Order};
use agent_glue::{ConnectionAge, LiveSession, LiveSessionBuilder, SessionEvent};
use ctx_model::ChatContext;
use gemini_fake::{FakeConfig, SimOutput, SimServer};
use gemini_transport::wire::{
    ClientMessage, Modality, RealtimeInput, ServerMessage, ServerPayload,
};
use gemini_transport::{CloseInfo, Endpoint, SecretString};
use resume_policy::{ConnectionId, Millis, ModelCapabilities};

use crate::app::{self, Action, AppState, Interleaving, Interleavings, Mic, declarations};
use crate::audio_trail::AudioTrail;
use crate::checks::{self, Observed, Violation};
mod fleet;
use crate::rng::Rng;
use crate::schedule::{Op, Schedule};
use crate::socket::{Link, SimSocket, Took, Wire, as_transport_records};
use fleet::{Fleet, StoreCall, StoreReply};

/// How long a schedule may take to settle after its last step (virtual ms).
const SETTLE_LIMIT: u64 = 300_000;

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// Broken invariants (empty: the schedule passed).
    pub violations: Vec<Violation>,
    /// What happened, for a failing schedule's report (empty for a passing run, unless
    /// traced: see [`run`]).
    pub trace: Vec<String>,
    /// Virtual time at the end (ms).
    pub elapsed: u64,
    /// The application's context at the end.
    pub context: ChatContext,
    /// The session's events (without media), in order.
    pub events: Vec<SessionEvent>,
    /// What the application did while the user spoke (or as answers started).
    pub interleavings: Interleavings,
    /// Takeovers by the other worker (`Profile::fleet`), and leases the keeper gave up.
    pub takeovers: u64,
    /// See `takeovers`.
    pub leases_lost: u64,
}

/// What happens at a point of virtual time.
#[derive(Debug)]
enum Ev {
    Step(usize),
    Dial(ConnectionId, String),
    DialFailed(ConnectionId, u16),
    /// A frame reaches the server's end of the connection.
    ToServer(ConnectionId, Wire),
    /// The server's WebSocket answers a ping (late, with slow pongs).
    ServerPong(ConnectionId),
    PongAtClient(ConnectionId),
    /// The client dropped its socket: the server sees the connection end.
    VanishAtServer(ConnectionId),
    /// A peer that stopped reading reads again.
    PeerReads(ConnectionId),
    ToClient(ConnectionId, ServerMessage),
    ClosedAtClient(ConnectionId, CloseInfo),
    /// The socket can take writes again.
    Writable,
    ConduitTimer(u64),
    ServerTimer(u64),
    Answer(String),
    /// The application stops waiting for a transcript (the wait with this number).
    WaitOver(u64),
    /// The application interrupts the answer that just started.
    InterruptAnswer,
    Settle,
    /// A worker's store call reaches the store (worker generation, call).
    AtStore(u64, StoreCall),
    /// The store's answer reaches the worker of this generation.
    FromStore(u64, StoreReply),
    /// The keeper of this generation's worker is due (its wake, in virtual ms).
    KeeperWake(u64, u64),
    /// The waiting worker (this generation) tries to acquire the lease.
    TryAcquire(u64),
    /// The drain of this generation's worker is over (`HAND_OFF_DRAIN`).
    DrainOver(u64),
}

impl Ev {
    /// Whether it is something on the network (a dial, a frame, a pong, a close on its way).
    fn in_flight(&self) -> bool {
        matches!(
            self,
            Ev::Dial(..)
                | Ev::DialFailed(..)
                | Ev::ToServer(..)
                | Ev::ServerPong(..)
                | Ev::PongAtClient(..)
                | Ev::VanishAtServer(..)
                | Ev::PeerReads(..)
                | Ev::ToClient(..)
                | Ev::ClosedAtClient(..)
        )
    }
}

#[derive(Debug)]
struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The application's side.
#[derive(Debug, Default)]
pub(crate) struct App {
    /// Steps, snapshots, latest instructions and tools.
    pub(crate) state: AppState,
    /// Tool calls received (ToolCall events), in order.
    pub(crate) calls: Vec<String>,
    pub(crate) answered: HashSet<String>,
    /// Non-media events, in order, with their time.
    pub(crate) events: Vec<(u64, SessionEvent)>,
    pub(crate) command_errors: Vec<String>,
    /// The user's utterance, as far as the application knows.
    mic: Mic,
    /// Until when the microphone is busy with audio already pushed (pushes come in real time).
    mic_until: u64,
    /// The application waits for a transcript before its next step (see [`Mic`]).
    waiting: Option<Waiting>,
    /// Numbers the waits (a wait's deadline is ignored once it ended otherwise).
    waits: u64,
    /// Tool calls whose answer came due during a wait: answered when it ends.
    held_answers: Vec<String>,
    /// A model turn's output has started (the reactive interrupt acts on its first output).
    answering: bool,
    /// Which answers the application interrupts as they start (a stream of its own).
    interrupts: Option<Rng>,
    /// What the application did while the user spoke.
    pub(crate) interleavings: Interleavings,
}

/// The application waits for a transcript before step `next`.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// The step that waits.
    next: usize,
    /// When the step before it ran.
    since: u64,
}

/// How a scripted run ([`crate::pair`]) changes the world a schedule's profile describes: the
/// fake server's configuration and the session's builder (policy, tools, instructions, …),
/// each applied last.
pub(crate) struct Setup {
    pub(crate) server: Box<dyn FnOnce(FakeConfig) -> FakeConfig>,
    pub(crate) session: Box<dyn FnOnce(LiveSessionBuilder) -> LiveSessionBuilder>,
    /// Record every event in `World::tap`; the script answers tool calls.
    pub(crate) scripted: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            server: Box::new(|c| c),
            session: Box::new(|b| b),
            scripted: false,
        }
    }
}

/// The simulated world of one schedule.
pub(crate) struct World<'a> {
    schedule: Cow<'a, Schedule>,
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    pub(crate) server: SimServer,
    /// The session's sans-IO layer, with the core inside.
    pub(crate) conduit: Conduit,
    links: BTreeMap<ConnectionId, Link>,
    by_server: HashMap<gemini_fake::ConnectionId, ConnectionId>,
    /// The connection whose socket the client holds (set up), if any.
    socket: Option<ConnectionId>,
    conduit_timer: Option<u64>,
    server_timer: Option<u64>,
    stall_until: u64,
    /// Where every byte of the microphone went.
    audio: AudioTrail,
    /// Which writes are slow (a stream of its own: the schedules stay what they were).
    writer_rng: Rng,
    /// How the application answers non-blocking calls (a stream of its own).
    answer_rng: Rng,
    pub(crate) app: App,
    rng: Rng,
    pub(crate) violations: Vec<Violation>,
    pub(crate) trace: Vec<String>,
    /// Whether `trace` is recorded.
    tracing: bool,
    settling: bool,
    in_flight: usize,
    answers_due: usize,
    /// The connection the client last completed a setup on; after a takeover, until the new
    /// owner completes one, the connection its restored handle came from (the server session
    /// the saved state says holds `L`), if any.
    pub(crate) current: Option<ConnectionId>,
    /// The connection each resumption handle the client received came on (fleets: a restored
    /// handle names the server session the saved state is in).
    pub(crate) handle_conns: std::collections::HashMap<String, ConnectionId>,
    /// Payload rejections by the server (1007/1008 after setup).
    pub(crate) rejections: Vec<String>,
    /// The connection the core last asked to open (its link, unless it dropped it since).
    last_opened: Option<ConnectionId>,
    /// A close the core was told about that must end the session (authentication, quota, a
    /// refused fresh setup).
    must_end: Option<String>,
    /// A scripted run ([`crate::pair`]): every event, media included, is recorded here, and
    /// the script answers tool calls itself.
    pub(crate) tap: Option<Vec<(u64, SessionEvent)>>,
    /// The workers and the store (`Profile::fleet`), if any.
    pub(crate) fleet: Option<Fleet>,
    /// The current worker's connection ids are the world's minus this (each worker numbers
    /// its own; the world keeps every worker's links apart).
    pub(crate) conn_base: u64,
    /// The current worker was killed: its conduit is gone (kept in place, never called).
    pub(crate) dead: bool,
    /// Where each worker after the first began, as indices into the application's events.
    pub(crate) owners: Vec<usize>,
    /// A worker was killed in this run (what it held of the microphone died with it).
    pub(crate) killed: bool,
    /// Audio earlier workers' closed sessions held unwritten when the next one took over.
    pub(crate) audio_left: u64,
    /// The lineage of each of `app.calls` (see `Observed::call_lineages`), and the current.
    pub(crate) call_lineages: Vec<u64>,
    pub(crate) lineage: u64,
}

/// Runs `schedule` to the end and checks the invariants. The trace is recorded when the run
/// fails (the run is deterministic: a failing one runs again with its trace; formatting every
/// trace line costs more than the rest of a passing run) or when the environment variable
/// `SIM_TRACE` is set.
pub fn run(schedule: &Schedule) -> Outcome {
    static ALWAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ALWAYS.get_or_init(|| std::env::var_os("SIM_TRACE").is_some()) {
        return run_traced(schedule);
    }
    let outcome = run_with(schedule, false);
    if outcome.violations.is_empty() {
        outcome
    } else {
        run_with(schedule, true)
    }
}

/// [`run`], always recording the trace.
pub fn run_traced(schedule: &Schedule) -> Outcome {
    run_with(schedule, true)
}

/// [`run`], recording the trace or not.
fn run_with(schedule: &Schedule, tracing: bool) -> Outcome {
    let mut world = match World::new(schedule, tracing) {
        Ok(world) => world,
        Err(e) => {
            return Outcome {
                violations: vec![Violation::new("setup", e)],
                trace: Vec::new(),
                elapsed: 0,
                context: ChatContext::new(),
                events: Vec::new(),
                interleavings: Interleavings::default(),
                takeovers: 0,
                leases_lost: 0,
            };
        }
    };
    world.run();
    world.check();
    let (takeovers, leases_lost) = world
        .fleet
        .as_ref()
        .map_or((0, 0), |f| (f.takeovers, f.lost));
    Outcome {
        takeovers,
        leases_lost,
        context: world.conduit.core().chat_ctx().clone(),
        events: world.app.events.into_iter().map(|(_, e)| e).collect(),
        interleavings: world.app.interleavings,
        violations: world.violations,
        trace: world.trace,
        elapsed: world.now,
    }
}

/// A TEXT profile on a model that answers in audio only (3.8, whose capability row refuses
/// the TEXT modality): the simulator asks for text anyway, through the documented override of
/// the row ([`LiveSessionBuilder::capabilities`]), because its TEXT profiles check every answer
/// word for word and the fake serves them. Other models keep their row.
pub(crate) fn text_anyway(
    builder: LiveSessionBuilder,
    model: &str,
) -> Result<LiveSessionBuilder, String> {
    let mut caps = ModelCapabilities::for_model(model).map_err(|e| e.to_string())?;
    if caps.text_responses {
        return Ok(builder);
    }
    caps.text_responses = true;
    Ok(builder.capabilities(caps))
}

/// The session's builder for `p`'s profile on `model` (before a scripted run's changes).
pub(crate) fn session_builder(
    p: &crate::schedule::Profile,
    model: &str,
) -> Result<LiveSessionBuilder, String> {
    let endpoint = Endpoint::api_key(SecretString::from("sim"))
        .with_base_url("ws://sim.invalid")
        .map_err(|e| e.to_string())?;
    let modality = if p.audio {
        Modality::Audio
    } else {
        Modality::Text
    };
    let tools = declarations(0, p.behavior());
    let builder = LiveSession::builder(endpoint, model.to_owned())
        .modality(modality)
        .transcription(p.audio)
        .transparent_resumption(p.transparent)
        .automatic_activity_detection(!p.manual_activity)
        // The application says how much silence ends speech (the fake's default, 500 ms),
        // so the session knows where each spoken turn ended.
        .end_of_speech_silence(Duration::from_millis(app::VAD_SILENCE_MS))
        .policy(app::resume_policy(p.policy))
        .tools(tools);
    profile_settings(builder, p, model, 1)
}

/// The settings of `p`'s profile that both drivers give the builder (the simulator, and the
/// loopback soak with its times divided by `scale`): TEXT where the family needs the fake's
/// switch, extended thinking's required level, compression and the connection age limit.
pub(crate) fn profile_settings(
    mut builder: LiveSessionBuilder,
    p: &crate::schedule::Profile,
    model: &str,
    scale: u64,
) -> Result<LiveSessionBuilder, String> {
    if !p.audio {
        builder = text_anyway(builder, model)?;
    }
    if p.family == gemini_fake::Family::Gemini38ExtendedThinking {
        // Required there (docs/protocol.md section 10.1).
        builder = builder.thinking_level(gemini_transport::wire::ThinkingLevel::Low);
    }
    if let Some((trigger, target)) = p.compression {
        builder = builder.compression(
            gemini_transport::wire::ContextWindowCompression::sliding_window_with(
                i64::try_from(trigger).unwrap_or(i64::MAX),
                i64::try_from(target).unwrap_or(i64::MAX),
            ),
        );
    }
    if let Some((after, max)) = p.age_limit {
        builder = builder.connection_age(Some(ConnectionAge::new(
            Duration::from_millis(after / scale),
            Duration::from_millis(max / scale),
        )));
    }
    Ok(builder)
}

impl<'a> World<'a> {
    fn new(schedule: &'a Schedule, tracing: bool) -> Result<Self, String> {
        Self::build(Cow::Borrowed(schedule), Setup::default(), tracing)
    }

    /// The world of `schedule`'s profile, changed by `setup` (a scripted run keeps its trace).
    pub(crate) fn with_setup(schedule: Cow<'a, Schedule>, setup: Setup) -> Result<Self, String> {
        Self::build(schedule, setup, true)
    }

    fn build(schedule: Cow<'a, Schedule>, setup: Setup, tracing: bool) -> Result<Self, String> {
        let p = schedule.profile;
        let tap = setup.scripted.then(Vec::new);
        let config = (setup.server)(
            FakeConfig::new()
                .with_family(p.family)
                .with_vertex(p.vertex)
                .with_handle_lag(p.handle_lag)
                // No connection lifetime and no 3.8 hard close at an age (a schedule must
                // settle: the fake idle, no timer pending; `Op::HardClose` closes as the age
                // does, and `connection_ages` checks the age limit), and TEXT profiles on 3.8
                // through the fake's test switch (the service refuses TEXT there:
                // docs/protocol.md section 10.1).
                .with_lifetime(None)
                .with_hard_close(None)
                .with_text_on_3_8(!p.audio),
        );
        let model = config.setup_model();
        let server = SimServer::new(config);
        let builder = session_builder(&p, &model)?;
        let mut conduit = (setup.session)(builder)
            .into_sans_io(Millis(0), schedule.seed)
            .map_err(|e| e.to_string())?;
        let (writer_rng, rng) = (Rng::stream(schedule.seed, 3), Rng::stream(schedule.seed, 2));
        let answer_rng = Rng::stream(schedule.seed, 7);
        conduit.audit_audio();
        let core = conduit.core();
        let fleet = p.fleet.map(|f| Fleet::new(f, model.clone()));
        let app = App {
            state: AppState::new(core.version(), core.chat_ctx().clone(), p.behavior()),
            interrupts: (p.interrupt_answers > 0).then(|| Rng::stream(schedule.seed, 4)),
            ..App::default()
        };
        let mut world = World {
            schedule,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            server,
            conduit,
            links: BTreeMap::new(),
            by_server: HashMap::new(),
            socket: None,
            conduit_timer: None,
            server_timer: None,
            stall_until: 0,
            audio: AudioTrail::default(),
            writer_rng,
            answer_rng,
            app,
            rng,
            violations: Vec::new(),
            trace: Vec::new(),
            tracing,
            settling: false,
            in_flight: 0,
            answers_due: 0,
            current: None,
            handle_conns: std::collections::HashMap::new(),
            rejections: Vec::new(),
            last_opened: None,
            must_end: None,
            tap,
            fleet,
            conn_base: 0,
            dead: false,
            owners: Vec::new(),
            killed: false,
            audio_left: 0,
            call_lineages: Vec::new(),
            lineage: 0,
        };
        world.fleet_start();
        // The first step waits for the first connection (as `connect()` does).
        world.pump();
        Ok(world)
    }

    fn at(&mut self, at: u64, ev: Ev) {
        if ev.in_flight() {
            self.in_flight += 1;
        }
        if matches!(ev, Ev::Answer(_)) {
            self.answers_due += 1;
        }
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    fn latency(&self) -> u64 {
        self.schedule.profile.latency
    }

    pub(crate) fn note(&mut self, line: String) {
        if self.tracing && self.trace.len() < 4_000 {
            self.trace.push(format!("{:>7} ms  {line}", self.now));
        }
    }

    fn run(&mut self) {
        // Steps start once the first setup is complete (or the session gave up).
        let mut first_step_at = None;
        let limit_first = 60_000;
        while first_step_at.is_none() {
            let core = self.conduit.core();
            if core.has_connected() || core.closed().is_some() {
                first_step_at = Some(self.now);
                break;
            }
            let Some(Reverse(next)) = self.queue.pop() else {
                break;
            };
            self.now = next.at;
            self.handle(next.ev);
            if self.now > limit_first {
                break;
            }
        }
        let Some(start) = first_step_at else {
            self.violations.push(Violation::new(
                "liveness",
                "the first connection never completed".to_owned(),
            ));
            return;
        };
        // Steps are scheduled one at a time: each after the one before it (and after the
        // application's wait for a transcript, see `Mic`).
        self.schedule_step(0, start, start);
        let mut deadline = u64::MAX;
        while let Some(Reverse(next)) = self.queue.pop() {
            self.now = next.at;
            self.handle(next.ev);
            if self.settling {
                if self.settled() {
                    return;
                }
                deadline = deadline.min(self.now.saturating_add(SETTLE_LIMIT));
            }
            if self.now > deadline {
                break;
            }
        }
        if self.settling && self.settled() {
            return;
        }
        let state = format!(
            "not settled at {} ms: in flight {}, answers due {}, server timer {:?}, {:?}",
            self.now,
            self.in_flight,
            self.answers_due,
            self.server.next_timer(),
            self.conduit
        );
        self.violations.push(Violation::new("liveness", state));
    }

    /// Schedules step `k` its gap after `since` (the time of the step before it), not before
    /// `not_before`; the settling after the last step.
    fn schedule_step(&mut self, k: usize, since: u64, not_before: u64) {
        match self.schedule.steps.get(k) {
            Some(step) => {
                let mut at = (since + step.gap).max(not_before);
                if !step.op.is_fault() {
                    // The microphone delivers audio in real time, and a push puts all its
                    // frames on the wire at once: the application's next push, and anything
                    // else it does, comes once the push has played out, so that the wire
                    // order is the order in time.
                    at = at.max(self.app.mic_until);
                }
                self.at(at, Ev::Step(k));
            }
            None => self.at(not_before.max(since + 1), Ev::Settle),
        }
    }

    /// Step `k` runs now; then the next is scheduled, or a wait for a transcript begins.
    fn run_step(&mut self, k: usize) {
        if self.fleet.as_mut().is_some_and(|f| f.defer(k)) {
            // No worker acts for the session now: the application waits for the next one.
            self.note(format!("step {k} waits for the next owner"));
            return;
        }
        let wait = match self.schedule.steps.get(k) {
            Some(step) => self.step(step.op),
            None => false,
        };
        let now = self.now;
        if wait {
            self.app.waits += 1;
            self.app.waiting = Some(Waiting {
                next: k + 1,
                since: now,
            });
            let token = self.app.waits;
            self.note("app waits for the transcript".to_owned());
            self.at(now + app::TRANSCRIPT_WAIT_MS, Ev::WaitOver(token));
        } else {
            self.schedule_step(k + 1, now, now);
        }
    }

    /// The wait for a transcript ends: the next step is scheduled, held answers go out.
    fn end_wait(&mut self) {
        let Some(waiting) = self.app.waiting.take() else {
            return;
        };
        let now = self.now;
        self.schedule_step(waiting.next, waiting.since, now);
        for call in std::mem::take(&mut self.app.held_answers) {
            self.answer(&call);
        }
    }

    /// When the next event is due (virtual ms), if any (a scripted run).
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse(next)| next.at)
    }

    /// Runs the next event, moving the clock to it; `false` if none is left (a scripted run).
    pub(crate) fn run_next(&mut self) -> bool {
        let Some(Reverse(next)) = self.queue.pop() else {
            return false;
        };
        self.now = next.at;
        self.handle(next.ev);
        true
    }

    /// Moves the clock to `at` if it is later (the caller ran every event due before it), and
    /// lets the server and the core act on what the script injected (a scripted run).
    pub(crate) fn advance_to(&mut self, at: u64) {
        self.now = self.now.max(at);
        self.server.advance(Duration::from_millis(self.now));
        self.pump();
    }

    pub(crate) fn settled(&self) -> bool {
        if self.fleet.as_ref().is_some_and(Fleet::changing_hands) {
            return false;
        }
        if self.conduit.core().closed().is_some() {
            return self.in_flight == 0 && self.conduit.is_finished();
        }
        self.conduit.is_settled()
            && self.in_flight == 0
            && self.answers_due == 0
            && self.server.next_timer().is_none()
            && self.app.calls.iter().all(|c| self.app.answered.contains(c))
    }

    fn handle(&mut self, ev: Ev) {
        if ev.in_flight() {
            self.in_flight -= 1;
        }
        let now = self.now;
        let server_now = Duration::from_millis(now);
        match ev {
            Ev::Step(k) => self.run_step(k),
            Ev::WaitOver(token) => {
                if token == self.app.waits {
                    self.end_wait();
                }
            }
            Ev::InterruptAnswer => {
                if !self.dead && self.conduit.core().closed().is_none() {
                    self.app.interleavings.insert(Interleaving::InterruptAnswer);
                    let _ = self.command(Command::Interrupt);
                }
            }
            Ev::Settle => {
                self.settling = true;
                self.server.faults().release_handles();
                self.server.advance(server_now);
            }
            Ev::Dial(conn, setup) => self.dial(conn, &setup),
            Ev::DialFailed(conn, status) => {
                // What the transport reports for a refused upgrade.
                let cause = gemini_transport::Error::Handshake {
                    authority: "sim".to_owned(),
                    status: Some(status),
                    detail: "upgrade refused".to_owned(),
                };
                let mut info = CloseInfo::abnormal(cause.to_string(), false);
                info.class = cause.class();
                let open = self.links.get(&conn).is_some_and(|l| l.client_open);
                if let Some(mine) = self.mine(conn).filter(|_| open) {
                    self.expect_end(conn, &info, false);
                    self.conduit.handle_dial_failed(
                        Millis(now),
                        mine,
                        info,
                        Some(std::sync::Arc::new(cause)),
                    );
                }
            }
            Ev::ToServer(conn, wire) => self.at_server(conn, wire),
            Ev::PeerReads(conn) => {
                let unread = self
                    .links
                    .get_mut(&conn)
                    .map(|l| std::mem::take(&mut l.unread))
                    .unwrap_or_default();
                for wire in unread {
                    self.read_at_server(conn, wire);
                }
            }
            Ev::ServerPong(conn) => {
                let lat = self.latency();
                let stall = self.stall_until;
                if let Some(link) = self.links.get_mut(&conn).filter(|l| l.server_open) {
                    let at = (now + lat).max(link.s2c_at).max(stall);
                    link.s2c_at = at;
                    self.at(at, Ev::PongAtClient(conn));
                }
            }
            Ev::PongAtClient(conn) => {
                let pongs = self.links.get_mut(&conn).and_then(|l| {
                    let ok = l.client_open && l.reset_at.is_none_or(|r| now <= r);
                    ok.then(|| {
                        l.pongs += 1;
                        l.pongs
                    })
                });
                if let (Some(pongs), Some(mine)) = (pongs, self.mine(conn)) {
                    self.audio.pong(conn);
                    self.conduit.handle_pongs(mine, pongs);
                }
            }
            Ev::VanishAtServer(conn) => {
                let target = self
                    .links
                    .get_mut(&conn)
                    .filter(|l| l.server_open)
                    .and_then(|l| {
                        l.server_open = false;
                        // What the server had not read is lost with the connection.
                        l.unread.clear();
                        l.server
                    });
                if let Some(sid) = target {
                    self.server.client_closed(sid, None, server_now);
                }
            }
            Ev::ToClient(conn, message) => {
                let deliver = self.links.get_mut(&conn).is_some_and(|l| {
                    let ok = l.client_open && l.reset_at.is_none_or(|r| now <= r);
                    if ok && matches!(message.payload, Some(ServerPayload::GoAway(_))) {
                        l.after_go_away = true;
                    }
                    ok
                });
                if deliver {
                    if matches!(message.payload, Some(ServerPayload::SetupComplete(_))) {
                        if let Some(link) = self.links.get_mut(&conn) {
                            link.set_up = true;
                            link.set_up_at = Some(now);
                        }
                        self.socket = Some(conn);
                        self.current = Some(conn);
                        self.note(format!("conn {} setupComplete", conn.0));
                    }
                    if let Some(ServerPayload::SessionResumptionUpdate(u)) = &message.payload {
                        if let Some(token) = &u.new_handle {
                            self.handle_conns.insert(token.clone(), conn);
                        }
                        let line = format!(
                            "conn {} handle update {:?} resumable={}",
                            conn.0, u.new_handle, u.resumable
                        );
                        self.note(line);
                    }
                    if let Some(mine) = self.mine(conn) {
                        self.conduit.handle_message(Millis(now), mine, message);
                    }
                }
            }
            Ev::ClosedAtClient(conn, info) => {
                let info = self.links.get_mut(&conn).and_then(|l| {
                    let was = l.client_open;
                    l.client_open = false;
                    l.ended_at.get_or_insert(now);
                    was.then(|| (as_transport_records(info, l.close_written), l.set_up))
                });
                if let Some((info, set_up)) = info {
                    self.note(format!("conn {} closed at the client: {info}", conn.0));
                    if self.socket == Some(conn) {
                        self.socket = None;
                    }
                    let fresh_setup = self
                        .links
                        .get(&conn)
                        .is_some_and(|l| !l.set_up && !l.resume);
                    self.expect_end(conn, &info, fresh_setup);
                    match self.mine(conn) {
                        Some(mine) if set_up => {
                            self.conduit.handle_closed(Millis(now), mine, info, None);
                        }
                        // The dial failed during its setup.
                        Some(mine) => {
                            self.conduit
                                .handle_dial_failed(Millis(now), mine, info, None);
                        }
                        None => {}
                    }
                }
            }
            // The pump writes once the socket takes frames again.
            Ev::Writable => {}
            Ev::ConduitTimer(at) => {
                if self.conduit_timer == Some(at) && !self.dead {
                    self.conduit_timer = None;
                    self.conduit.handle_timeout(Millis(now));
                }
            }
            Ev::ServerTimer(at) => {
                if self.server_timer == Some(at) {
                    self.server_timer = None;
                    self.server.advance(server_now);
                }
            }
            Ev::Answer(call_id) if now < self.app.mic_until => {
                // The microphone's push is still playing out (its frames are all on the wire
                // already): the answer comes after it, as it would on the wire in real time.
                let at = self.app.mic_until;
                self.answers_due -= 1;
                self.at(at, Ev::Answer(call_id));
            }
            Ev::Answer(_) if self.dead => {
                // The worker that was to answer died with the call.
                self.answers_due -= 1;
            }
            Ev::Answer(call_id) => {
                self.answers_due -= 1;
                if self.app.waiting.is_some() {
                    // What the application sends waits with its steps.
                    self.app.held_answers.push(call_id);
                } else {
                    self.answer(&call_id);
                }
            }
            Ev::AtStore(generation, call) => self.at_store(generation, call),
            Ev::FromStore(generation, reply) => self.on_store_reply(generation, reply),
            Ev::KeeperWake(generation, at) => self.keeper_wake(generation, at),
            Ev::TryAcquire(generation) => self.try_acquire(generation),
            Ev::DrainOver(generation) => self.drain_over(generation),
        }
        self.pump();
    }

    /// A dial reaches the server.
    fn dial(&mut self, conn: ConnectionId, setup: &str) {
        let now = self.now;
        let server_now = Duration::from_millis(now);
        if !self.links.get(&conn).is_some_and(|l| l.client_open) {
            // Released while dialing: the client gave it up.
            return;
        }
        let open = self.server.open_connections();
        if !open.is_empty() {
            self.violations.push(Violation::new(
                "two sockets",
                format!(
                    "dialing connection {} while the server has {open:?} open",
                    conn.0
                ),
            ));
        }
        match self.server.connect(server_now) {
            Ok(sid) => {
                self.by_server.insert(sid, conn);
                if let Some(link) = self.links.get_mut(&conn) {
                    link.server = Some(sid);
                    link.server_open = true;
                }
                self.note(format!("conn {} dialed (server {})", conn.0, sid.0));
                self.server.receive(sid, setup.as_bytes(), server_now);
            }
            Err(status) => {
                self.note(format!("conn {} dial refused ({status})", conn.0));
                let at = now + self.latency();
                self.at(at, Ev::DialFailed(conn, status));
            }
        }
    }

    /// A frame reaches the server's end: read now, or kept unread while the peer does not read.
    fn at_server(&mut self, conn: ConnectionId, wire: Wire) {
        let now = self.now;
        let Some(link) = self.links.get_mut(&conn).filter(|l| l.server_open) else {
            // The connection broke with the frame on the wire.
            return;
        };
        if now < link.unread_until || !link.unread.is_empty() {
            link.unread.push_back(wire);
            return;
        }
        self.read_at_server(conn, wire);
    }

    /// The server reads a frame: its WebSocket answers pings and closes, the rest goes to the
    /// fake's own logic.
    fn read_at_server(&mut self, conn: ConnectionId, wire: Wire) {
        let now = self.now;
        let server_now = Duration::from_millis(now);
        let lat = self.latency();
        let stall = self.stall_until;
        let Some(link) = self.links.get_mut(&conn).filter(|l| l.server_open) else {
            return;
        };
        let Some(sid) = link.server else {
            return;
        };
        match wire {
            Wire::Message(frame) => self.server.receive(sid, &frame, server_now),
            Wire::Ping => {
                let at = now + link.pong_delay;
                self.at(at, Ev::ServerPong(conn));
            }
            Wire::Close(code, reason) => {
                // What the server sent before it read this close frame goes first: if that was
                // a close of its own (crossing ours), it answers nothing.
                while let Some((sid, output)) = self.server.poll_output() {
                    self.on_server_output(sid, output);
                }
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.server_open) else {
                    return;
                };
                link.server_open = false;
                // The server's WebSocket answers with the same code and reason.
                let at = (now + lat).max(link.s2c_at).max(stall);
                link.s2c_at = at;
                let info = CloseInfo::from_client(code, reason, link.after_go_away);
                self.server.client_closed(sid, Some(code), server_now);
                self.at(at, Ev::ClosedAtClient(conn, info));
            }
        }
    }

    /// Moves every output of the conduit and the server onto the network, carries out the
    /// conduit's orders, writes to the socket while it takes frames, and re-arms the timers.
    fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(order) = self.conduit.poll_order().filter(|_| !self.dead) {
                moved = true;
                self.order(order);
            }
            moved |= !self.dead && self.write();
            while let Some(event) = self.conduit.poll_event().filter(|_| !self.dead) {
                moved = true;
                self.on_event(event);
            }
            while let Some(loss) = self.conduit.poll_audio_loss().filter(|_| !self.dead) {
                let loss = match loss {
                    AudioLoss::Unconfirmed { connection, bytes } => AudioLoss::Unconfirmed {
                        connection: ConnectionId(connection.0 + self.conn_base),
                        bytes,
                    },
                    other => other,
                };
                self.audio.loss(loss);
            }
            while let Some((sid, output)) = self.server.poll_output() {
                moved = true;
                self.on_server_output(sid, output);
            }
            if !moved {
                break;
            }
        }
        if let Some(t) = self.conduit.poll_timeout().filter(|_| !self.dead) {
            if self.conduit_timer != Some(t.0) {
                self.conduit_timer = Some(t.0);
                self.at(t.0, Ev::ConduitTimer(t.0));
            }
        }
        if let Some(t) = self.server.next_timer() {
            let t = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
            if self.server_timer != Some(t) {
                self.server_timer = Some(t);
                self.at(t, Ev::ServerTimer(t));
            }
        }
        if self.keep_lease() {
            // The keeper closed the session: its close goes out now, as the shell's would.
            self.pump();
        }
    }

    /// The current worker's name for the world's connection `conn` (`None`: an earlier
    /// worker's).
    pub(crate) fn mine(&self, conn: ConnectionId) -> Option<ConnectionId> {
        conn.0
            .checked_sub(self.conn_base)
            .map(ConnectionId)
            .filter(|_| !self.dead)
    }

    /// Carries out an order of the conduit.
    fn order(&mut self, order: Order) {
        let lat = self.latency();
        let now = self.now;
        match order {
            Order::Dial { connection, setup } => {
                let connection = ConnectionId(connection.0 + self.conn_base);
                let resume = matches!(&setup, ClientMessage::Setup(s)
                    if s.session_resumption.as_ref().is_some_and(|r| r.handle.is_some()));
                let mut buf = Vec::new();
                setup.write_json(&mut buf);
                let json = String::from_utf8_lossy(&buf).into_owned();
                self.note(format!("conn {} opening: {}", connection.0, short(&json)));
                let at = now + 2 * lat;
                self.links.insert(
                    connection,
                    Link {
                        client_open: true,
                        c2s_at: at,
                        resume,
                        ..Link::default()
                    },
                );
                self.last_opened = Some(connection);
                self.at(at, Ev::Dial(connection, json));
            }
            Order::Release { connection } => {
                let connection = ConnectionId(connection.0 + self.conn_base);
                if self.socket == Some(connection) {
                    self.socket = None;
                }
                let Some(link) = self.links.get_mut(&connection) else {
                    return;
                };
                if !link.client_open {
                    return;
                }
                link.client_open = false;
                link.ended_at.get_or_insert(now);
                // Frames already on the wire arrive first; then the server sees the end.
                let at = (now + lat).max(link.c2s_at);
                link.c2s_at = at;
                self.note(format!("conn {} released by the client", connection.0));
                self.at(at, Ev::VanishAtServer(connection));
            }
            other => self
                .violations
                .push(Violation::new("order", format!("unknown order {other:?}"))),
        }
    }

    /// Lets the conduit write to the client's socket, if it takes frames now; returns whether
    /// anything was written.
    fn write(&mut self) -> bool {
        let Some(conn) = self.socket else {
            return false;
        };
        let now = self.now;
        let lat = self.latency();
        let Some(link) = self.links.get_mut(&conn) else {
            return false;
        };
        if now < link.writable_at {
            return false;
        }
        let mut socket = SimSocket::new(now, link, &mut self.writer_rng, &self.audio);
        let mine = ConnectionId(conn.0 - self.conn_base);
        let poll = self.conduit.write(Millis(now), mine, &mut socket);
        let (took, blocked_until) = socket.finish();
        if poll.is_pending() && blocked_until > now {
            self.note(format!(
                "the socket of conn {} blocks for {} ms",
                conn.0,
                blocked_until - now
            ));
            self.at(blocked_until, Ev::Writable);
        }
        let wrote = !took.is_empty();
        for took in took {
            let wire = match took {
                Took::Audio(bytes, json) => {
                    self.audio.wrote_audio(conn, bytes);
                    Wire::Message(json)
                }
                Took::Message(json) => {
                    if self.trace.len() < 4_000 {
                        let line = format!(
                            "conn {} <- {}",
                            conn.0,
                            short(&String::from_utf8_lossy(&json))
                        );
                        self.note(line);
                    }
                    Wire::Message(json)
                }
                Took::Ping => {
                    self.audio.wrote_ping(conn);
                    Wire::Ping
                }
                Took::Close(code, reason) => {
                    self.note(format!("conn {} closed by the client ({code})", conn.0));
                    if let Some(link) = self.links.get_mut(&conn) {
                        link.close_written = true;
                        link.ended_at.get_or_insert(now);
                    }
                    Wire::Close(code, reason)
                }
            };
            if let Some(link) = self.links.get_mut(&conn) {
                let at = (now + lat).max(link.c2s_at);
                link.c2s_at = at;
                self.at(at, Ev::ToServer(conn, wire));
            }
        }
        wrote
    }

    fn on_server_output(&mut self, sid: gemini_fake::ConnectionId, output: SimOutput) {
        let Some(&conn) = self.by_server.get(&sid) else {
            return;
        };
        let lat = self.latency();
        let now = self.now;
        let stall = self.stall_until;
        let drop_lead = self.rng.below(lat + 1);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        match output {
            SimOutput::Frame(message) => {
                if matches!(message.payload, Some(ServerPayload::GoAway(_))) {
                    link.go_away_sent = true;
                }
                let at = (now + lat).max(link.s2c_at).max(stall);
                link.s2c_at = at;
                // Through the real encoder and the client's lenient decoder.
                let json = message.to_json();
                match ServerMessage::from_json(json.as_bytes()) {
                    Ok(decoded) => self.at(at, Ev::ToClient(conn, decoded)),
                    Err(e) => self.violations.push(Violation::new(
                        "decode",
                        format!("the client cannot decode {json}: {e}"),
                    )),
                }
            }
            SimOutput::Close { code, reason } => {
                link.server_open = false;
                let set_up = link.set_up;
                let at = (now + lat).max(link.s2c_at).max(stall);
                link.s2c_at = at;
                let info = CloseInfo::from_server(code, reason.clone(), link.after_go_away);
                let refused = matches!(code, 1007 | 1008)
                    && set_up
                    && !link.fault_closed
                    && !(code == 1008 && link.go_away_sent);
                if refused {
                    self.rejections
                        .push(format!("conn {} closed with {code}: {reason}", conn.0));
                }
                self.note(format!(
                    "server closes conn {} with {code} {reason}",
                    conn.0
                ));
                self.at(at, Ev::ClosedAtClient(conn, info));
            }
            SimOutput::Drop => {
                link.server_open = false;
                // The reset reaches the client within one latency; frames behind it are lost.
                let at = now + drop_lead;
                link.reset_at = Some(at);
                self.note(format!("server drops conn {}", conn.0));
                self.at(
                    at,
                    Ev::ClosedAtClient(conn, CloseInfo::abnormal("connection reset", false)),
                );
            }
            _ => {}
        }
    }

    fn on_event(&mut self, event: SessionEvent) {
        if let Some(tap) = &mut self.tap {
            tap.push((self.now, event.clone()));
        }
        match &event {
            // The utterance ended (its transcript), or the server's detection state went with
            // the connection: the wait for the transcript is over.
            SessionEvent::InputTranscript { finished: true, .. } => {
                self.app.mic.transcript();
                if !self.app.mic.speaking() {
                    self.end_wait();
                }
            }
            SessionEvent::Reconnecting { .. } | SessionEvent::Closed { .. } => {
                self.app.mic.connection_ended();
                self.end_wait();
                self.app.answering = false;
            }
            // The first output of a model turn: some applications interrupt it at once.
            SessionEvent::Text(_)
            | SessionEvent::Audio { .. }
            | SessionEvent::OutputTranscript { .. }
                if !self.app.answering =>
            {
                self.app.answering = true;
                let percent = u64::from(self.schedule.profile.interrupt_answers);
                if let Some(rng) = self.app.interrupts.as_mut() {
                    if rng.chance(percent) {
                        let now = self.now;
                        self.at(now, Ev::InterruptAnswer);
                    }
                }
            }
            SessionEvent::TurnComplete | SessionEvent::Interrupted => self.app.answering = false,
            _ => {}
        }
        if app::is_media(&event) {
            // Transcripts and text say which turn is which in a trace; audio and usage do not.
            if self.tracing && !matches!(event, SessionEvent::Audio { .. } | SessionEvent::Usage(_))
            {
                self.note(format!("event {}", short(&format!("{event:?}"))));
            }
            return;
        }
        if let SessionEvent::InvariantBroken { what } = &event {
            self.violations
                .push(Violation::new("invariant", what.clone()));
        }
        if let SessionEvent::ToolCall { call_id, .. } = &event {
            if self.app.calls.contains(call_id) {
                self.violations.push(Violation::new(
                    "tool call twice",
                    format!("ToolCall event for {call_id} delivered twice"),
                ));
            } else if self.tap.is_some() {
                // The script answers.
                self.app.calls.push(call_id.clone());
                self.call_lineages.push(self.lineage);
            } else {
                self.app.calls.push(call_id.clone());
                self.call_lineages.push(self.lineage);
                let delay = app::answer_delay(self.schedule.seed, self.app.calls.len() as u64);
                let at = self.now + delay;
                self.at(at, Ev::Answer(call_id.clone()));
            }
        }
        if let SessionEvent::AudioDropped { duration } = &event {
            self.audio
                .reported((duration.as_secs_f64() * 32_000.0).round() as u64);
        }
        if self.tracing {
            self.note(format!("event {}", short(&format!("{event:?}"))));
        }
        self.app.events.push((self.now, event));
    }

    /// A scheduling for a non-blocking result: none (the service's default), or each of the
    /// three.
    fn draw_scheduling(&mut self) -> Option<ctx_model::Scheduling> {
        use ctx_model::Scheduling;
        match self.answer_rng.below(4) {
            0 => None,
            1 => Some(Scheduling::WhenIdle),
            2 => Some(Scheduling::Interrupt),
            _ => Some(Scheduling::Silent),
        }
    }

    fn answer(&mut self, call_id: &str) {
        if !self.app.answered.insert(call_id.to_owned()) {
            return;
        }
        if self.app.mic.speaking() && self.conduit.core().closed().is_none() {
            self.app.interleavings.insert(Interleaving::ToolResult);
        }
        // Results of non-blocking calls: one in four first reports progress (an interim
        // result, silent or to be answered), and each is scheduled at random.
        let non_blocking = self.schedule.profile.calls_non_blocking();
        if non_blocking && self.answer_rng.chance(25) {
            let scheduling = self.draw_scheduling();
            let interim = self.conduit.command(
                Millis(self.now),
                Command::ToolResult {
                    call_id: call_id.to_owned(),
                    output: serde_json::json!({ "progress": format!("p-{call_id}") }),
                    is_error: false,
                    scheduling,
                    will_continue: true,
                },
            );
            if self.tracing {
                self.note(format!(
                    "app reports progress of {call_id} ({scheduling:?}): {}",
                    short(&format!("{interim:?}"))
                ));
            }
            if let Err(e) = interim {
                if !matches!(e, agent_glue::Error::Closed) {
                    self.app
                        .command_errors
                        .push(format!("interim result for {call_id}: {e}"));
                }
            }
        }
        let scheduling = if non_blocking {
            self.draw_scheduling()
        } else {
            None
        };
        let output = serde_json::json!({ "result": format!("r-{call_id}") });
        let result = self.conduit.command(
            Millis(self.now),
            Command::ToolResult {
                call_id: call_id.to_owned(),
                output,
                is_error: false,
                scheduling,
                will_continue: false,
            },
        );
        if self.tracing {
            self.note(format!(
                "app answers {call_id}: {}",
                short(&format!("{result:?}"))
            ));
        }
        if let Err(e) = result {
            if !matches!(e, agent_glue::Error::Closed) {
                self.app
                    .command_errors
                    .push(format!("tool result for {call_id}: {e}"));
            }
        }
    }

    pub(crate) fn command(
        &mut self,
        command: Command,
    ) -> Result<agent_glue::conduit::Receipt, agent_glue::Error> {
        let line = self.tracing.then(|| short(&format!("{command:?}")));
        let result = self.conduit.command(Millis(self.now), command);
        if let Some(line) = line {
            self.note(format!("app {line} -> {}", short(&format!("{result:?}"))));
        }
        result
    }

    /// Runs `op`; `true` if the application now waits for a transcript (see [`Mic`]).
    fn step(&mut self, op: Op) -> bool {
        if self.fleet_op(op) {
            return false;
        }
        if self.conduit.core().closed().is_some() {
            return false;
        }
        if self.app.mic.speaking() {
            if let Some(kind) = Interleaving::during_speech(op) {
                self.app.interleavings.insert(kind);
            }
        }
        if matches!(op, Op::Close(_) | Op::AuthClose | Op::QuotaClose) {
            // What these closes say about a payload is the fault's doing, not the client's.
            for link in self.links.values_mut().filter(|l| l.server_open) {
                link.fault_closed = true;
            }
        }
        // The versions an edit replaces (a divergence may name the item; the server may hold
        // any version of it).
        let before = matches!(op, Op::Edit).then(|| self.conduit.core().chat_ctx().clone());
        let faults = self.server.faults();
        let version = self.conduit.core().version();
        let context = self.conduit.core().chat_ctx().clone();
        let action = self.app.state.action(op, version, &context, &faults, 1);
        if op.is_fault() {
            self.note(format!("fault: {op:?}"));
        }
        let manual = self.schedule.profile.manual_activity;
        let mut wait = false;
        let result = match action {
            Action::Command(command) => {
                match (&command, manual) {
                    (Command::AudioStreamEnd, false) | (Command::ActivityEnd, true) => {
                        self.app.mic.end();
                    }
                    (Command::ActivityStart, true) => self.app.mic.voice(1),
                    _ => {}
                }
                self.command(command).map(drop)
            }
            Action::Update { command, fallback } => match self.command(command) {
                Err(agent_glue::Error::Conflict { .. }) => self.command(fallback).map(drop),
                other => other.map(drop),
            },
            Action::Speech(ms) => {
                self.microphone(app::speech(ms));
                if !manual {
                    self.app.mic.voice(ms);
                    wait = self.app.mic.silence(700);
                }
                Ok(())
            }
            Action::Voice(ms) => {
                self.microphone(app::voice(ms));
                if !manual {
                    self.app.mic.voice(ms);
                }
                Ok(())
            }
            Action::Silence(ms) => {
                self.microphone(app::silence(ms));
                wait = !manual && self.app.mic.silence(ms);
                Ok(())
            }
            Action::AnswerCalls => {
                let open: Vec<String> = self
                    .app
                    .calls
                    .iter()
                    .filter(|c| !self.app.answered.contains(*c))
                    .cloned()
                    .collect();
                for call in open {
                    self.answer(&call);
                }
                Ok(())
            }
            Action::Stall(ms) => {
                self.stall_until = self.stall_until.max(self.now + ms);
                Ok(())
            }
            Action::PeerStopsReading(ms) => {
                self.peer_stops_reading(ms);
                Ok(())
            }
            Action::SlowPongs(ms) => {
                self.slow_pongs(ms);
                Ok(())
            }
            Action::Done => Ok(()),
        };
        if let Err(e) = result {
            if !matches!(e, agent_glue::Error::Closed) {
                self.app.command_errors.push(format!("{op:?}: {e}"));
            }
        }
        self.server.advance(Duration::from_millis(self.now));
        let core = self.conduit.core();
        let (version, context) = (core.version(), core.chat_ctx().clone());
        if let Some(before) = before {
            self.app.state.edited(&before, &context);
        }
        self.app.state.snapshot(version, context);
        wait
    }

    /// The server answers pings on the current connection `ms` late (slow pongs).
    pub(crate) fn slow_pongs(&mut self, ms: u64) {
        if let Some(link) = self.socket.and_then(|c| self.links.get_mut(&c)) {
            link.pong_delay = ms;
        }
    }

    /// The server stops reading the current connection for `ms`: what is on the wire waits
    /// unread, and the client's socket takes [`SOCKET_BUFFER`] more bytes, then blocks.
    fn peer_stops_reading(&mut self, ms: u64) {
        let now = self.now;
        let Some(conn) = self.socket else {
            return;
        };
        if let Some(link) = self.links.get_mut(&conn) {
            if now >= link.unread_until {
                link.buffered = 0;
            }
            link.unread_until = link.unread_until.max(now + ms);
            let until = link.unread_until;
            self.at(until, Ev::PeerReads(conn));
        }
    }

    /// The microphone delivers `pcm` (16 kHz PCM16) now, and is busy for its duration.
    pub(crate) fn microphone(&mut self, pcm: Vec<u8>) {
        let ms = pcm.len() as u64 / 32;
        self.note(format!("app pushes {ms} ms of audio"));
        self.app.mic_until = self.now + ms;
        let pcm = self.audio.push(pcm);
        if let Err(e) = self
            .conduit
            .push_audio(Millis(self.now), pcm, AtBound::DropOldest)
        {
            if !matches!(e, agent_glue::Error::Closed) {
                self.violations.push(Violation::new(
                    "audio",
                    format!("push_audio that drops at its bound was refused: {e}"),
                ));
            }
        }
    }

    /// The core is told that `conn` ended with `info`: if that was its connection and the
    /// close is one no retry can help (authentication, quota, a refused fresh `setup`), the
    /// session must end.
    fn expect_end(&mut self, conn: ConnectionId, info: &CloseInfo, fresh_setup: bool) {
        use gemini_transport::CloseClass;
        let terminal = info.class == CloseClass::AuthOrQuota
            || (fresh_setup && info.class == CloseClass::NeedsDifferentRequest);
        if terminal && self.last_opened == Some(conn) && self.must_end.is_none() {
            self.must_end = Some(format!("conn {} {info}", conn.0));
        }
    }

    /// Every check of the invariant, once the world has settled: `checks.rs` on what the
    /// checks read, and that a session told of a close no retry can help has ended.
    pub(crate) fn check(&mut self) {
        let observed = self.observed();
        self.violations.extend(checks::check(&observed));
        self.connection_ages();
        if let Some(close) = &self.must_end {
            if !matches!(self.conduit.core().closed(), Some(Some(_))) {
                self.violations.push(Violation::new(
                    "not ended",
                    format!("the session went on after {close}"),
                ));
            }
        }
    }

    /// With a maximum connection age (`ConnectionAge`), no connection outlives it: the
    /// session rotates at an idle point, or is forced at the maximum (S47). 3.8 closes a
    /// connection at 58:00 whatever the session does, so one that outlives its maximum may meet
    /// that hard close. Ages count from the client's `setupComplete` to its end as the client
    /// saw it, with a second's slack for the close itself.
    fn connection_ages(&mut self) {
        const SLACK_MS: u64 = 1_000;
        let Some((_, max)) = self.schedule.profile.age_limit else {
            return;
        };
        let now = self.now;
        let mut over: Vec<String> = self
            .links
            .iter()
            .filter_map(|(conn, link)| {
                let start = link.set_up_at?;
                let age = link.ended_at.unwrap_or(now).saturating_sub(start);
                (age > max + SLACK_MS).then(|| format!("conn {} lived {age} ms", conn.0))
            })
            .collect();
        over.sort();
        if let Some(first) = over.first() {
            self.violations.push(Violation::new(
                "connection age",
                format!("{first}, past the maximum age of {max} ms"),
            ));
        }
    }

    /// What the checks read: the application's side and the fake's own state.
    pub(crate) fn observed(&self) -> Observed {
        // The session of the client's last set-up connection (a later dial whose setup never
        // completed on the client does not count).
        let current = self
            .current
            .and_then(|conn| self.links.get(&conn))
            .and_then(|l| l.server)
            .and_then(|sid| {
                self.server
                    .connections()
                    .into_iter()
                    .find(|r| r.id == sid)
                    .and_then(|r| r.session)
            })
            .and_then(|id| self.server.session(id));
        let core = self.conduit.core();
        Observed {
            context: core.chat_ctx().clone(),
            prior_versions: self.app.state.prior_versions.clone(),
            events: self.app.events.iter().map(|(_, e)| e.clone()).collect(),
            calls: self.app.calls.clone(),
            command_errors: self.app.command_errors.clone(),
            rejections: self.rejections.clone(),
            sessions: self
                .server
                .sessions()
                .into_iter()
                .filter_map(|id| self.server.session(id))
                .collect(),
            current,
            instructions: self.app.state.instructions.clone(),
            tools: self.app.state.tools.clone(),
            gave_up: matches!(core.closed(), Some(Some(_))),
            default_policy: self.schedule.profile.policy.is_default(),
            // What a killed worker held or had written of the microphone died with it,
            // unreported by design: the byte-by-byte check holds for runs without a kill.
            audio: (!self.killed).then(|| {
                self.audio.tally(
                    &self.server_audio(),
                    self.conduit.waiting_audio_bytes() as u64 + self.audio_left,
                )
            }),
            owners: self.owners.clone(),
            call_lineages: self.call_lineages.clone(),
        }
    }

    /// Microphone audio the server's own records show it received, frame by frame, on each
    /// of the client's connections.
    fn server_audio(&self) -> BTreeMap<ConnectionId, Vec<Vec<u8>>> {
        let records = self.server.connections();
        self.links
            .iter()
            .filter_map(|(&conn, link)| {
                let sid = link.server?;
                let record = records.iter().find(|r| r.id == sid)?;
                let frames = record
                    .frames
                    .iter()
                    .filter_map(|f| match f.decode() {
                        Ok(ClientMessage::RealtimeInput(RealtimeInput::Audio(blob))) => {
                            Some(blob.data.clone())
                        }
                        _ => None,
                    })
                    .collect();
                Some((conn, frames))
            })
            .collect()
    }
}

/// The first 160 characters of `text` (all of it when `SESSION_SIM_FULL_FRAMES` is set: a
/// trace only).
pub(crate) fn short(text: &str) -> String {
    if text.chars().count() <= 160 || std::env::var_os("SESSION_SIM_FULL_FRAMES").is_some() {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(160).collect();
        format!("{cut}…")
    }
}
