//! Where a Live connection goes and how it authenticates.
//!
//! An [`Endpoint`] is a service surface (the Developer API with an API key, the Developer API with
//! an ephemeral token, or Vertex AI with an OAuth access token) plus, optionally, a custom base
//! URL (`ws://` or `wss://`) that replaces Google's host, for local servers and proxies.
//!
//! Credentials always travel in request headers, never in the URL, so [`Endpoint::url`] holds no
//! secret. The credential itself is a [`SecretString`] and is printed as `[REDACTED]` by `Debug`.
//!
//! An endpoint can also take its credential from a [`CredentialSource`], called before every
//! dial, so that each connection of a session gets a fresh one: an ephemeral token minted with
//! `uses: 1` cannot open a second connection, and the resume after a reconnect is one
//! (docs/protocol.md sections 2 and 7.9).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};

use crate::error::Error;

/// Value of the `x-goog-api-client` header this crate sends on every connection.
pub const API_CLIENT: &str = concat!("gemini-live-rs/", env!("CARGO_PKG_VERSION"));

/// Host of the Gemini Developer API.
pub const DEVELOPER_API_HOST: &str = "generativelanguage.googleapis.com";

/// Path of the Vertex AI Live method (always `v1beta1`).
pub const VERTEX_PATH: &str =
    "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent";

/// Version segment of the Developer API path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ApiVersion {
    /// `v1`: the default of google-genai 3.x.
    V1,
    /// `v1beta`: the documented form, and this crate's default for API keys.
    #[default]
    V1beta,
    /// `v1alpha`: preview features (affective dialog, proactivity) and ephemeral tokens.
    V1alpha,
}

impl ApiVersion {
    /// The path segment, e.g. `"v1beta"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta => "v1beta",
            Self::V1alpha => "v1alpha",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which service surface and credential an [`Endpoint`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointKind {
    /// Developer API, `BidiGenerateContent`, API key in `x-goog-api-key`.
    ApiKey,
    /// Developer API, `BidiGenerateContentConstrained`, `Authorization: Token auth_tokens/…`.
    EphemeralToken,
    /// Vertex AI, `LlmBidiService/BidiGenerateContent`, `Authorization: Bearer …`.
    VertexAi,
}

impl EndpointKind {
    /// A short stable name, used in tracing spans: `api_key`, `ephemeral_token`, `vertex_ai`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::EphemeralToken => "ephemeral_token",
            Self::VertexAi => "vertex_ai",
        }
    }
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The service surface together with its credential.
#[derive(Clone)]
enum Surface {
    ApiKey {
        version: ApiVersion,
        key: SecretString,
    },
    EphemeralToken {
        version: ApiVersion,
        token: SecretString,
    },
    VertexAi {
        location: String,
        access_token: SecretString,
    },
}

/// What one call of a [`CredentialSource`] returns: the credential for one dial, or why there
/// is none.
pub type CredentialFuture =
    Pin<Box<dyn Future<Output = Result<SecretString, CredentialError>> + Send + 'static>>;

/// Where an [`Endpoint`]'s credential comes from on each dial: an async callback, called
/// once before every dial (the first one and every reconnect), whose credential replaces the
/// endpoint's own for that dial. Typically it asks the application's backend to mint an
/// ephemeral token (`POST …/v1alpha/auth_tokens`), so that no connection reuses a token whose
/// uses are spent; it can as well refresh a Vertex AI access token.
///
/// The call counts against the connect timeout
/// ([`ConnectConfig::connect_timeout`](crate::ConnectConfig::connect_timeout)). A failure is
/// a failed dial, [`Error::Credential`]: [`CredentialError::permanent`] is classified
/// [`AuthOrQuota`](crate::CloseClass::AuthOrQuota) (a session ends), a
/// [`CredentialError::transient`] one [`Transient`](crate::CloseClass::Transient) (retried
/// with backoff). The credential never appears in `Debug`, `Display`, errors or logs.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// use gemini_transport::{CredentialError, CredentialSource, Endpoint, SecretString};
///
/// let minted = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&minted);
/// let source = CredentialSource::new(move || {
///     let n = counter.fetch_add(1, Ordering::Relaxed);
///     async move {
///         // A real source asks the application's backend for a new token here.
///         Ok::<_, CredentialError>(SecretString::from(format!("auth_tokens/t-{n}")))
///     }
/// });
/// let endpoint = Endpoint::ephemeral_tokens(source);
/// assert!(format!("{endpoint:?}").contains("per dial"));
/// ```
#[derive(Clone)]
pub struct CredentialSource(Arc<dyn Fn() -> CredentialFuture + Send + Sync>);

impl CredentialSource {
    /// A source that calls `mint` before every dial.
    pub fn new<F, Fut>(mint: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SecretString, CredentialError>> + Send + 'static,
    {
        Self(Arc::new(move || -> CredentialFuture { Box::pin(mint()) }))
    }

    /// One call: the credential for the next dial.
    pub(crate) fn fetch(&self) -> CredentialFuture {
        (self.0)()
    }
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialSource(..)")
    }
}

/// Why a [`CredentialSource`] gave no credential for a dial. Its cause is the application's
/// own error: kept as the [`source`](std::error::Error::source), never formatted by this crate
/// (`Debug` and `Display` say only whether it is permanent).
pub struct CredentialError {
    permanent: bool,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl CredentialError {
    /// A failure another attempt may not meet (the backend was unreachable, overloaded): the
    /// dial fails as a transient error and a session retries it with backoff.
    pub fn transient(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            permanent: false,
            cause: cause.into(),
        }
    }

