//! How a connection ended, and what a resume policy should make of it.
//!
//! Gemini Live reports errors only as WebSocket close frames (code + free-text reason). The code
//! decides the class; the reason refines it only where Google reuses one code for causes that need
//! different handling (1007 and 1011 also carry "API key not valid" or quota texts). Reasons are
//! free text that changes over time, so matching is loose: case-insensitive substrings.

use std::fmt;

/// Close code for a normal closure.
pub const NORMAL: u16 = 1000;
/// Close code used when the connection ended without a close frame (EOF, reset, I/O error).
pub const ABNORMAL: u16 = 1006;
/// Close code for a close frame that carried no status code.
pub const NO_STATUS: u16 = 1005;
/// Close code for a protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code for "invalid frame payload data" (Google: invalid argument).
pub const INVALID_PAYLOAD: u16 = 1007;
/// Close code for "policy violation" (Google: model not found, feature not supported).
pub const POLICY_VIOLATION: u16 = 1008;
/// Close code for "message too big".
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Close code for "internal error" (Google: internal, unavailable, deadline, quota).
pub const INTERNAL_ERROR: u16 = 1011;

/// What a policy can do about a closed connection (or a failed attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseClass {
    /// An orderly end that is no failure: this side closed, or the server closed with 1000
    /// without a preceding `goAway`.
    Normal,
    /// Reconnect (resuming with a handle) after a backoff: 1006, 1011 internal / unavailable /
    /// deadline, 1000 or 1008 after a `goAway`, 1001, 1012–1014, and codes not otherwise known.
    Transient,
    /// Retrying the same request will fail the same way: 1007 (invalid argument), 1008 (model not
    /// found, feature not supported), 1002, 1003, 1009, 1010.
    NeedsDifferentRequest,
    /// Authentication, location or quota: no retry until the credential, place or quota changes.
    AuthOrQuota,
}

impl CloseClass {
    /// A short stable name: `normal`, `transient`, `needs_different_request`, `auth_or_quota`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Transient => "transient",
            Self::NeedsDifferentRequest => "needs_different_request",
            Self::AuthOrQuota => "auth_or_quota",
        }
    }
}

impl fmt::Display for CloseClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseInitiator {
    /// This client sent the first close frame.
    Client,
    /// The server sent the first close frame.
    Server,
    /// No close frame: the TCP stream ended or failed (code 1006).
    Transport,
}

/// A closed connection: the code and reason from the close frame (or 1006 and a local
/// description when there was none) and its [`CloseClass`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseInfo {
    /// The WebSocket close code (1006 when no close frame arrived).
    pub code: u16,
    /// The close frame's reason text; for 1006 a short local description (e.g. `"connection reset"`).
    pub reason: String,
    /// What a policy should make of it.
    pub class: CloseClass,
    /// Who ended the connection.
    pub initiator: CloseInitiator,
    /// Whether a `goAway` had arrived on this connection before it closed.
    pub after_go_away: bool,
}

impl CloseInfo {
    /// Classifies a close frame that the *server* sent. `after_go_away` tells whether a `goAway`
    /// arrived on the connection first: the end of a connection's lifetime then comes as 1000 or
    /// 1008 and is transient.
    ///
    /// ```
    /// use gemini_transport::{CloseClass, CloseInfo};
    /// assert_eq!(CloseInfo::classify(1011, "Internal error encountered.", false), CloseClass::Transient);
    /// assert_eq!(CloseInfo::classify(1011, "Quota exceeded for quota metric", false), CloseClass::AuthOrQuota);
    /// assert_eq!(CloseInfo::classify(1008, "", true), CloseClass::Transient);
    /// assert_eq!(CloseInfo::classify(1007, "Request contains an invalid argument.", false), CloseClass::NeedsDifferentRequest);
    /// ```
    #[must_use]
    pub fn classify(code: u16, reason: &str, after_go_away: bool) -> CloseClass {
        match code {
            NORMAL | NO_STATUS if after_go_away => CloseClass::Transient,
            NORMAL | NO_STATUS => CloseClass::Normal,
            ABNORMAL => CloseClass::Transient,
            _ if reason_means_auth_or_quota(reason) => CloseClass::AuthOrQuota,
            POLICY_VIOLATION if after_go_away => CloseClass::Transient,
            1002 | 1003 | INVALID_PAYLOAD | POLICY_VIOLATION | MESSAGE_TOO_BIG | 1010 => {
                CloseClass::NeedsDifferentRequest
            }
            _ => CloseClass::Transient,
        }
    }

