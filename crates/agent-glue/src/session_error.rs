//! Why a session ended: [`SessionError`], the terminal error with its cause.
//!
//! The core builds it from what the shell reports when a connection ends or cannot be opened:
//! the close ([`CloseInfo`]) and, when there is one, the transport error behind it, kept as
//! the error's [`source`](std::error::Error::source). Pure data: no IO, no clock.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::{CloseClass, CloseInfo, CloseInitiator};
use resume_policy::GiveUpReason;

/// The transport error behind a failure, shared so that [`SessionError`] stays `Clone`.
pub type TransportCause = Arc<gemini_transport::Error>;

/// Why a session ended: what failed, with the transport error behind it as
/// [`source`](std::error::Error::source) where there is one.
///
/// Carried by [`SessionEvent::Closed`](crate::SessionEvent::Closed) and by
/// [`Error::Session`](crate::Error::Session) when
/// [`connect`](crate::LiveSessionBuilder::connect) fails. Two values are equal when they are
/// the same variant and read the same (the identity of the source is not compared).
///
/// ```
/// use std::error::Error as _;
/// use agent_glue::{Error, SessionError};
///
/// fn explain(error: &Error) -> String {
///     match error {
///         Error::Session(SessionError::Upgrade { status: Some(503), .. }) => "service unavailable".into(),
///         Error::Session(SessionError::Auth { .. }) => "check the API key".into(),
///         Error::Session(e) => match e.source() {
///             Some(cause) => format!("{e} (because {cause})"),
///             None => e.to_string(),
///         },
///         other => other.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionError {
    /// The TCP connection could not be opened (refused, unreachable, DNS, the connect
    /// timeout), or the endpoint cannot be dialled as given.
    Connect {
        /// The transport error.
        source: TransportCause,
    },
    /// The endpoint's [`CredentialSource`](gemini_transport::CredentialSource) gave no
    /// credential for a dial. A `permanent` failure ends the session (through the policy, as
    /// an authentication failure); a transient one is retried like a refused dial, and ends
    /// the session only when the policy gives up (or the first connect fails fast).
    Credential {
        /// The source said no retry would help.
        permanent: bool,
        /// The transport error ([`gemini_transport::Error::Credential`], whose source is the
        /// application's own error).
        source: TransportCause,
    },
    /// The TLS handshake failed (for example a `wss://` URL to a plain TCP port).
    Tls {
        /// The transport error.
        source: TransportCause,
    },
    /// The server did not upgrade to WebSocket: it answered with HTTP `status` (other than
    /// 401, 403 and 429, which are [`Auth`](Self::Auth) and [`Quota`](Self::Quota)), or the
    /// exchange broke off or its response broke RFC 6455 (`status` is `None`; the source is
    /// then [`gemini_transport::Error::BadUpgrade`], which names the fault).
    Upgrade {
        /// The HTTP status of the refused upgrade.
        status: Option<u16>,
        /// The transport error.
        source: TransportCause,
    },
    /// Authentication or location refused: HTTP 401 or 403 on the upgrade, or a close whose
    /// reason names the key, the token, a permission or the location.
    Auth {
        /// The HTTP status, when the upgrade was refused.
        status: Option<u16>,
        /// The close code, when the server closed the WebSocket.
        code: Option<u16>,
        /// The close reason or the handshake's description.
        reason: String,
        /// The transport error, if the shell reported one.
        source: Option<TransportCause>,
    },
    /// Quota or rate limit: HTTP 429 on the upgrade, or a close whose reason names the quota.
    Quota {
        /// The HTTP status, when the upgrade was refused.
        status: Option<u16>,
        /// The close code, when the server closed the WebSocket.
        code: Option<u16>,
        /// The close reason or the handshake's description.
        reason: String,
        /// The transport error, if the shell reported one.
        source: Option<TransportCause>,
    },
    /// The WebSocket was open but `setupComplete` did not arrive within the setup timeout.
    SetupTimeout {
        /// The configured setup timeout.
        after: Duration,
        /// The transport error.
        source: TransportCause,
    },
    /// The server closed the connection on a message it rejected (1007 invalid argument,
    /// 1008 not found or not supported, 1009 too big, ...): sending it again fails the same
    /// way.
    RejectedPayload {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
        /// The transport error, if the shell reported one.
        source: Option<TransportCause>,
    },
    /// A server message was larger than this client's own limit
    /// ([`ConnectConfig::max_message_size`](gemini_transport::ConnectConfig::max_message_size)):
    /// the client closed the connection (1009). Not the server's doing nor the application's
    /// last input; raise the limit.
    MessageTooLarge {
        /// The size of the message, as far as it was read.
        size: usize,
        /// The configured limit.
        max: usize,
        /// The transport error.
        source: TransportCause,
    },
    /// The server closed the connection with another code.
    ServerClosed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
        /// The transport error, if the shell reported one.
        source: Option<TransportCause>,
    },
    /// The connection ended without a close frame from the server (reset, EOF, a WebSocket
    /// protocol failure, an unexpected reply to `setup`).
    ConnectionLost {
        /// The close code as recorded (1006 when there was no close frame).
        code: u16,
        /// A description of how it ended.
        reason: String,
        /// The transport error, if the shell reported one.
        source: Option<TransportCause>,
    },
    /// The resume policy gave up reconnecting.
    GaveUp {
        /// The policy's reason.
        reason: GiveUpReason,
        /// Consecutive failed attempts before the policy gave up.
        attempts: u32,
        /// The failure of the last attempt, if there was one (also the
        /// [`source`](std::error::Error::source)).
        last: Option<Box<SessionError>>,
    },
    /// The resume policy's plan could not be executed (a bug in a custom policy).
    Policy {
        /// What was wrong with the plan.
        detail: String,
    },
}

