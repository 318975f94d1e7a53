//! `session-sim`: a deterministic simulator that keeps the exactly-once promise honest.
//!
//! # The domain
//!
//! The promise (every item the application puts in its context reaches the model's session
//! once, in order, across any number of reconnects; what cannot is reported) fails in the
//! combinations nobody writes down. So, as FoundationDB and TigerBeetle do, this crate runs the
//! session's whole sans-IO layer ([`agent_glue::conduit::Conduit`], the decisions
//! [`LiveSession`](agent_glue::LiveSession) drives over sockets, with the session core inside)
//! against the fake server's own session logic ([`gemini_fake::SimServer`], never the client's
//! model of it) on virtual time, under schedules of random operations and faults drawn from a
//! seed:
//!
//! - operations: typed turns, turns that name a tool, tool results at random moments (the
//!   application answers every call after a random delay), appends, stale and current
//!   `update_chat_ctx`, edits, `generate_reply` with and without instructions, instruction
//!   and tool changes, `interrupt` (also, in some schedules, as an answer starts), speech:
//!   whole utterances, utterances in pieces (voice and silence pushed in real time, other
//!   operations and faults between them) ended by silence or `audioStreamEnd`, and, with manual
//!   activity detection, `activityStart`/`activityEnd`;
//! - faults: drops (with frames lost behind the reset), 1011/1000/1001 closes, 1007/1008/1009
//!   after setup, authentication and quota closes, goAways, refused resumes and setups,
//!   expired and withheld handles, dials refused with 503 or 401/403/429, setups never
//!   answered, stalls, handle lag, slow writes (audio pushed meanwhile waits in the shell's
//!   backlog), a peer that stops reading (its socket buffers fill, then writes block until
//!   the write deadline), slow pongs (past the keepalive timeout); one schedule in eight
//!   meets a fault that must end the session;
//! - profiles: families 2.5, 3.1 and 3.8, the Developer API and Vertex, transparent or not,
//!   TEXT or AUDIO, automatic or manual activity detection, network latency 1–20 ms,
//!   `DefaultPolicy` reseeding or reporting edits ([`Policy`]; the mutants `ReplayAlways` and
//!   `SkipReplay` on request);
//! - 8 to 200 steps, most short ([`Schedule::generate`]).
//!
//! The application acts while the user speaks, with one rule that keeps the check decidable:
//! after audio that may have ended an utterance by the server's activity detection, it waits
//! for that utterance's input transcript (or the end of the connection, or 25 s of virtual
//! time) before its next step or tool answer. Which of a message sent between the detected end
//! of speech and the transcript's arrival the server took first, the protocol does not tell
//! the client. Explicit ends (`audioStreamEnd`, `activityEnd`) need no wait.
//!
//! After the schedule's last step the world settles (faults stop, handles flow, calls are
//! answered) and [`check`](run) compares: every item of `L` in the server's context once and
//! in its order, except items a `Divergence` named (in any version `L` held), and nothing on
//! the server that `L` lacks; after giving up, every item on the server or reported; under
//! `DefaultPolicy`, every divergence for a reason in `resume_policy::UNDELIVERABLE`; a session
//! told of an authentication, quota or refused fresh `setup` close ends; no tool response the
//! server ignored as unknown or duplicate; no tool run twice for one turn; no turn answered
//! twice; every `Reconnecting` closed by one `Reconnected` or `Closed`; never two open
//! connections; no 1007/1008 on a payload (other than a fault's); the server's instructions
//! and tools are the application's latest; no `InvariantBroken` event (a ledger step the core
//! refused); and byte by byte (each sample stamped, each frame matched to the bytes it
//! carried), every byte of microphone audio received by the server once (its own records), or
//! covered by an `AudioDropped` report (dropped at a bound, or written on a connection that
//! ended and not proven received), or still waiting. A loss nobody reported is a violation; a
//! report may cover audio that did arrive, but only audio written since the connection's last
//! receipt.
//!
//! A failing schedule is shrunk ([`shrink`]) to the fewest steps that still fail, and printed
//! with the command that replays it.
//!
//! [`Pair`] drives the same world from a script instead of a schedule: the reconnect
//! scenarios (`tests/scenarios/`) start a session with a chosen policy, issue commands and
//! inject faults at chosen virtual times, and assert on the server's own records (contexts,
//! frames per connection) and on the events the application saw, in milliseconds of wall
//! time.
//!
//! ```
//! let schedule = session_sim::Schedule::generate(7);
//! let outcome = session_sim::run(&schedule);
//! for violation in &outcome.violations {
//!     println!("{violation}");
//! }
//! ```

mod app;
mod audio_trail;
mod checks;
mod pair;
mod rng;
mod schedule;
mod shrink;
mod soak;
mod socket;
mod world;

pub use app::{Interleaving, Interleavings, TOOLS};
pub use checks::Violation;
pub use pair::{Pair, PairBuilder};
pub use rng::Rng;
pub use schedule::{
    Fleet, Op, Policy, Profile, Schedule, Step, draw_fleet, draw_only_extended_thinking,
    draws_fleet, draws_only_extended_thinking,
};
pub use shrink::shrink;
pub use soak::soak_one;
pub use world::{Outcome, run, run_traced};
