//! Opening the WebSocket: request with credential headers, TCP with `TCP_NODELAY`, TLS through
//! rustls, the upgrade, all under one timeout and one tracing span. The upgrade is written and
//! checked here (not by tungstenite, which logs the whole request, credential included, at
//! TRACE through the `log` crate); `tests/no_credential_in_logs.rs` proves no record holds one.

use std::time::Instant;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{self, http};
use tracing::Instrument;

use crate::{
    config::ConnectConfig,
    endpoint::Endpoint,
    error::{Error, UpgradeFault},
    tls,
};

/// An upgraded socket, and the bytes read past the upgrade response (frames the server sent
/// at once).
pub(crate) struct Upgraded {
    pub(crate) socket: Socket,
    pub(crate) leftover: Vec<u8>,
}

/// Plain TCP or TLS, for the whole socket and for each of its halves: one enum, so that one
/// pair of `AsyncRead`/`AsyncWrite` forwarding impls serves all three.
#[derive(Debug)]
pub(crate) enum Io<P, T> {
    Plain(P),
    Tls(T),
}

/// The TLS stream, boxed: its state (about a kilobyte of rustls connection) is not carried by
/// plain connections (tokio-tungstenite's `MaybeTlsStream` holds it inline, in every
/// connection, idle ones included).
type TlsStream = Box<tokio_rustls::client::TlsStream<TcpStream>>;

/// TCP, or TLS over TCP.
pub(crate) type Socket = Io<TcpStream, TlsStream>;

/// The reading half of a [`Socket`]: TCP's own (no lock between the halves), or a TLS stream's
/// (TLS keeps one state for both directions, which `tokio::io::split` guards).
pub(crate) type ReadHalf = Io<tokio::net::tcp::OwnedReadHalf, tokio::io::ReadHalf<TlsStream>>;

/// The writing half of a [`Socket`].
pub(crate) type WriteHalf = Io<tokio::net::tcp::OwnedWriteHalf, tokio::io::WriteHalf<TlsStream>>;

impl Socket {
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Io::Plain(tcp) => {
                let (read, write) = tcp.into_split();
                (Io::Plain(read), Io::Plain(write))
            }
            Io::Tls(tls) => {
                let (read, write) = tokio::io::split(tls);
                (Io::Tls(read), Io::Tls(write))
            }
        }
    }
}

impl<P, T> tokio::io::AsyncRead for Io<P, T>
where
    P: tokio::io::AsyncRead + Unpin,
    T: tokio::io::AsyncRead + Unpin,
{
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => std::pin::Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => std::pin::Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl<P, T> tokio::io::AsyncWrite for Io<P, T>
where
    P: tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => std::pin::Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Tls(io) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => std::pin::Pin::new(io).poll_flush(cx),
            Io::Tls(io) => std::pin::Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => std::pin::Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// Connects to `endpoint` and completes the WebSocket upgrade; with a credential source, asks
/// it for the credential first (within the connect timeout).
pub(crate) async fn dial(endpoint: &Endpoint, config: &ConnectConfig) -> Result<Upgraded, Error> {
    let authority = endpoint.authority();
    let span = tracing::info_span!(
        "gemini_connect",
        kind = %endpoint.kind(),
        authority = %authority,
        tls = endpoint.uses_tls(),
        credential_per_dial = endpoint.credential_source().is_some(),
    );
    async {
        let started = Instant::now();
        let dial = async {
            match endpoint.credential_source() {
                Some(source) => {
                    let credential = source.fetch().await.map_err(Error::Credential)?;
                    tracing::trace!("credential minted for the dial");
                    open(&endpoint.with_credential(credential), config).await
                }
                None => open(endpoint, config).await,
            }
        };
        let result = tokio::time::timeout(config.connect_timeout, dial).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::ConnectTimeout {
                authority: authority.clone(),
                after: config.connect_timeout,
            }),
        };
        match &outcome {
            Ok(_) => tracing::debug!(elapsed_us = elapsed_us(started), "websocket open"),
            Err(error) => tracing::debug!(%error, class = %error.class(), "connect failed"),
        }
        outcome
    }
    .instrument(span)
    .await
}

