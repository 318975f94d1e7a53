//! The crate's one error type.

/// Everything that can go wrong in `gemini-transport`.
///
/// Variants are grouped by owner: decoding/encoding (`wire`) and connection (`connection`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame could not be decoded; `path` names the offending field (`$.setup.model`).
    #[error("cannot decode frame at `{path}`: {kind}")]
    Decode {
        /// JSON path of the offending field, `$` for the whole frame.
        path: String,
        /// What was wrong with it.
        kind: crate::wire::DecodeErrorKind,
    },
    // ----- connection (endpoint.rs, connection.rs) -----
    /// The endpoint cannot be used as given: `field` names what is wrong (`base_url`,
    /// `location`, `api_key`, `ephemeral_token`, `access_token`, `user_project`). Never holds the
    /// credential's value.
    #[error("invalid endpoint: `{field}` {reason}")]
    InvalidEndpoint {
        /// The offending part of the endpoint.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint's [`CredentialSource`](crate::CredentialSource) gave no credential for
    /// this dial, so nothing was dialled. [`Error::class`] reads
    /// [`CredentialError::is_permanent`](crate::CredentialError::is_permanent).
    #[error("the dial was not attempted")]
    Credential(#[source] crate::CredentialError),
    /// The TCP connection to `authority` could not be opened (DNS, refused, unreachable).
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port` that was dialled.
        authority: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect, TLS and the WebSocket upgrade did not finish within the connect timeout.
    #[error("connecting to {authority} timed out after {after:?}")]
    ConnectTimeout {
        /// `host:port` that was dialled.
        authority: String,
        /// The configured connect timeout.
        after: std::time::Duration,
    },
    /// The TLS handshake failed (certificate, protocol) or TLS could not be configured.
    #[error("TLS with {authority} failed: {detail}")]
    Tls {
        /// `host:port` that was dialled (empty when configuring TLS failed).
        authority: String,
        /// What failed.
        detail: String,
    },
    /// The WebSocket upgrade failed: the server answered with an HTTP status other than 101
    /// (`status`), or the exchange broke off (`status` is `None`).
    #[error("WebSocket handshake with {authority} failed{}: {detail}", status.map(|s| format!(" with HTTP {s}")).unwrap_or_default())]
    Handshake {
        /// `host:port` that was dialled.
        authority: String,
        /// The HTTP status of a refused upgrade.
        status: Option<u16>,
        /// What failed (the response body is never included).
        detail: String,
    },
    /// The server answered the WebSocket upgrade, but not as RFC 6455 section 4.1 requires of
    /// a `101` response (or with no valid HTTP/1.1 response head at all): the client refuses
    /// the connection; `fault` says what was wrong.
    #[error("WebSocket upgrade with {authority} refused: {fault}")]
    BadUpgrade {
        /// `host:port` that was dialled.
        authority: String,
        /// What was wrong with the response.
        fault: UpgradeFault,
    },
    /// The HTTP proxy the dial goes through did not open a tunnel (`status`: its answer to
    /// `CONNECT`; 407 asks for credentials). Its credentials never appear here.
    #[error("proxy {proxy} did not open a tunnel{}: {detail}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Proxy {
        /// `host:port` of the proxy.
        proxy: String,
        /// The HTTP status it answered `CONNECT` with, if it answered.
        status: Option<u16>,
        /// What failed.
        detail: String,
    },
    /// The connection is closed; the value says how and what a policy should do.
    #[error("connection {0}")]
    Closed(crate::close::CloseInfo),
    /// `setupComplete` did not arrive within the setup timeout after `setup` was sent.
    #[error("no setupComplete within {after:?}")]
    SetupTimeout {
        /// The configured setup timeout.
        after: std::time::Duration,
    },
    /// The first server message after `setup` was not `setupComplete`; it is kept here.
    #[error("expected setupComplete, received another server message first")]
    UnexpectedSetupReply(Box<crate::wire::ServerMessage>),
    /// The server sent a message or frame larger than the configured limit; the connection is
    /// closed with 1009.
    #[error("incoming message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Size of the message or frame, as far as it was read.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The WebSocket protocol broke (invalid UTF-8 in a text frame, bad framing, a failed
    /// write); the connection is unusable.
    #[error("WebSocket failure: {detail}")]
    WebSocket {
        /// What failed.
        detail: String,
    },
    /// Placeholder until the wire and connection modules add their variants.
    #[error("not implemented: {0}")]
    Unimplemented(&'static str),
}

impl Error {
    /// What a resume policy should make of this error, in the terms of a close
    /// ([`CloseClass`](crate::CloseClass)):
    ///
    /// - [`Error::Closed`]: the close's own class.
    /// - dial failures, timeouts, TLS and WebSocket failures, HTTP 5xx or 408 on the upgrade, an
    ///   upgrade response that breaks RFC 6455, an unexpected reply to `setup`, a server frame
    ///   that does not decode: `Transient`.
    /// - HTTP 401, 403 or 429 on the upgrade, a permanent failure of the credential source:
    ///   `AuthOrQuota`; a transient failure of the credential source: `Transient`.
    /// - an invalid endpoint, other HTTP 4xx, an oversized message, and everything about
    ///   encoding a client message: `NeedsDifferentRequest`.
    #[must_use]
    pub fn class(&self) -> crate::CloseClass {
        use crate::CloseClass;
        match self {
            Self::Closed(info) => info.class,
            Self::Handshake {
                status: Some(status),
                ..
            } => match status {
                401 | 403 | 429 => CloseClass::AuthOrQuota,
                408 | 500..=599 => CloseClass::Transient,
                _ => CloseClass::NeedsDifferentRequest,
            },
            Self::Credential(e) if e.is_permanent() => CloseClass::AuthOrQuota,
            Self::Proxy {
                status: Some(407), ..
            } => CloseClass::AuthOrQuota,
            Self::Proxy {
                status: Some(400..=499),
                ..
            } => CloseClass::NeedsDifferentRequest,
            Self::Proxy { .. } => CloseClass::Transient,
            Self::Credential(_)
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Tls { .. }
            | Self::Handshake { status: None, .. }
            | Self::BadUpgrade { .. }
            | Self::SetupTimeout { .. }
            | Self::UnexpectedSetupReply(_)
            | Self::WebSocket { .. }
            | Self::Decode { .. } => CloseClass::Transient,
            Self::InvalidEndpoint { .. } | Self::MessageTooLarge { .. } => {
                CloseClass::NeedsDifferentRequest
            }
            #[allow(unreachable_patterns)]
            _ => CloseClass::NeedsDifferentRequest,
        }
    }

    /// Whether the connection this error came from is gone (or was never opened). `false` for
    /// a server frame that failed to decode or a client message that failed to encode: the
    /// connection goes on.
    #[must_use]
    pub fn ends_connection(&self) -> bool {
        matches!(
            self,
            Self::InvalidEndpoint { .. }
                | Self::Credential(_)
                | Self::Connect { .. }
                | Self::ConnectTimeout { .. }
                | Self::Tls { .. }
                | Self::Handshake { .. }
                | Self::BadUpgrade { .. }
                | Self::Proxy { .. }
                | Self::Closed(_)
                | Self::SetupTimeout { .. }
                | Self::UnexpectedSetupReply(_)
                | Self::MessageTooLarge { .. }
                | Self::WebSocket { .. }
        )
    }

    /// The close, when this error is [`Error::Closed`].
    #[must_use]
    pub fn close_info(&self) -> Option<&crate::CloseInfo> {
        match self {
            Self::Closed(info) => Some(info),
            _ => None,
        }
    }
}

/// What was wrong with a WebSocket upgrade response ([`Error::BadUpgrade`]): each is a
/// requirement of RFC 6455 section 4.1 on the server's answer, or of HTTP/1.1 syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeFault {
    /// The head is not an HTTP/1.1 response (`httparse` refused it: a bad status line, a bad
    /// header, too many headers).
    #[error("malformed response head")]
    Malformed,
    /// A line of the head ends with a bare LF, not CRLF (a malformed response, refused as soon
    /// as it is seen rather than waited on).
    #[error("malformed response head: a line ends with a bare LF")]
    BareLineFeed,
    /// The head did not end within the most the client reads (16 KiB).
    #[error("response head larger than 16 KiB")]
    HeadTooLarge,
    /// A `101` in an HTTP version other than 1.1 (`HTTP/1.0 101`).
    #[error("101 in an HTTP version other than 1.1")]
    HttpVersion,
    /// No `Upgrade: websocket` header.
    #[error("no `Upgrade: websocket` header")]
    MissingUpgrade,
    /// No `Connection` header with the `Upgrade` token.
    #[error("no `Connection: Upgrade` header")]
    MissingConnection,
    /// `Sec-WebSocket-Accept` missing, repeated, or not the digest of the key sent.
    #[error("`Sec-WebSocket-Accept` missing or not the digest of the key sent")]
    AcceptMismatch,
    /// A `Sec-WebSocket-Extensions` the client did not ask for (it asks for none).
    #[error("an extension the client did not request")]
    UnrequestedExtension,
    /// A `Sec-WebSocket-Protocol` the client did not ask for (it asks for none).
    #[error("a subprotocol the client did not request")]
    UnrequestedProtocol,
}
