//! `agent-glue`: a Gemini Live session whose chat context reaches the model exactly once,
//! across any number of reconnects.
//!
//! # The domain
//!
//! A Gemini Live connection lasts about ten minutes; the server session lives on through
//! resumption handles. Integrations that replay history on a resumed session duplicate it;
//! those that skip it lose whatever the handle does not hold (a tool result that completed
//! while the socket was down, a turn sent just before a drop). A [`LiveSession`] keeps three
//! things apart (docs/design.md section 4):
//!
//! - the **desired** context `L`: what the application wants the model to have
//!   ([`LiveSession::chat_ctx`]);
//! - the **mirror** `S`: what the server session is known to hold, and the part of it the
//!   newest adopted handle provably holds (what a resumed session will hold after a loss);
//! - the **outbox**: every context-changing operation (appends, tool results, instruction and
//!   tool changes, reply requests) with its delivery state.
//!
//! On every (re)connect the session asks a [`ResumePolicy`] for
//! a plan and executes it; it never decides on its own. Every end goes through the policy
//! too: a failure no retry fixes (authentication or quota refused, a rejected first `setup`)
//! is planned as [`Trigger::Fatal`](policy::Trigger::Fatal), whose give-up plan
//! reports what was not delivered before the terminal [`SessionEvent::Closed`] (and the
//! session ends even if a custom policy asks to reconnect). What a plan cannot deliver is
//! reported as [`SessionEvent::Divergence`]. Every reconnect emits one
//! [`SessionEvent::Reconnecting`] and one [`SessionEvent::Reconnected`] (or a terminal
//! [`SessionEvent::Closed`]).
//!
//! # The core, the conduit and the shell
//!
//! Every session decision is made by [`conduit::SessionCore`], a deterministic state machine with
//! no tokio, no socket, no clock and no randomness of its own (quinn-proto's `Connection` is
//! the model): the application's commands, decoded server messages, connection ends and the
//! time go in; client messages, open/close requests, events and the next timer come out.
//! Every decision on the socket's side (the write queue and its flush order, the microphone's
//! buffers, keepalive and write deadlines, which audio a connection that ended took
//! unconfirmed, close sequencing) is made by [`conduit::Conduit`], sans-IO too, which owns the
//! core. [`LiveSession`] is the async shell that moves frames and timers for the conduit and
//! decides nothing. Both sit in the one documented module for other runtimes,
//! [`conduit`], and can be driven without sockets ([`LiveSessionBuilder::into_sans_io`],
//! [`LiveSessionBuilder::into_core`]); the `session-sim` crate runs the conduit under random
//! schedules of operations and faults. An application needs none of it.
//!
//! # The API
//!
//! [`LiveSession::builder`] takes an [`Endpoint`] and a model; the builder sets the whole
//! `setup` (generation, speech, thinking, activity detection, transcription, built-in tools,
//! and [`LiveSessionBuilder::configure_setup`] for the rest) and refuses, before dialing, what
//! the model would close the connection for. [`LiveSessionBuilder::connect`] returns the
//! session and its [`SessionEvents`] once the first setup is complete. Inputs, each returning
//! what it created: [`LiveSession::send_text`], [`LiveSession::push_audio`] (PCM16 at the
//! session's rate, without a copy), [`LiveSession::push_samples`] (`i16`/`f32` at any rate,
//! mono or interleaved: [`AudioFormat`]), [`LiveSession::push_video_frame`],
//! [`LiveSession::update_chat_ctx`]
//! (conditional on the version of the context it was derived from,
//! [`LiveSession::snapshot`]), [`LiveSession::append_chat_items`],
//! [`LiveSession::update_instructions`],
//! [`LiveSession::update_tools`], [`LiveSession::send_tool_result`] (and
//! [`LiveSession::send_tool_result_with`]: the [`Scheduling`] of a non-blocking call's result,
//! interim results), [`LiveSession::generate_reply`], [`LiveSession::interrupt`],
//! [`LiveSession::close`]. [`SessionEvent::Idle`] says when an interaction is over.
//!
//! # Under load and attack
//!
//! Audio travels as [`bytes::Bytes`] ([`IntoPcm`]), in and out, and a chunk pushed while the
//! socket is idle is written from the caller's thread with no wake-up of another task. Every
//! buffer is bounded: microphone audio by duration ([`LiveSessionBuilder::audio_backlog`],
//! [`LiveSessionBuilder::audio_gap`]; at the bound [`LiveSession::push_audio`] drops the
//! oldest, [`LiveSession::try_push_audio`] returns [`Error::Full`],
//! [`LiveSession::push_audio_wait`] waits), events by count
//! ([`LiveSessionBuilder::event_capacity`]; only model audio is ever shed, reported by
//! [`SessionEvent::ModelAudioDropped`]), incoming frames to one in hand (TCP pushes back), and
//! resumption handles by size ([`SessionEvent::HandleTooLarge`]). A peer that stops reading is
//! given up by the write deadline ([`LiveSessionBuilder::write_timeout`]) or the keepalive
//! ([`Keepalive`]) and the session reconnects; [`LiveSession::close`] returns whatever the
//! socket does. [`LiveSession::buffered`] reports what the buffers hold.
//!
//! The example runs against the in-process fake server (`gemini-fake`); with a real key, build
//! the endpoint with `Endpoint::api_key(key)` and leave out `with_base_url`.
//!
//! ```
//! use agent_glue::{Endpoint, LiveSession, Modality, SecretString, SessionEvent};
//! use gemini_fake::{FakeConfig, FakeServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = FakeServer::start(FakeConfig::new()).await?;
//! let endpoint = Endpoint::api_key(SecretString::from("no-key")).with_base_url(&server.url())?;
//! let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
//!     .modality(Modality::Text)
//!     .connect()
//!     .await?;
//! session.send_text("Hello!")?;
//! let mut answer = String::new();
//! while let Some(event) = events.recv().await {
//!     match event {
//!         SessionEvent::Text(text) => answer.push_str(&text),
//!         SessionEvent::TurnComplete => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(answer, "echo: Hello!");
//! // The application's context holds the turn and the answer, as the server does.
//! let texts: Vec<String> = session.chat_ctx().iter().filter_map(|i| i.as_message()).map(|m| m.text()).collect();
//! assert_eq!(texts, ["Hello!", "echo: Hello!"]);
//! assert_eq!(server.latest_session().map(|s| s.context_texts()), Some(texts));
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

