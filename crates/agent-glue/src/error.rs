//! The crate's one error type. Each error's `Display` says only its own layer; what caused it
//! is its `source()`, so that printing the chain (`{:#}` with anyhow, or walking `source()`)
//! says each fact once.

/// Errors from [`LiveSession`](crate::LiveSession).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (for example an unknown model family).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The chosen model refuses this configuration: the service would close its `setup` with
    /// 1007 (docs/protocol.md section 10.1). Checked before any dial, against the model's
    /// capability row ([`LiveSessionBuilder::capabilities`](crate::LiveSessionBuilder::capabilities)
    /// overrides it), and for the tools of
    /// [`update_tools`](crate::LiveSession::update_tools).
    #[error("model `{model}` does not accept {setting}: {why}")]
    Unsupported {
        /// The model, as configured.
        model: String,
        /// What it does not accept.
        setting: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// The first connection could not be established.
    #[error("could not connect")]
    Connect(#[source] gemini_transport::Error),
    /// The session ended before [`connect`](crate::LiveSessionBuilder::connect) completed
    /// its first setup: the [`SessionError`](crate::SessionError) says what failed and keeps
    /// the transport error as its source (a refused dial, TLS, an upgrade refused with an HTTP
    /// status, authentication, quota, the setup timeout, or the policy giving up).
    #[error("the session ended")]
    Session(#[source] crate::SessionError),
    /// The session store refused or failed (feature `store`): on `connect`, another live
    /// owner holds the key ([`session_store::Error::Held`]) or the saved state could not be
    /// read; on [`hand_off`](crate::LiveSession::hand_off), the final save or the release
    /// failed ([`session_store::Error::Fenced`]: another owner holds the session). The
    /// store's error says which.
    #[cfg(feature = "store")]
    #[error("the session store refused or failed")]
    Store(#[source] session_store::Error),
    /// The session has ended (closed by the application or by a terminal error).
    #[error("the session is closed")]
    Closed,
    /// The chat context given is invalid (for example a duplicate item id).
    #[error("invalid chat context")]
    Context(#[from] ctx_model::Error),
    /// `update_chat_ctx` was given a context derived from an older version of the session's
    /// context: applying it would drop changes made since. Read the context again
    /// ([`LiveSession::snapshot`](crate::LiveSession::snapshot)) and redo the update, or
    /// append with [`LiveSession::append_chat_items`](crate::LiveSession::append_chat_items).
    #[error("the context changed since version {based_on} (now {current}); update refused")]
    Conflict {
        /// The version the update was derived from.
        based_on: u64,
        /// The session's version now.
        current: u64,
    },
    /// The session's audio backlog is at its bound
    /// ([`audio_backlog`](crate::LiveSessionBuilder::audio_backlog), or the
    /// [`audio_gap`](crate::LiveSessionBuilder::audio_gap) while disconnected): the audio given
    /// to [`try_push_audio`](crate::LiveSession::try_push_audio) was not taken.
    #[error("the audio backlog is full ({held:?} waiting)")]
    Full {
        /// How much audio waits to be written.
        held: std::time::Duration,
    },
    /// `activity_start` / `activity_end` on a session whose server-side activity detection
    /// is on: the service would close the connection with 1007. Nothing was sent; build the
    /// session with
    /// [`automatic_activity_detection(false)`](crate::LiveSessionBuilder::automatic_activity_detection)
    /// to bracket speech yourself.
    #[error(
        "`{signal}` needs automatic activity detection off (`.automatic_activity_detection(false)`)"
    )]
    ActivityDetectionOn {
        /// The signal refused (`activityStart` or `activityEnd`).
        signal: &'static str,
    },
    /// An argument is wrong (for example a tool result for an unknown call id).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