impl SessionError {
    /// The failure behind a connection that ended (or could not be opened) with `info`,
    /// caused by `cause` when the shell has the transport error.
    pub(crate) fn from_close(info: &CloseInfo, cause: Option<TransportCause>) -> Self {
        use gemini_transport::Error as T;
        if let Some(source) = cause {
            let refusal = |source: &TransportCause| source.to_string();
            return match &*source {
                T::Connect { .. }
                | T::ConnectTimeout { .. }
                | T::InvalidEndpoint { .. }
                | T::Proxy { .. } => Self::Connect { source },
                T::Tls { .. } => Self::Tls { source },
                T::Credential(e) => Self::Credential {
                    permanent: e.is_permanent(),
                    source,
                },
                T::Handshake {
                    status: Some(status @ (401 | 403)),
                    ..
                } => Self::Auth {
                    status: Some(*status),
                    code: None,
                    reason: refusal(&source),
                    source: Some(source),
                },
                T::Handshake {
                    status: Some(status @ 429),
                    ..
                } => Self::Quota {
                    status: Some(*status),
                    code: None,
                    reason: refusal(&source),
                    source: Some(source),
                },
                T::Handshake { status, .. } => Self::Upgrade {
                    status: *status,
                    source,
                },
                T::BadUpgrade { .. } => Self::Upgrade {
                    status: None,
                    source,
                },
                T::SetupTimeout { after } => Self::SetupTimeout {
                    after: *after,
                    source,
                },
                T::MessageTooLarge { size, max } => Self::MessageTooLarge {
                    size: *size,
                    max: *max,
                    source,
                },
                _ => Self::from_info(info, Some(source)),
            };
        }
        Self::from_info(info, None)
    }

    /// The failure a close stands for, without a more specific transport error.
    fn from_info(info: &CloseInfo, source: Option<TransportCause>) -> Self {
        let code = info.code;
        let reason = info.reason.clone();
        let by_server = info.initiator == CloseInitiator::Server;
        match info.class {
            CloseClass::AuthOrQuota if reason_means_quota(&reason) => Self::Quota {
                status: None,
                code: by_server.then_some(code),
                reason,
                source,
            },
            CloseClass::AuthOrQuota => Self::Auth {
                status: None,
                code: by_server.then_some(code),
                reason,
                source,
            },
            CloseClass::NeedsDifferentRequest if by_server => Self::RejectedPayload {
                code,
                reason,
                source,
            },
            _ if by_server => Self::ServerClosed {
                code,
                reason,
                source,
            },
            _ => Self::ConnectionLost {
                code,
                reason,
                source,
            },
        }
    }