mod audio_in;
mod audio_path;
pub mod conduit;
mod config;
mod convert;
mod core;
mod error;
mod events;
mod gap;
mod handle;
#[cfg(feature = "store")]
pub mod keeper;
mod ledger;
mod metrics;
#[cfg(feature = "store")]
mod ownership;
mod pcm;
mod queue;
mod session;
mod session_error;
mod wire_plan;

pub use audio_in::{AudioFormat, Sample};
pub use config::{AudioGapPolicy, ConnectionAge, Keepalive, LiveSessionBuilder};
pub use ctx_model::Scheduling;
pub use error::Error;
pub use events::{
    MAX_TOOL_CALLS_PER_FRAME, ReconnectReason, ReconnectStrategy, Reconnected, SessionEvent, Usage,
};
pub use handle::{
    Buffered, ImageFormat, LiveSession, MAX_IMAGE_BYTES, SessionEvents, ToolResultOptions,
};
pub use metrics::SessionMetrics;
pub use pcm::{IntoPcm, pcm16_to_f32, pcm16_to_i16};
pub use session_error::{SessionError, TransportCause};

// What an agent names, from the crates this one is built on, under this crate's root: an
// application depends on `agent-glue` alone (plus `tokio`).

/// The application's chat context.
pub use ctx_model::{
    ChatContext, ChatContextBuilder, ContentPart, FunctionCall, FunctionOutput, Item, ItemId,
    Message, MessageOrigin, Role,
};
/// What the session's `setup` carries.
pub use gemini_transport::wire::{
    ActivityHandling, Behavior, ContextWindowCompression, EndSensitivity, FunctionDeclaration,
    MediaResolution, Modality, StartSensitivity, ThinkingLevel, TurnCoverage,
};
/// What the session's events carry from the server.
pub use gemini_transport::wire::{
    GroundingChunk, GroundingMetadata, InteractionStatus, ModalityTokenCount, SearchEntryPoint,
    TurnCompleteReason, WebSource,
};
/// Where to connect and with which credential.
pub use gemini_transport::{
    ConnectConfig, CredentialError, CredentialFuture, CredentialSource, Endpoint, Proxy,
    ProxyConfig, SecretString,
};
/// Resume policies and what they plan with.
pub use resume_policy::{
    DefaultPolicy, DivergenceReason, GiveUpReason, ModelCapabilities, ModelFamily, OpId,
    ResumePolicy, SetupRule,
};
/// JSON for tool arguments and results (`json!`), as `serde_json` defines it.
pub use serde_json::{Value, json};

pub use ctx_model as context;
/// The transport crate (`gemini-transport`): endpoints, the connection, and the wire types of
/// every Live API message (`transport::wire`).
pub use gemini_transport as transport;
#[cfg(feature = "store")]
pub use ownership::{DEFAULT_LEASE_TTL, HAND_OFF_DRAIN, MIN_LEASE_TTL};
/// The planner crate (`resume-policy`): everything a custom [`ResumePolicy`] reads and returns
/// (`ResumeContext`, `ResumePlan`, `Route`, …).
pub use resume_policy as policy;
/// The chat context crate (`ctx-model`): diff and apply, and every context type.
/// The session store (feature `store`): `SessionStore`, its stores, keys and leases.
#[cfg(feature = "store")]
pub use session_store as store;

/// The README's Rust examples, compiled as doctests so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