    /// A close frame the server sent, classified with [`CloseInfo::classify`].
    #[must_use]
    pub fn from_server(code: u16, reason: impl Into<String>, after_go_away: bool) -> Self {
        let reason = reason.into();
        Self {
            code,
            class: Self::classify(code, &reason, after_go_away),
            reason,
            initiator: CloseInitiator::Server,
            after_go_away,
        }
    }

    /// A close this client initiated: always [`CloseClass::Normal`].
    #[must_use]
    pub fn from_client(code: u16, reason: impl Into<String>, after_go_away: bool) -> Self {
        Self {
            code,
            reason: reason.into(),
            class: CloseClass::Normal,
            initiator: CloseInitiator::Client,
            after_go_away,
        }
    }

    /// The connection ended without a close frame: code 1006, [`CloseClass::Transient`].
    #[must_use]
    pub fn abnormal(description: impl Into<String>, after_go_away: bool) -> Self {
        Self {
            code: ABNORMAL,
            reason: description.into(),
            class: CloseClass::Transient,
            initiator: CloseInitiator::Transport,
            after_go_away,
        }
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closed with {} ({})", self.code, self.class)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Substrings (lowercase) of close reasons that mean authentication, location or quota trouble.
const AUTH_OR_QUOTA_MARKERS: &[&str] = &[
    "api key not valid",
    "api_key_invalid",
    "api key expired",
    "invalid authentication",
    "unauthenticated",
    "unauthorized",
    "permission denied",
    "permission_denied",
    "quota",
    "resource_exhausted",
    "resource has been exhausted",
    "rate limit",
    "token has been used too many times",
    "token has expired",
    "token expired",
    "location is not supported",
    "billing",
];

fn reason_means_auth_or_quota(reason: &str) -> bool {
    if reason.is_empty() {
        return false;
    }
    let lower = reason.to_ascii_lowercase();
    AUTH_OR_QUOTA_MARKERS.iter().any(|m| lower.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_from_the_protocol_reference() {
        let cases: &[(u16, &str, bool, CloseClass)] = &[
            (1000, "", false, CloseClass::Normal),
            (1000, "", true, CloseClass::Transient),
            (1005, "", false, CloseClass::Normal),
            (1006, "", false, CloseClass::Transient),
            (
                1007,
                "Request contains an invalid argument.",
                false,
                CloseClass::NeedsDifferentRequest,
            ),
            (
                1007,
                "API key not valid. Please pass a valid API key.",
                false,
                CloseClass::AuthOrQuota,
            ),
            (
                1007,
                "User location is not supported for the API use.",
                false,
                CloseClass::AuthOrQuota,
            ),
            (
                1008,
                "models/x is not found for API version v1beta",
                false,
                CloseClass::NeedsDifferentRequest,
            ),
            (1008, "", true, CloseClass::Transient),
            (
                1011,
                "Internal error encountered.",
                false,
                CloseClass::Transient,
            ),
            (
                1011,
                "The service is currently unavailable.",
                false,
                CloseClass::Transient,
            ),
            (
                1011,
                "Deadline expired before operation could complete.",
                false,
                CloseClass::Transient,
            ),
            (
                1011,
                "You exceeded your current quota",
                false,
                CloseClass::AuthOrQuota,
            ),
            (
                1011,
                "Token has been used too many times",
                true,
                CloseClass::AuthOrQuota,
            ),
            (1009, "", false, CloseClass::NeedsDifferentRequest),
            (1012, "", false, CloseClass::Transient),
            (4000, "", false, CloseClass::Transient),
        ];
        for &(code, reason, after, want) in cases {
            assert_eq!(
                CloseInfo::classify(code, reason, after),
                want,
                "{code} {reason:?} after_go_away={after}"
            );
        }
    }

    #[test]
    fn client_close_is_normal_and_display_shows_reason() {
        let info = CloseInfo::from_client(1000, "bye", false);
        assert_eq!(info.class, CloseClass::Normal);
        assert_eq!(info.to_string(), "closed with 1000 (normal): bye");
        assert_eq!(
            CloseInfo::abnormal("reset", false).to_string(),
            "closed with 1006 (transient): reset"
        );
    }
}
