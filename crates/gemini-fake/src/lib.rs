//! `gemini-fake`: a faithful local Gemini Live server with fault injection and inspection.
//!
//! # The domain
//!
//! Google's Gemini Live API (`BidiGenerateContent`) is a WebSocket protocol. A *connection*
//! starts with a `setup` frame and lasts about ten minutes; a *session* (the model's
//! conversation state) outlives it through *resumption handles* that the server hands out in
//! `sessionResumptionUpdate` messages. Libraries that promise "exactly-once context across
//! reconnects" must be tested against drops, `goAway`s, refused and stale handles, and the model
//! families' different rules for `clientContent`. No test machine reaches Google and nobody wants
//! to spend quota on reconnect tests, so this crate is the server the tests, the examples and
//! users run against: in-process ([`FakeServer::start`]), as the `gemini-fake` binary, or
//! without sockets on virtual time for deterministic simulation ([`SimServer`]).
//!
//! It keeps its own model of server state on top of the transport's wire types (never the
//! client's `ctx-model`), so that one misunderstanding cannot hide itself on both sides.
//!
//! # Serving
//!
//! - Paths `/ws/google.ai.generativelanguage.{v1,v1beta,v1alpha}.GenerativeService.{BidiGenerateContent,BidiGenerateContentConstrained}`
//!   (a doubled slash is tolerated) or, with [`FakeConfig::with_vertex`], the Vertex path
//!   `/ws/google.cloud.aiplatform.{v1,v1beta1}.LlmBidiService/BidiGenerateContent`. Other paths
//!   get HTTP 404.
//! - Credentials: `x-goog-api-key`, `Authorization: Token …` / `Bearer …`, `?key=`,
//!   `?access_token=`. When a key is configured and none matches, the upgrade succeeds and the
//!   server closes at once with 1007 `API key not valid. Please pass a valid API key.` (one of the
//!   two behaviours seen from the real service).
//! - Server JSON in binary frames by default ([`FrameKind`]); client frames of either kind;
//!   pings answered. Client frames are decoded strictly by
//!   [`gemini_transport::wire::ClientMessage::from_json`]: both key spellings and both base64
//!   alphabets, unknown fields rejected with 1007 (transcription configs excepted: they are
//!   opaque, as on the service).
//! - With [`FakeConfig::with_tls`] (the binary's `--tls`), `wss://` with a certificate
//!   ([`TlsIdentity::self_signed`] makes one for 127.0.0.1 and localhost).
//!
//! # Rules enforced (close codes as the service uses them)
//!
//! One server serves every model: the model id in each `setup` chooses the [`Family`] whose rules
//! the connection follows ([`Family::from_model_id`]; [`FakeConfig::with_family`] only names the
//! default model). The families' table is docs/protocol.md section 10
//! ([`Family::capability_table`]; a test checks the two agree).
//!
//! - The first frame must be `setup` and there must be only one: otherwise 1007
//!   `Request contains an invalid argument.`; an undecodable frame also gets 1007.
//! - Unknown model (not one of any family's [`Family::model_ids`] on the surface served): 1008
//!   `models/X is not found for API version V, …`.
//! - [`Family`] capabilities: on 3.1, `clientContent` outside the initial-history phase → 1007
//!   (unless [`FakeConfig::with_lenient_3_1`]); `contextUpdate` outside 3.8 → 1007;
//!   `sessionResumption.transparent` outside Vertex → 1007.
//! - 3.8: `thinkingConfig`, `proactivity.proactiveAudio: false`, `enableAffectiveDialog` (Developer
//!   API) and a `TEXT` response modality (unless the test switch [`FakeConfig::with_text_on_3_8`])
//!   → 1007. Extended thinking: no `thinkingLevel`, a `BLOCKING` declaration (in `setup` or
//!   `contextUpdate`), or `scheduling` in a function response → 1007.
//! - `activityStart`/`activityEnd` while automatic activity detection is on → 1007.
//! - One socket per session: a resume while another connection of the session is open → 1011
//!   (unless [`FakeConfig::with_concurrent_connections`]).
//! - Without `contextWindowCompression`, a session past its limits ([`ContextLimits`]) → 1011.
//!
//! # The scripted model
//!
//! Deterministic, so a test can predict every frame:
//!
//! - **Input.** A user turn is: `clientContent` with `turnComplete: true` (its turns are appended
//!   to the context first; with `turnComplete: false` they are only appended), a
//!   `realtimeInput.text` (appended as a user text turn), or speech. The model answers the text
//!   `T` of the *last user turn added since its previous answer started* (`""` if none); a model
//!   turn a client sends in `clientContent` (history) answers the user turns before it.
//! - **Answer.** `echo: T`, cut into chunks of one word each (trailing space included, so the
//!   chunks concatenate to the answer), one chunk per `chunk_interval` (5 ms by default), the first
//!   one interval after the input. TEXT modality: each chunk is a `modelTurn` text part. AUDIO
//!   modality (the default when `responseModalities` is absent): each chunk is 40 ms of a 440 Hz
//!   sine as 24 kHz 16-bit PCM in `modelTurn.inlineData`, plus the chunk's text as
//!   `outputTranscription` when the setup enabled it (in the same frame on 3.x, in the next frame
//!   on 2.5). Then `{"serverContent":{"generationComplete":true}}`, then
//!   `{"serverContent":{"turnComplete":true},"usageMetadata":{…}}` where token counts are word
//!   counts (prompt: the whole context; response: the answer). The answer is appended to the
//!   context as a model turn ([`Part::Text`], or [`Part::AudioTranscript`] for audio).
//! - **Tools.** If a function declared in the setup (or by `contextUpdate`) has its name in `T`
//!   (the first declared one that occurs), the model instead sends
//!   `{"toolCall":{"functionCalls":[{"id":"call-<session>-<n>","name":NAME}]}}` (n counts calls
//!   per session from 1, args empty) and appends a model turn with the call. A **blocking** call
//!   (the default before 3.8, `behavior: BLOCKING` on 3.8; 3.1 ignores `behavior`) makes the
//!   model wait: a `toolResponse` answering every blocking call appends a user turn with the
//!   responses and starts a new generation answering `NAME returned <response as compact JSON>`
//!   (several responses joined by a space), unless every response has `scheduling: SILENT`. After
//!   a **non-blocking** call (the 3.8 default, `behavior: NON_BLOCKING` on 2.5) the model goes on
//!   and completes its turn saying `working on NAME`; the call stays pending, and its response
//!   enters the context and is answered (`NAME returned …`) by a later turn as its `scheduling`
//!   says: `INTERRUPT` cuts a reply in progress, `WHEN_IDLE` (or none) waits until the model is
//!   idle, `SILENT` is not answered. `willContinue: true` on a non-blocking call's response is an
//!   interim result: it enters the context (and is answered as scheduled), and the call stays
//!   open until a final one. Responses for cancelled, answered or unknown ids are recorded
//!   ([`ResponseFate`]) and ignored. When the last turn a user turn adds is a `clientContent`
//!   turn carrying `functionResponse` parts (results delivered as history), the answer is the
//!   same `NAME returned …` text.
//! - **3.8 turns.** Every `turnComplete` carries `interactionStatus: IDLE`; on extended thinking
//!   a turn completes `IN_PROGRESS` while a call is pending, and while it stays pending and the
//!   model is idle it speaks fillers (`still working on NAME`, every 3 s, at most 3 per wait:
//!   [`FakeConfig::with_fillers`]). A `clientContent` without `turnComplete: true` does not cut
//!   a reply on 3.8; content that arrives while a reply streams (that, or a function response)
//!   goes after the reply in the context.
//! - **Interruption.** `clientContent` (on 3.8 only with `turnComplete: true`), realtime text,
//!   `activityStart`, or the start of speech (unless `NO_INTERRUPTION`) while the model generates
//!   or waits for a blocking call cuts it off: `toolCallCancellation` with the blocking calls'
//!   ids (if any; non-blocking calls run on), `{"interrupted":true}`, then `turnComplete` with
//!   usage (no `generationComplete`). The part already produced is appended to the context as
//!   the model turn. Then the new input is processed.
//! - **Speech.** With automatic activity detection, an audio chunk whose RMS exceeds the threshold
//!   (500) is speech; after `silenceDurationMs` (setup) or 500 ms of silence, or on
//!   `audioStreamEnd`, the speech becomes a user turn `[audio 1.20s]` (seconds from the first to
//!   the last voiced chunk), sent as a finished `inputTranscription` when enabled. On 3.1 and 3.8
//!   the start and end of speech are also sent as `voiceActivity` (`ACTIVITY_START`,
//!   `ACTIVITY_END`). With `automaticActivityDetection.disabled`, the audio between
//!   `activityStart` and `activityEnd` makes the turn.
//! - **Context window.** With `contextWindowCompression`, before a user turn is answered a
//!   context past the trigger loses its oldest turns, cut where a user turn begins, down to the
//!   target ([`SessionSnapshot::trims`] shows what went); without it the session ends past its
//!   [`ContextLimits`]. Token counts: [`SessionSnapshot::context_tokens`].
//! - **History.** With `historyConfig.initialHistoryInClientContent`, every connection (resumed
//!   or not) first takes `clientContent` as history, appended without any answer, until one has
//!   `turnComplete: true` (strict behaviour, docs/protocol.md section 7.8).
//!
//! # Resumption
//!
//! Only when the setup carries `sessionResumption`. A resumable update with a new handle
//! (`fake-handle-<session>-<n>`) is sent after `setupComplete`, after every message that changed
//! the session while the model is idle (in transparent mode after every message while idle), and
//! at every `turnComplete`. When a generation starts (also the continuation after a tool
//! response) a `{}` update (not resumable) is sent, and none with a handle until the model is idle
//! again. **A handle is a snapshot** of the model state (context and pending calls) at issuance;
//! resuming from it makes the session's context exactly that snapshot, so resuming from an older
//! handle loses what came after it. The session's journal (generations, calls, responses,
//! answers, connections) is never rolled back. Handles stay valid while their session has an open
//! connection, and for the expiry (2 h) after the later of their issuance and the session's last
//! disconnect; unknown or expired handles close the resumed setup with 1007. In transparent mode
//! every update carries `lastConsumedClientMessageIndex` ([`IndexConvention`]). With a handle lag
//! of N, a handle's snapshot is the state N client messages back (never before the last message
//! the model visibly answered), and the index says so.
//!
//! With a connection lifetime (by default the family's: about ten minutes on 2.5 and 3.1, none on
//! 3.8), `goAway{timeLeft}` is sent `go_away_lead` before the end, and the connection is closed at
//! the end with the configured [`LifetimeEnd`]. On 3.8 a connection is closed at 58:00 with 1011
//! `Deadline expired …` and no `goAway` ([`FakeConfig::with_hard_close`],
//! [`Faults::hard_close_at`]). Both count from the upgrade.
//!
//! A resumed setup whose session still has an open connection is closed with 1011 (one socket per
//! session, as the service does); once that connection has closed, the same handle resumes.
//! [`SessionSnapshot::overlaps`] counts such attempts so a test can assert "never two sockets";
//! [`FakeConfig::with_concurrent_connections`] accepts them instead (the older connection stays
//! open). On Vertex `setupComplete` carries `sessionId` (`fake-session-<n>`, the same on every
//! connection of the session).
//!
//! # For tests
//!
//! - **Inspection** ([`FakeServer::session`], [`FakeServer::latest_session`],
//!   [`FakeServer::connections`], [`FakeServer::inspect`]): per session the context ([`Turn`]s
//!   of [`Part`]s, in order), generations, tool calls and responses with ids, cancelled ids,
//!   answers, handles issued and restored, and per connection every frame received
//!   ([`ReceivedFrame`], with its per-connection index) and how it ended ([`ConnectionEnd`]).
//!   [`FakeServer::wait_for`] re-checks a condition on every state change, so tests need no
//!   sleeps; its timeout is wall-clock time, safe under paused tokio time.
//! - **Faults** ([`FakeServer::faults`]): drop (TCP reset, no close frame), close with a code,
//!   refuse the next resume, expire all handles, withhold handles, refuse upgrades (dial
//!   failures), stall, delay frames, send a malformed or raw frame, `goAway` now, pongs late
//!   while data flows ([`Faults::delay_pongs`]; [`SimServer::pong_delay`] for a simulator that
//!   models pings), the hard close at an age ([`Faults::hard_close_at`]) and resumes refused
//!   after it ([`Faults::refuse_resumes_after_hard_close`]), ephemeral tokens with uses and
//!   expiry ([`Faults::issue_token`]: every connection spends a use, so a `uses: 1` token cannot
//!   resume), and faults scheduled on later events ([`Trigger`]: the next setup, the next
//!   `setupComplete`, the N-th client message).
//!
//! # Guesses
//!
//! Where the service's behaviour is not documented, the fake follows these guesses (each is
//! flagged where docs/protocol.md describes the rule):
//!
//! - Context window and limits: the token count, when the sliding window runs and where it cuts,
//!   and the 1011 that ends a session past its limits (`limits.rs`, [`ContextLimits`]).
//! - 3.1 ignores `behavior` (its calls are synchronous only); 2.5 honours `NON_BLOCKING`.
//! - A non-blocking response without `scheduling` is delivered `WHEN_IDLE`; a handle is issued
//!   while the model is idle even with non-blocking calls pending (it holds them).
//! - A result that arrives while the model speaks is answered after that turn; when the user's
//!   speech cuts the turn off, the answer stays owed and follows the next turn that completes.
//!   No resumable handle is issued while an answer is owed (the model is not idle).
//! - Extended thinking's fillers: every 3 s while a call is pending and the model is idle, at
//!   most 3 per wait.
//! - `voiceActivity` is sent on 3.1 and 3.8, under automatic activity detection only.
//! - 3.8 connections have no ten-minute lifetime; the 58:00 hard close comes without `goAway`.
//!   The 1011 refusing a second socket says `The service is currently unavailable.`.
//! - An ephemeral token's use is spent by every connection (the reported behaviour, not the
//!   documented intent); an expired one is closed with 1007 `Token has expired.`.
//!
//! All timers (chunks, lifetime, `goAway`, handle expiry) read one clock: tokio time for
//! [`FakeServer`], so tests can pause it, and virtual time for [`SimServer`].
//!
//! # Simulation
//!
//! [`SimServer`] is the same server (the same conversation logic, session state, handles,
//! [`Faults`] and inspection) driven by plain calls instead of sockets, on virtual time, with no
//! tokio runtime, thread or socket: a client dials ([`SimServer::connect`]; `Err(status)` under
//! [`Faults::refuse_upgrades`]), sends JSON frames ([`SimServer::receive`]) and closes or
//! vanishes ([`SimServer::client_closed`]); what the server does on each connection (messages,
//! raw frames, a close, a drop) comes out of [`SimServer::poll_output`] as [`SimOutput`]s, in
//! the order produced. Time is a [`Duration`](std::time::Duration) since creation:
//! [`SimServer::next_timer`] says when a connection next wants to act (a chunk, a delayed frame,
//! `goAway`, the end of its lifetime) and [`SimServer::advance`] runs every due timer in time
//! order, each at its own time. It is cheap to create and deterministic (the same calls give the
//! same outputs and records), for simulators that run many random schedules.
//!
//! What a connection does between frames (its lifetime, `goAway` deadlines, the outgoing queue
//! with stall and delay, the controls [`Faults`] sends, recording how it ended) is one piece of
//! code that the socket server and the simulator both drive. The simulation leaves out only what
//! needs a socket: the HTTP upgrade (the default path; a key only through
//! [`SimServer::connect_with_key`]), frame types (outputs are decoded messages), pings, the close
//! handshake (a close ends the connection at once, where the socket server waits up to 2 s for
//! the client's reply) and shutdown.
//!
//! ```
//! use std::time::Duration;
//! use gemini_fake::{FakeConfig, SimOutput, SimServer};
//! use gemini_transport::wire::{ClientMessage, Modality, Setup};
//!
//! // No connection lifetime: once the answer is out, nothing is pending.
//! let config = FakeConfig::new().with_lifetime(None);
//! let mut sim = SimServer::new(config.clone());
//! let conn = sim.connect(Duration::ZERO).expect("no upgrade is refused");
//! let setup = Setup::new(config.setup_model()).with_response_modality(Modality::Text);
//! sim.receive(conn, ClientMessage::setup(setup).to_json().as_bytes(), Duration::ZERO);
//! sim.receive(conn, ClientMessage::text("hi").to_json().as_bytes(), Duration::ZERO);
//! while let Some(at) = sim.next_timer() {
//!     sim.advance(at);
//! }
//! // Two chunks ("echo: ", "hi"), 5 ms apart.
//! assert_eq!(sim.now(), Duration::from_millis(10));
//! let mut frames = 0;
//! while let Some((_, output)) = sim.poll_output() {
//!     assert!(matches!(output, SimOutput::Frame(_)));
//!     frames += 1;
//! }
//! // setupComplete, two chunks, generationComplete, turnComplete.
//! assert_eq!(frames, 5);
//! assert_eq!(sim.latest_session().map(|s| s.context_texts().len()), Some(2));
//! ```
//!
//! # Example
//!
//! ```
//! use gemini_fake::{FakeConfig, FakeServer, Family};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gemini_fake::Error> {
//! let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38)).await?;
//! assert!(server.url().starts_with("ws://127.0.0.1:"));
//! assert!(server.sessions().is_empty());
//! server.faults().stall();
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod context;
mod conversation;
mod endpoint;
mod error;
mod family;
mod faults;
mod handles;
mod inspect;
mod limits;
mod link;
mod load;
mod outbound;
mod pong;
mod script;
mod server;
mod session;
mod setup;
mod shared;
mod sim;
mod tls;
mod vad;

pub use config::{ContextLimits, FakeConfig, FrameKind, IndexConvention, LifetimeEnd};
pub use context::{Part, PendingCall, Role, Turn};
pub use error::Error;
pub use family::{Capabilities, Family, SetupRule};
pub use faults::{FaultAction, Faults, Trigger};
pub use inspect::ServerView;
pub use load::LoadCounts;
pub use server::FakeServer;
pub use session::{
    AnswerRecord, ConnectionEnd, ConnectionId, ConnectionRecord, IssuedHandle, ReceivedFrame,
    ResponseFate, SessionId, SessionSnapshot, ToolCallRecord, ToolResponseRecord, TrimRecord,
};
pub use sim::{SimOutput, SimServer};
pub use tls::TlsIdentity;