    /// Whether another attempt would fail the same way: TLS, authentication, quota, an
    /// upgrade refused with HTTP 4xx (other than 408 and 429), a rejected message.
    pub(crate) fn is_deterministic(&self) -> bool {
        match self {
            Self::Tls { .. } | Self::Auth { .. } | Self::Quota { .. } => true,
            Self::Credential { permanent, .. } => *permanent,
            Self::RejectedPayload { .. } | Self::Policy { .. } => true,
            Self::Upgrade {
                status: Some(status),
                ..
            } => (400..500).contains(status) && *status != 408 && *status != 429,
            _ => false,
        }
    }

    /// Whether `self` and `other` failed the same way: the same variant, and the same HTTP
    /// status or close code where the variant has one.
    pub(crate) fn same_cause(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Upgrade { status: a, .. }, Self::Upgrade { status: b, .. }) => a == b,
            (Self::ServerClosed { code: a, .. }, Self::ServerClosed { code: b, .. })
            | (Self::ConnectionLost { code: a, .. }, Self::ConnectionLost { code: b, .. }) => {
                a == b
            }
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }

    /// The transport error behind this failure (for [`GaveUp`](Self::GaveUp), the one behind
    /// its last failure), if the session had one.
    #[must_use]
    pub fn transport(&self) -> Option<&gemini_transport::Error> {
        match self {
            Self::Connect { source }
            | Self::Credential { source, .. }
            | Self::Tls { source }
            | Self::Upgrade { source, .. }
            | Self::SetupTimeout { source, .. }
            | Self::MessageTooLarge { source, .. } => Some(source),
            Self::Auth { source, .. }
            | Self::Quota { source, .. }
            | Self::RejectedPayload { source, .. }
            | Self::ServerClosed { source, .. }
            | Self::ConnectionLost { source, .. } => source.as_deref(),
            Self::GaveUp { last, .. } => last.as_deref().and_then(Self::transport),
            Self::Policy { .. } => None,
        }
    }
}

impl fmt::Display for SessionError {
    /// This layer only: the transport error behind it is its `source()` (print the chain to
    /// see both). A close reason or code is written here only when no transport error carries
    /// it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { .. } => write!(f, "the server could not be reached"),
            Self::Credential { .. } => write!(f, "the session had no credential to connect with"),
            Self::Tls { .. } => write!(f, "TLS failed"),
            Self::Upgrade {
                status: Some(_), ..
            } => write!(f, "the server refused the WebSocket upgrade"),
            Self::Upgrade { .. } => write!(f, "the WebSocket upgrade failed"),
            Self::Auth {
                status,
                code,
                reason,
                source,
            } => {
                write!(f, "authentication refused")?;
                unless_in_source(f, source.is_some(), *status, *code, reason)
            }
            Self::Quota {
                status,
                code,
                reason,
                source,
            } => {
                write!(f, "quota or rate limit")?;
                unless_in_source(f, source.is_some(), *status, *code, reason)
            }
            Self::SetupTimeout { .. } => write!(f, "the setup timed out"),
            Self::RejectedPayload {
                code,
                reason,
                source,
            } => {
                write!(f, "the server rejected a message")?;
                unless_in_source(f, source.is_some(), None, Some(*code), reason)
            }
            Self::MessageTooLarge { .. } => {
                write!(f, "a server message exceeded this client's size limit")
            }
            Self::ServerClosed {
                code,
                reason,
                source,
            } => {
                write!(f, "the server closed the connection")?;
                unless_in_source(f, source.is_some(), None, Some(*code), reason)
            }
            Self::ConnectionLost {
                code,
                reason,
                source,
            } => {
                write!(f, "the connection was lost")?;
                unless_in_source(f, source.is_some(), None, Some(*code), reason)
            }
            Self::GaveUp {
                reason, attempts, ..
            } => write!(
                f,
                "gave up reconnecting after {attempts} attempts ({reason:?})"
            ),
            Self::Policy { detail } => write!(f, "the resume policy's plan failed: {detail}"),
        }
    }
}

