//! `gemini-transport`: the Gemini Live wire protocol and its WebSocket connection.
//!
//! (Crate docs are completed by issue 2.)

pub mod error;
pub mod wire;

pub use error::Error;
