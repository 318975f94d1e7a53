//! Opening the WebSocket: request with credential headers, TCP with `TCP_NODELAY`, TLS through
//! rustls, the upgrade, all under one timeout and one tracing span. The upgrade is written and
//! checked here (not by tungstenite, which logs the whole request, credential included, at
//! TRACE through the `log` crate); `tests/no_credential_in_logs.rs` proves no record holds one.

use std::time::Instant;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, client::IntoClientRequest, handshake::client::Request, http, protocol::Role,
    },
};
use tracing::Instrument;

use crate::{config::ConnectConfig, endpoint::Endpoint, error::Error, tls};

/// The socket type under every connection.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `endpoint` and completes the WebSocket upgrade; with a credential source, asks
/// it for the credential first (within the connect timeout).
pub(crate) async fn dial(endpoint: &Endpoint, config: &ConnectConfig) -> Result<WsStream, Error> {
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

async fn open(endpoint: &Endpoint, config: &ConnectConfig) -> Result<WsStream, Error> {
    let authority = endpoint.authority();
    let request = request(endpoint)?;
    let (host, port) = host_and_port(&request, endpoint.uses_tls())?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| Error::Connect {
            authority: authority.clone(),
            source,
        })?;
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
        MaybeTlsStream::Rustls(tls)
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    // The upgrade is done here rather than by tungstenite, which logs the whole request (the
    // credential header included) at TRACE through the `log` crate.
    let leftover = upgrade(&mut stream, &request, &authority).await?;
    Ok(WebSocketStream::from_partially_read(
        stream,
        leftover,
        Role::Client,
        Some(config.websocket()),
    )
    .await)
}

/// The most the upgrade response's head may take.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Sends the upgrade `request` and reads the response head; returns the bytes read past it
/// (frames the server sent right away). Logs nothing of the request.
async fn upgrade<S>(stream: &mut S, request: &Request, authority: &str) -> Result<Vec<u8>, Error>
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
    let uri = request.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = uri.authority().map_or(authority, |a| a.as_str());
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    )
    .into_bytes();
    // The endpoint's headers (credential, client header); the upgrade's own are written above.
    const OWN: [&str; 5] = [
        "host",
        "connection",
        "upgrade",
        "sec-websocket-version",
        "sec-websocket-key",
    ];
    for (name, value) in request.headers() {
        if OWN.contains(&name.as_str()) {
            continue;
        }
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
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(failed("upgrade response head too large".to_owned()));
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
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| failed("malformed upgrade response".to_owned()))?;
    if status != 101 {
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
    let accept = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim().to_owned())
    });
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if accept.as_deref() != Some(expected.as_str()) {
        return Err(failed(
            "the server did not accept the WebSocket upgrade".to_owned(),
        ));
    }
    Ok(buf[end..].to_vec())
}

/// The upgrade request: URL from the endpoint, WebSocket headers, then the endpoint's headers.
fn request(endpoint: &Endpoint) -> Result<Request, Error> {
    let mut request = endpoint
        .url()
        .into_client_request()
        .map_err(|_| Error::InvalidEndpoint {
            field: "base_url",
            reason: "does not form a valid request URL".to_owned(),
        })?;
    let headers = request.headers_mut();
    for (name, value) in endpoint.headers()? {
        headers.insert(name, value);
    }
    Ok(request)
}

fn host_and_port(request: &Request, tls: bool) -> Result<(String, u16), Error> {
    let uri = request.uri();
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::InvalidEndpoint {
            field: "base_url",
            reason: "has no host".to_owned(),
        })?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
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
        let request = request(&endpoint).unwrap();
        assert_eq!(
            request.uri().to_string(),
            "wss://aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
        );
        let auth = &request.headers()["authorization"];
        assert_eq!(auth.to_str().unwrap(), "Bearer ya29.tok");
        assert!(auth.is_sensitive());
        assert!(!format!("{request:?}").contains("ya29.tok"));
        assert_eq!(request.headers()["x-goog-user-project"], "proj-1");
        assert_eq!(
            host_and_port(&request, true).unwrap(),
            ("aiplatform.googleapis.com".to_owned(), 443)
        );
    }

    #[test]
    fn ipv6_literal_host_loses_brackets() {
        let endpoint = Endpoint::api_key(SecretString::from("k"))
            .with_base_url("ws://[::1]:8080")
            .unwrap();
        let request = request(&endpoint).unwrap();
        assert_eq!(
            host_and_port(&request, false).unwrap(),
            ("::1".to_owned(), 8080)
        );
    }
}