/// ` (HTTP 401): reason`, unless the transport error behind it (the source) says so already.
fn unless_in_source(
    f: &mut fmt::Formatter<'_>,
    in_source: bool,
    status: Option<u16>,
    code: Option<u16>,
    reason: &str,
) -> fmt::Result {
    if in_source {
        return Ok(());
    }
    via(f, status, code)?;
    if !reason.is_empty() {
        write!(f, ": {reason}")?;
    }
    Ok(())
}

/// ` (HTTP 401)` or ` (close code 1007)`.
fn via(f: &mut fmt::Formatter<'_>, status: Option<u16>, code: Option<u16>) -> fmt::Result {
    match (status, code) {
        (Some(status), _) => write!(f, " (HTTP {status})"),
        (None, Some(code)) => write!(f, " (close code {code})"),
        (None, None) => Ok(()),
    }
}

impl StdError for SessionError {
    /// The transport error (for [`GaveUp`](Self::GaveUp): the last failure).
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::GaveUp { last, .. } => last.as_deref().map(|e| e as &(dyn StdError + 'static)),
            _ => self.transport().map(|e| e as &(dyn StdError + 'static)),
        }
    }
}

impl PartialEq for SessionError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// Substrings (lowercase) of close reasons that mean quota or rate limits rather than
/// authentication.
const QUOTA_MARKERS: &[&str] = &[
    "quota",
    "resource_exhausted",
    "resource has been exhausted",
    "rate limit",
];

fn reason_means_quota(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    QUOTA_MARKERS.iter().any(|m| lower.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_without_a_transport_error_are_classified_by_code_and_initiator() {
        let quota = CloseInfo::from_server(1011, "You exceeded your current quota", false);
        assert!(matches!(
            SessionError::from_close(&quota, None),
            SessionError::Quota {
                code: Some(1011),
                ..
            }
        ));
        let key = CloseInfo::from_server(1007, "API key not valid.", false);
        assert!(matches!(
            SessionError::from_close(&key, None),
            SessionError::Auth {
                code: Some(1007),
                ..
            }
        ));
        let invalid = CloseInfo::from_server(1007, "invalid argument", false);
        assert!(matches!(
            SessionError::from_close(&invalid, None),
            SessionError::RejectedPayload { code: 1007, .. }
        ));
        let reset = CloseInfo::abnormal("connection reset", false);
        let lost = SessionError::from_close(&reset, None);
        assert!(matches!(
            lost,
            SessionError::ConnectionLost { code: 1006, .. }
        ));
        assert!(StdError::source(&lost).is_none());
    }

    #[test]
    fn the_source_is_the_transport_error() {
        let cause: TransportCause = Arc::new(gemini_transport::Error::Handshake {
            authority: "127.0.0.1:1".to_owned(),
            status: Some(503),
            detail: "Service Unavailable".to_owned(),
        });
        let info = CloseInfo::abnormal(cause.to_string(), false);
        let error = SessionError::from_close(&info, Some(Arc::clone(&cause)));
        assert!(matches!(
            error,
            SessionError::Upgrade {
                status: Some(503),
                ..
            }
        ));
        let source = StdError::source(&error)
            .and_then(|s| s.downcast_ref::<gemini_transport::Error>())
            .map(ToString::to_string);
        assert_eq!(source, Some(cause.to_string()));
        assert!(!error.is_deterministic());
        let gave_up = SessionError::GaveUp {
            reason: GiveUpReason::AttemptsExhausted { attempts: 8 },
            attempts: 8,
            last: Some(Box::new(error.clone())),
        };
        assert_eq!(
            StdError::source(&gave_up).map(ToString::to_string),
            Some(error.to_string())
        );
        assert!(gave_up.transport().is_some());
    }
}
