//! The fake "as the service is now" (docs/protocol.md sections 7 and 10): one server for every
//! model, each family's rules, the 3.8 tool and turn rules, extended thinking, the server's
//! events, connection lifetimes and faults, and the context window. Each test is named after the
//! rule it checks; most drive `SimServer` on virtual time (the same logic as the socket server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connections;
mod context;
mod events;
mod extended;
mod models;
mod support;
mod tools;
mod turns;