    /// A failure no retry fixes (the user is not allowed a token, the account is closed): the
    /// dial fails as an authentication failure and a session ends.
    pub fn permanent(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            permanent: true,
            cause: cause.into(),
        }
    }

    /// Whether the failure is permanent.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    fn kind(&self) -> &'static str {
        if self.permanent {
            "permanent"
        } else {
            "transient"
        }
    }
}

impl fmt::Debug for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialError")
            .field("permanent", &self.permanent)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the credential source failed ({})", self.kind())
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// Scheme, authority and optional path prefix that the method path is appended to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Base {
    tls: bool,
    authority: String,
    prefix: String,
}

/// A Gemini Live endpoint: URL plus credential.
///
/// ```
/// use gemini_transport::{ApiVersion, Endpoint};
/// use secrecy::SecretString;
///
/// let endpoint = Endpoint::api_key(SecretString::from("my-key")).with_api_version(ApiVersion::V1alpha);
/// assert_eq!(
///     endpoint.url(),
///     "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
/// );
/// assert!(!format!("{endpoint:?}").contains("my-key"));
/// ```
#[derive(Clone)]
pub struct Endpoint {
    surface: Surface,
    base: Option<Base>,
    user_project: Option<String>,
    credential_source: Option<CredentialSource>,
}

impl Endpoint {
    /// The Developer API with an API key (sent as `x-goog-api-key`), version `v1beta`.
    #[must_use]
    pub fn api_key(key: SecretString) -> Self {
        Self::with_surface(Surface::ApiKey {
            version: ApiVersion::default(),
            key,
        })
    }

    /// The Developer API with an ephemeral token (`auth_tokens/…`, minted by a backend), using the
    /// `BidiGenerateContentConstrained` method at `v1alpha`. The token is sent as
    /// `Authorization: Token auth_tokens/…`; the `auth_tokens/` prefix is added when missing.
    #[must_use]
    pub fn ephemeral_token(token: SecretString) -> Self {
        Self::with_surface(Surface::EphemeralToken {
            version: ApiVersion::V1alpha,
            token,
        })
    }

