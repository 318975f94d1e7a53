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
//!   and tool changes, `interrupt`, speech;
//! - faults: drops (with frames lost behind the reset), 1011/1000/1001 closes, goAways,
//!   refused resumes, expired and withheld handles, refused dials, stalls, handle lag, slow
//!   writes (audio pushed meanwhile waits in the backlog), a peer that stops reading (its
//!   socket buffers fill, then writes block until the write deadline), slow pongs (past the
//!   keepalive timeout);
//! - profiles: families 2.5, 3.1 and 3.8, the Developer API and Vertex, transparent or not,
//!   TEXT or AUDIO, network latency 1–20 ms.
//!
//! After the schedule's last step the world settles (faults stop, handles flow, calls are
//! answered) and [`check`](run) compares: every item of `L` in the server's context once and
//! in its order, except items a `Divergence` named, and nothing on the server that `L` lacks;
//! no tool response the server ignored as unknown or duplicate; no tool run twice for one
//! turn; no turn answered twice; every `Reconnecting` closed by one `Reconnected` or `Closed`;
//! never two open connections; no 1007/1008 on a payload; the server's instructions and tools
//! are the application's latest; and byte by byte (each sample stamped, each frame matched to
//! the bytes it carried), every byte of microphone audio received by the server once (its own
//! records), or covered by an `AudioDropped` report (dropped at a bound, or written on a
//! connection that ended and not proven received), or still waiting. A loss nobody reported is
//! a violation; a report may cover audio that did arrive, but only audio written since the
//! connection's last receipt.
//!
//! A failing schedule is shrunk ([`shrink`]) to the fewest steps that still fail, and printed
//! with the command that replays it.
//!
//! ```
//! let schedule = session_sim::Schedule::generate(7);
//! let outcome = session_sim::run(&schedule);
//! assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
//! ```

mod app;
mod audio_trail;
mod checks;
mod rng;
mod schedule;
mod shrink;
mod soak;
mod socket;
mod world;

pub use app::TOOLS;
pub use checks::Violation;
pub use rng::Rng;
pub use schedule::{Op, Profile, Schedule, Step};
pub use shrink::shrink;
pub use soak::soak_one;
pub use world::{Outcome, run};