async fn open(endpoint: &Endpoint, config: &ConnectConfig) -> Result<Upgraded, Error> {
    let authority = endpoint.authority();
    let (host, port) = host_and_port(&authority, endpoint.uses_tls())?;
    // The request is written from its parts (no URL parsed back, no `http::Request` built).
    let target = endpoint.target();
    let headers = endpoint.headers()?;
    let proxy = crate::proxy::resolve(&config.proxy, &host, endpoint.uses_tls(), |name| {
        std::env::var(name).ok()
    })?;
    let tcp = match &proxy {
        Some(proxy) => crate::proxy::tunnel(proxy, &host, port).await?,
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|source| Error::Connect {
                authority: authority.clone(),
                source,
            })?,
    };
    if config.tcp_nodelay {
        tcp.set_nodelay(true).map_err(|source| Error::Connect {
            authority: authority.clone(),
            source,
        })?;
    }
    tracing::trace!("tcp connected");
    let mut stream = if endpoint.uses_tls() {
        let tls = match &config.tls {
            Some(tls) => tls.clone(),
            None => tls::default_client_config()?,
        };
        let name = ServerName::try_from(host.clone()).map_err(|_| Error::InvalidEndpoint {
            field: "base_url",
            reason: "has no valid TLS server name".to_owned(),
        })?;
        let tls = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls {
                authority: authority.clone(),
                detail: e.to_string(),
            })?;
        Io::Tls(Box::new(tls))
    } else {
        Io::Plain(tcp)
    };
    // The upgrade is done here rather than by tungstenite, which logs the whole request (the
    // credential header included) at TRACE through the `log` crate.
    let leftover = upgrade(&mut stream, &target, &headers, &authority).await?;
    Ok(Upgraded {
        socket: stream,
        leftover,
    })
}