    /// Vertex AI in `location` (e.g. `us-central1`, or `global`) with an OAuth access token sent as
    /// `Authorization: Bearer …`. The model in `setup` must then be a resource name, see
    /// [`vertex_model_name`].
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] naming `location` when it is empty or holds anything but ASCII
    /// lowercase letters, digits and `-`.
    pub fn vertex(location: impl Into<String>, access_token: SecretString) -> Result<Self, Error> {
        let location = location.into();
        check_location(&location)?;
        Ok(Self::with_surface(Surface::VertexAi {
            location,
            access_token,
        }))
    }

    /// The Developer API with an ephemeral token minted by `source` before every dial (see
    /// [`CredentialSource`]), as [`ephemeral_token`](Self::ephemeral_token) otherwise: every
    /// connection, the first and each reconnect, gets a token of its own.
    #[must_use]
    pub fn ephemeral_tokens(source: CredentialSource) -> Self {
        Self::ephemeral_token(SecretString::from(String::new())).with_credential_source(source)
    }

    fn with_surface(surface: Surface) -> Self {
        Self {
            surface,
            base: None,
            user_project: None,
            credential_source: None,
        }
    }

    /// Takes the credential from `source` before every dial: the credential it returns
    /// replaces this endpoint's own (the API key, the ephemeral token or the Vertex AI access
    /// token) for that dial. See [`CredentialSource`].
    #[must_use]
    pub fn with_credential_source(mut self, source: CredentialSource) -> Self {
        self.credential_source = Some(source);
        self
    }

    /// The credential source, if the endpoint has one.
    pub(crate) fn credential_source(&self) -> Option<&CredentialSource> {
        self.credential_source.as_ref()
    }

    /// This endpoint with `credential` in place of its own, for one dial.
    pub(crate) fn with_credential(&self, credential: SecretString) -> Self {
        let mut endpoint = self.clone();
        match &mut endpoint.surface {
            Surface::ApiKey { key, .. } => *key = credential,
            Surface::EphemeralToken { token, .. } => *token = credential,
            Surface::VertexAi { access_token, .. } => *access_token = credential,
        }
        endpoint
    }

    /// Selects the Developer API version (`v1`, `v1beta`, `v1alpha`). Vertex AI endpoints ignore
    /// it: their path is always `v1beta1`.
    #[must_use]
    pub fn with_api_version(mut self, new_version: ApiVersion) -> Self {
        match &mut self.surface {
            Surface::ApiKey { version, .. } | Surface::EphemeralToken { version, .. } => {
                *version = new_version;
            }
            Surface::VertexAi { .. } => {}
        }
        self
    }

    /// Sends `x-goog-user-project: project` (the project billed for a Vertex AI call).
    #[must_use]
    pub fn with_user_project(mut self, project: impl Into<String>) -> Self {
        self.user_project = Some(project.into());
        self
    }

    /// Replaces Google's scheme and host by `base_url` (`ws://host:port` or `wss://host[/prefix]`),
    /// keeping the method path and the credential. For local servers (the fake server) and
    /// proxies.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] naming `base_url` when it does not parse, its scheme is not `ws`
    /// or `wss`, it has no host, or it carries user info or a query.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base = Some(parse_base(base_url)?);
        Ok(self)
    }

    /// Which surface and credential this endpoint uses.
    #[must_use]
    pub fn kind(&self) -> EndpointKind {
        match self.surface {
            Surface::ApiKey { .. } => EndpointKind::ApiKey,
            Surface::EphemeralToken { .. } => EndpointKind::EphemeralToken,
            Surface::VertexAi { .. } => EndpointKind::VertexAi,
        }
    }

    /// The WebSocket URL. It never holds a credential (those go in headers).
    #[must_use]
    pub fn url(&self) -> String {
        let base = self.base();
        let scheme = if base.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}{}",
            base.authority,
            base.prefix,
            self.method_path()
        )
    }

    /// `host[:port]` this endpoint connects to.
    #[must_use]
    pub fn authority(&self) -> String {
        self.base().authority
    }

    /// Whether the connection uses TLS (`wss://`).
    #[must_use]
    pub fn uses_tls(&self) -> bool {
        self.base().tls
    }

    fn base(&self) -> Base {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let authority = match &self.surface {
            Surface::VertexAi { location, .. } if location == "global" => {
                "aiplatform.googleapis.com".to_owned()
            }
            Surface::VertexAi { location, .. } => format!("{location}-aiplatform.googleapis.com"),
            Surface::ApiKey { .. } | Surface::EphemeralToken { .. } => {
                DEVELOPER_API_HOST.to_owned()
            }
        };
        Base {
            tls: true,
            authority,
            prefix: String::new(),
        }
    }

    /// The request target of the upgrade: the base URL's path prefix and the method's path.
    pub(crate) fn target(&self) -> String {
        let base = self.base.as_ref().map_or("", |b| b.prefix.as_str());
        format!("{base}{}", self.method_path())
    }

    fn method_path(&self) -> String {
        match &self.surface {
            Surface::ApiKey { version, .. } => format!(
                "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
            ),
            Surface::EphemeralToken { version, .. } => format!(
                "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained"
            ),
            Surface::VertexAi { .. } => VERTEX_PATH.to_owned(),
        }
    }

    /// The headers sent with the upgrade request besides the WebSocket ones. The credential's
    /// value is marked sensitive so that `http`'s `Debug` hides it too.
    pub(crate) fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
        let mut headers = Vec::with_capacity(3);
        let credential = match &self.surface {
            Surface::ApiKey { key, .. } => (
                HeaderName::from_static("x-goog-api-key"),
                secret_header("api_key", key.expose_secret(), "")?,
            ),
            Surface::EphemeralToken { token, .. } => {
                let token = token.expose_secret();
                let prefix = if token.starts_with("auth_tokens/") {
                    "Token "
                } else {
                    "Token auth_tokens/"
                };
                (
                    HeaderName::from_static("authorization"),
                    secret_header("ephemeral_token", token, prefix)?,
                )
            }
            Surface::VertexAi { access_token, .. } => (
                HeaderName::from_static("authorization"),
                secret_header("access_token", access_token.expose_secret(), "Bearer ")?,
            ),
        };
        headers.push(credential);
        if let Some(project) = &self.user_project {
            let value = HeaderValue::from_str(project).map_err(|_| Error::InvalidEndpoint {
                field: "user_project",
                reason: "holds characters not allowed in an HTTP header".to_owned(),
            })?;
            headers.push((HeaderName::from_static("x-goog-user-project"), value));
        }
        headers.push((
            HeaderName::from_static("x-goog-api-client"),
            HeaderValue::from_static(API_CLIENT),
        ));
        Ok(headers)
    }
}

