//! The application's chat context, and what of a change to it a live Gemini session can receive.
//!
//! # The domain
//!
//! A Gemini Live session holds a conversation: user and model turns, function calls and their
//! outputs. The application keeps its own copy, the **desired** context: what it wants the model
//! to know. The session layer keeps a second one, the **mirror**: what the server is known to
//! hold. Both are a [`ChatContext`], an ordered list of [`Item`]s with stable, unique
//! [`ItemId`]s (system instructions are not items; they belong to the session configuration).
//!
//! The protocol lets a client *append* to the server's conversation (a new turn, a tool
//! response) and nothing else: there is no message that edits, removes or reorders a turn the
//! server already holds. So whenever the desired context changes, the question is whether the
//! change is an append after everything the mirror holds (deliverable) or a rewrite of held
//! items (not deliverable on that session: it is reported as a divergence, or the session is
//! started afresh and seeded with the whole desired context).
//!
//! "What the server holds" is whatever context the caller passes as the held side: the mirror
//! while a connection is up, or `mirror.prefix(n)` when only the first `n` items are known to be
//! covered by a resumption handle (items after that point must be sent again anyway, so edits of
//! them are not divergences).
//!
//! This crate answers that question and nothing more. It is pure: no IO, no clock, no wire
//! names, no async.
//!
//! # The API
//!
//! - [`Item`]: a [`Message`] (role, text [`ContentPart`]s, typed or [transcript]), a
//!   [`FunctionCall`] or a [`FunctionOutput`], each with its [`ItemId`].
//! - [`ChatContext`]: build it with [`ChatContext::builder`] or the fallible
//!   [`push`](ChatContext::push) family; O(1) lookups by id. A repeated id is an [`Error`].
//! - [`diff`] / [`apply`]: the [`DiffOp`]s (append, insert after an id, remove, replace) that
//!   turn one context into another, with `apply(old, &diff(old, new)) == new`; linear time.
//! - [`ContextDiff::classify`] ([`DiffKind`]) and [`ChatContext::appendable_suffix`]: what of
//!   the desired context can be sent to the server, or the [`Divergence`].
//!
//! [transcript]: MessageOrigin::Transcript
//!
//! # Feature `serde`
//!
//! Off by default. Derives `Serialize`/`Deserialize` for the items and the context, for
//! persisting a session (the `session-store` crate): a storage format under the Rust names,
//! never a wire format. Reading a context back checks its ids as
//! [`ChatContext::from_items`] does.
//!
//! ```
//! use ctx_model::{ChatContext, DiffKind, DiffOp, Message, diff};
//! use serde_json::json;
//!
//! // What the server holds.
//! let mirror = ChatContext::builder()
//!     .user("u1", "Book a table for two")
//!     .function_call("c1", "call-1", "book", json!({"people": 2}))
//!     .build()?;
//!
//! // The tool finished: appending its output is deliverable.
//! let mut desired = mirror.clone();
//! desired.push_function_output("o1", "call-1", "book", json!({"ok": true}))?;
//! let suffix = desired.appendable_suffix(&mirror).map_err(|d| d.to_string());
//! assert_eq!(suffix.map(<[_]>::len), Ok(1));
//!
//! // Editing the first turn is not: Gemini cannot rewrite what it already holds.
//! desired.replace(Message::user("u1", "Book a table for three"))?;
//! let change = diff(&mirror, &desired);
//! assert_eq!(change.classify(), DiffKind::Rewrite);
//! assert!(matches!(change.ops()[0], DiffOp::Replace { ref id, .. } if id == "u1"));
//! let divergence = desired.appendable_suffix(&mirror).unwrap_err();
//! assert_eq!(divergence.appendable().len(), 1); // the output could still be appended
//! # Ok::<(), ctx_model::Error>(())
//! ```

mod builder;
mod classify;
mod context;
mod diff;
mod error;
mod id;
mod id_hash;
mod item;
#[cfg(feature = "serde")]
mod persist;

pub use builder::ChatContextBuilder;
pub use classify::{DiffKind, Divergence};
pub use context::ChatContext;
pub use diff::{ContextDiff, DiffOp, apply, diff};
pub use error::Error;
pub use id::ItemId;
pub use id_hash::{IdHashState, IdHasher};
pub use item::{
    ContentPart, Delivery, FunctionCall, FunctionOutput, Item, Message, MessageOrigin, Role,
    Scheduling,
};