/// The most the upgrade response's head may take.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Sends the upgrade request (`GET target` to `authority`, the WebSocket headers, then
/// `headers`: the credential, the client header) and reads the response head; returns the bytes
/// read past it (frames the server sent right away). Logs nothing of the request.
async fn upgrade<S>(
    stream: &mut S,
    target: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    authority: &str,
) -> Result<Vec<u8>, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let failed = |detail: String| Error::Handshake {
        authority: authority.to_owned(),
        status: None,
        detail,
    };
    let key = tungstenite::handshake::client::generate_key();
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    )
    .into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    stream
        .write_all(&head)
        .await
        .map_err(|e| failed(format!("writing the upgrade request: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| failed(format!("writing the upgrade request: {e}")))?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        match response_head(&buf, &accept) {
            Ok(Some(end)) => break end,
            Ok(None) if buf.len() > MAX_RESPONSE_HEAD => {
                return Err(bad_upgrade(authority, UpgradeFault::HeadTooLarge));
            }
            Ok(None) => {}
            Err(Refused::Fault(fault)) => return Err(bad_upgrade(authority, fault)),
            Err(Refused::Status(status)) => {
                let detail = http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("upgrade refused")
                    .to_owned();
                return Err(Error::Handshake {
                    authority: authority.to_owned(),
                    status: Some(status),
                    detail,
                });
            }
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| failed(format!("reading the upgrade response: {e}")))?;
        if n == 0 {
            return Err(failed("connection closed during the upgrade".to_owned()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    Ok(buf[end..].to_vec())
}

fn bad_upgrade(authority: &str, fault: UpgradeFault) -> Error {
    Error::BadUpgrade {
        authority: authority.to_owned(),
        fault,
    }
}

/// Why an upgrade response is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// A status other than 101.
    Status(u16),
    /// A `101` (or no valid head) that breaks RFC 6455 section 4.1 or HTTP/1.1.
    Fault(UpgradeFault),
}

/// The most headers an upgrade response may carry.
const MAX_RESPONSE_HEADERS: usize = 64;

/// Checks what has been read of the upgrade response: `Ok(None)` while its head is not
/// complete, `Ok(Some(end))` for a complete head that accepts the upgrade (the head ends at
/// `end`; what follows are frames), else why it is refused. `accept` is the
/// `Sec-WebSocket-Accept` value the key sent calls for. The head is parsed by `httparse`, then
/// checked as RFC 6455 section 4.1 asks of a client: status 101 in HTTP/1.1, `Upgrade:
/// websocket`, `Connection` with the `Upgrade` token, the accept digest once, and no extension or
/// subprotocol (this client requests none). A bare LF ends no line here: `httparse` takes one
/// (HTTP allows a recipient to), so it is looked for first and refused as malformed.
fn response_head(buf: &[u8], accept: &str) -> Result<Option<usize>, Refused> {
    let fault = |fault| Err(Refused::Fault(fault));
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(buf);
    // Only the head is looked at for bare LFs (the frames after it are binary).
    let head = match parsed {
        Ok(httparse::Status::Complete(end)) => &buf[..end],
        _ => buf,
    };
    if head
        .iter()
        .enumerate()
        .any(|(at, byte)| *byte == b'\n' && (at == 0 || head[at - 1] != b'\r'))
    {
        return fault(UpgradeFault::BareLineFeed);
    }
    let end = match parsed {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return fault(UpgradeFault::Malformed),
    };
    let Some(status) = response.code else {
        return fault(UpgradeFault::Malformed);
    };
    if status != 101 {
        return Err(Refused::Status(status));
    }
    if response.version != Some(1) {
        return fault(UpgradeFault::HttpVersion);
    }
    let values = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    if !values("upgrade").any(|v| v.eq_ignore_ascii_case(b"websocket")) {
        return fault(UpgradeFault::MissingUpgrade);
    }
    let upgrade_token = |v: &[u8]| {
        v.split(|b| *b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    };
    if !values("connection").any(upgrade_token) {
        return fault(UpgradeFault::MissingConnection);
    }
    let mut accepts = values("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(value), None) if value == accept.as_bytes() => {}
        _ => return fault(UpgradeFault::AcceptMismatch),
    }
    if values("sec-websocket-extensions").any(|v| !v.is_empty()) {
        return fault(UpgradeFault::UnrequestedExtension);
    }
    if values("sec-websocket-protocol").next().is_some() {
        return fault(UpgradeFault::UnrequestedProtocol);
    }
    Ok(Some(end))
}

/// The host to dial (without an IPv6 literal's brackets) and the port of `authority`.
fn host_and_port(authority: &str, tls: bool) -> Result<(String, u16), Error> {
    let no_host = || Error::InvalidEndpoint {
        field: "base_url",
        reason: "has no host".to_owned(),
    };
    let parsed: http::uri::Authority = authority.parse().map_err(|_| no_host())?;
    let host = parsed.host();
    if host.is_empty() {
        return Err(no_host());
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((host, port))
}

fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn request_carries_sensitive_credential_and_client_header() {
        let endpoint = Endpoint::vertex("global", SecretString::from("ya29.tok"))
            .unwrap()
            .with_user_project("proj-1");
        assert_eq!(
            endpoint.target(),
            "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
        );
        let headers = endpoint.headers().unwrap();
        let auth = &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        assert_eq!(auth.to_str().unwrap(), "Bearer ya29.tok");
        assert!(auth.is_sensitive());
        assert!(!format!("{headers:?}").contains("ya29.tok"));
        let project = &headers
            .iter()
            .find(|(n, _)| n == "x-goog-user-project")
            .unwrap()
            .1;
        assert_eq!(project, "proj-1");
        assert_eq!(
            host_and_port(&endpoint.authority(), true).unwrap(),
            ("aiplatform.googleapis.com".to_owned(), 443)
        );
    }

    #[test]
    fn a_base_urls_prefix_comes_before_the_method() {
        let endpoint = Endpoint::api_key(SecretString::from("k"))
            .with_base_url("ws://127.0.0.1:9000/proxy")
            .unwrap();
        assert_eq!(
            endpoint.target(),
            "/proxy/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        );
        assert_eq!(
            host_and_port(&endpoint.authority(), false).unwrap(),
            ("127.0.0.1".to_owned(), 9000)
        );
    }

    #[test]
    fn ipv6_literal_host_loses_brackets() {
        let endpoint = Endpoint::api_key(SecretString::from("k"))
            .with_base_url("ws://[::1]:8080")
            .unwrap();
        assert_eq!(
            host_and_port(&endpoint.authority(), false).unwrap(),
            ("::1".to_owned(), 8080)
        );
    }
}
