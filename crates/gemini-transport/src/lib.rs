//! `gemini-transport`: the Gemini Live wire protocol and its WebSocket connection.
//!
//! # The domain
//!
//! Gemini Live (`BidiGenerateContent`) is a bidirectional WebSocket API. A client opens one
//! WebSocket per *connection*, sends a `setup` frame first, waits for `setupComplete`, then streams
//! `realtimeInput` (audio, video, text), `clientContent` turns and `toolResponse`s while the server
//! streams `serverContent` (audio, text, transcriptions, turn signals), `toolCall`s,
//! `sessionResumptionUpdate` handles and, shortly before it ends the connection, a `goAway`. Every
//! application message is one JSON object in one frame; Google's server sends its JSON in
//! *binary* frames, so a client must accept both frame types.
//!
//! The service reports failures only as WebSocket close frames: a code and a free-text reason.
//! What a client should do next depends on both, and on whether a `goAway` came first: reconnect
//! and resume (1006, 1011 internal, the end of a connection's lifetime after `goAway`), change the
//! request (1007 invalid argument, 1008 model not found), or stop until the credential or quota
//! changes ("API key not valid", quota texts).
//!
//! # The API
//!
//! - [`wire`]: every client and server message as Rust types. Decoding is lenient where Google's
//!   parser is (camelCase and snake_case, both base64 alphabets, int64 as string or number);
//!   encoding is canonical. Audio is bytes, never base64 strings, in the public API.
//! - [`Endpoint`]: where to connect and how to authenticate: the Developer API with an API key
//!   ([`Endpoint::api_key`]), an ephemeral token ([`Endpoint::ephemeral_token`]), Vertex AI
//!   ([`Endpoint::vertex`], with [`vertex_model_name`]), each optionally re-pointed at a local
//!   server or proxy ([`Endpoint::with_base_url`]). Credentials are [`secrecy::SecretString`]s
//!   sent in headers; they never appear in `Debug`, `Display`, errors or tracing output. A
//!   [`CredentialSource`] mints one before every dial ([`Endpoint::ephemeral_tokens`],
//!   [`Endpoint::with_credential_source`]).
//! - [`Connection`]: the WebSocket (rustls with webpki roots and the `ring` provider, `TCP_NODELAY`,
//!   the crate's own RFC 6455 client framing), configured by [`ConnectConfig`]. It sends [`wire::ClientMessage`]s, yields
//!   [`wire::ServerMessage`]s, answers pings, and turns every end into [`Error::Closed`] with a
//!   [`CloseInfo`] whose [`CloseClass`] a resume policy can act on. [`Connection::split`] gives a
//!   [`ConnectionSender`] and a [`ConnectionReceiver`] for separate writer and reader tasks.
//! - [`Error`]: the crate's one error type; [`Error::class`] maps any error to a [`CloseClass`].
//!
//! ```
//! use gemini_transport::{CloseClass, CloseInfo, Endpoint};
//! use secrecy::SecretString;
//!
//! // A local server (e.g. the fake server) with a Developer API key.
//! let endpoint = Endpoint::api_key(SecretString::from("AIza-not-a-real-key"))
//!     .with_base_url("ws://127.0.0.1:9000")?;
//! assert_eq!(
//!     endpoint.url(),
//!     "ws://127.0.0.1:9000/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
//! );
//! assert!(!format!("{endpoint:?} {endpoint}").contains("AIza-not-a-real-key"));
//!
//! // How a policy reads a close: a 1011 "internal error" is worth a reconnect, a quota text is not.
//! assert_eq!(CloseInfo::classify(1011, "Internal error encountered.", false), CloseClass::Transient);
//! assert_eq!(CloseInfo::classify(1011, "Resource has been exhausted (e.g. check quota).", false), CloseClass::AuthOrQuota);
//! # Ok::<(), gemini_transport::Error>(())
//! ```

pub mod close;
mod config;
mod connection;
mod dial;
mod endpoint;
pub mod error;
mod frame;
mod proxy;
mod spare;
mod tls;
pub mod wire;

pub use close::{CloseClass, CloseInfo, CloseInitiator};
pub use config::ConnectConfig;
pub use connection::{Connection, ConnectionReceiver, ConnectionSender};
pub use endpoint::{
    API_CLIENT, ApiVersion, CredentialError, CredentialFuture, CredentialSource,
    DEVELOPER_API_HOST, Endpoint, EndpointKind, VERTEX_PATH, vertex_model_name,
};
pub use error::{Error, UpgradeFault};
pub use proxy::{Proxy, ProxyConfig};
/// Credentials are kept in this type (re-exported from `secrecy`), which never prints its value.
pub use secrecy::SecretString;
pub use tls::default_client_config;