/// The Vertex AI model resource name that `setup.model` needs:
/// `projects/{project}/locations/{location}/publishers/google/models/{model}`.
///
/// ```
/// assert_eq!(
///     gemini_transport::vertex_model_name("p1", "us-central1", "gemini-live-2.5-flash-native-audio"),
///     "projects/p1/locations/us-central1/publishers/google/models/gemini-live-2.5-flash-native-audio"
/// );
/// ```
#[must_use]
pub fn vertex_model_name(project: &str, location: &str, model: &str) -> String {
    format!("projects/{project}/locations/{location}/publishers/google/models/{model}")
}

fn secret_header(field: &'static str, secret: &str, prefix: &str) -> Result<HeaderValue, Error> {
    if secret.is_empty() {
        return Err(Error::InvalidEndpoint {
            field,
            reason: "is empty".to_owned(),
        });
    }
    let mut value = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
        Error::InvalidEndpoint {
            field,
            reason: "holds characters not allowed in an HTTP header".to_owned(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn check_location(location: &str) -> Result<(), Error> {
    let valid = !location.is_empty()
        && location
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidEndpoint {
            field: "location",
            reason: "must be non-empty lowercase letters, digits and '-'".to_owned(),
        })
    }
}

fn parse_base(base_url: &str) -> Result<Base, Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        field: "base_url",
        reason: reason.to_owned(),
    };
    let uri: Uri = base_url
        .parse()
        .map_err(|_| invalid("is not a valid URL"))?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(invalid("scheme must be ws or wss")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("has no host"))?
        .as_str();
    if authority.contains('@') {
        return Err(invalid("must not carry user info"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("must not carry a query"));
    }
    Ok(Base {
        tls,
        authority: authority.to_owned(),
        prefix: uri.path().trim_end_matches('/').to_owned(),
    })
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind())
            .field("url", &self.url())
            .field(
                "credential",
                &if self.credential_source.is_some() {
                    "[minted per dial]"
                } else {
                    "[REDACTED]"
                },
            )
            .field("user_project", &self.user_project)
            .finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} endpoint {}", self.kind(), self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from("k-123")
    }

    #[test]
    fn developer_urls_per_version() {
        let e = Endpoint::api_key(key());
        assert_eq!(
            e.url(),
            "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        );
        let e = e.with_api_version(ApiVersion::V1);
        assert_eq!(
            e.url(),
            "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
        );
    }

    #[test]
    fn base_url_keeps_prefix_and_port() {
        let e = Endpoint::api_key(key())
            .with_base_url("ws://127.0.0.1:9000/proxy/")
            .unwrap();
        assert_eq!(
            e.url(),
            "ws://127.0.0.1:9000/proxy/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        );
        assert!(!e.uses_tls());
        assert_eq!(e.authority(), "127.0.0.1:9000");
    }

    #[test]
    fn bad_base_urls_name_the_field() {
        for bad in [
            "http://h",
            "ws://",
            "ws://u:p@h",
            "ws://h/?key=1",
            "not a url",
        ] {
            match Endpoint::api_key(key()).with_base_url(bad) {
                Err(Error::InvalidEndpoint { field, .. }) => assert_eq!(field, "base_url", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    /// Credentials in the URL are refused in every spelling, before anything is dialled, and
    /// the refusal never repeats them.
    #[test]
    fn a_base_url_with_user_info_is_refused_without_echoing_it() {
        for bad in [
            "ws://user:hunter2@127.0.0.1:9000",
            "wss://user:hunter2@generativelanguage.googleapis.com",
            "wss://hunter2@generativelanguage.googleapis.com/proxy",
            "ws://user:hunter2@[::1]:8080/x",
            "ws://:hunter2@host",
            "ws://user%3Ahunter2@host",
            "ws://user:hunter2@",
            "WSS://user:hunter2@host",
        ] {
            let error = Endpoint::api_key(key()).with_base_url(bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::InvalidEndpoint {
                        field: "base_url",
                        ..
                    }
                ),
                "{bad}: {error:?}"
            );
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains("hunter2"), "{shown}");
            }
        }
        // An `@` in the path is not user info.
        let ok = Endpoint::api_key(key())
            .with_base_url("ws://127.0.0.1:9000/a@b")
            .unwrap();
        assert_eq!(ok.authority(), "127.0.0.1:9000");
    }

    #[test]
    fn bad_location_and_header_values() {
        assert!(matches!(
            Endpoint::vertex("us/central", key()),
            Err(Error::InvalidEndpoint {
                field: "location",
                ..
            })
        ));
        let e = Endpoint::api_key(SecretString::from("a\nb"));
        match e.headers() {
            Err(
                err @ Error::InvalidEndpoint {
                    field: "api_key", ..
                },
            ) => {
                assert!(!err.to_string().contains("a\nb"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ephemeral_prefix_is_added_once() {
        for token in ["auth_tokens/t1", "t1"] {
            let headers = Endpoint::ephemeral_token(SecretString::from(token))
                .headers()
                .unwrap();
            assert_eq!(headers[0].1.to_str().unwrap(), "Token auth_tokens/t1");
            assert!(headers[0].1.is_sensitive());
        }
    }
}
