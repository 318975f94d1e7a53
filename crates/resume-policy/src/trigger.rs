//! Why a connection is being opened.

use std::time::Duration;

use crate::MirrorVersion;

/// How the transport classified a close frame (codes in docs/protocol.md section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseClass {
    /// 1006 (no close frame), 1011 "internal error" / "unavailable" / "deadline expired",
    /// 1000 without a goAway: reconnect with the handle, with backoff.
    Transient,
    /// 1007 on a payload (not on `setup`): the last message sent was refused. Never re-send it.
    InvalidPayload,
    /// 1008 "not implemented/supported" on a payload: like `InvalidPayload`.
    Unsupported,
    /// Quota exhausted, spent token, bad key, unknown model: retrying cannot help.
    Fatal,
}

/// What made the session open a connection; it shapes the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trigger {
    /// The session's first connection.
    FirstConnect,
    /// Planned rotation after `goAway`, with the time the server announced.
    GoAway {
        /// `goAway.timeLeft`.
        time_left: Duration,
    },
    /// The connection closed without a `goAway` (or failed to open).
    AbnormalClose {
        /// The close code (1006 when there was no close frame).
        code: u16,
        /// Its classification.
        class: CloseClass,
    },
    /// The server closed a resumed `setup` (expired or unknown handle, 1007 / 1011 during
    /// setup): the handle is dead.
    RefusedResume {
        /// The close code.
        code: u16,
    },
    /// The system instruction and/or the tool set changed on a model without `contextUpdate`:
    /// a reconnect whose `setup` carries the new configuration.
    ConfigChange {
        /// The instruction changed.
        instructions: bool,
        /// The tool set changed.
        tools: bool,
    },
    /// A new process resumes a session from a persisted handle (scenario S31).
    ProcessRestart {
        /// The mirror version stored with the handle.
        stored: MirrorVersion,
        /// The version of the context this process holds.
        current: MirrorVersion,
    },
}

impl Trigger {
    /// Whether the connection is replaced on purpose (no failure behind it).
    pub fn is_planned(&self) -> bool {
        matches!(
            self,
            Self::FirstConnect
                | Self::GoAway { .. }
                | Self::ConfigChange { .. }
                | Self::ProcessRestart { .. }
        )
    }
}
