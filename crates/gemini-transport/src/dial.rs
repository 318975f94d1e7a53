//! Opening the WebSocket: request with credential headers, TCP with `TCP_NODELAY`, TLS through
//! rustls, the upgrade, all under one timeout and one tracing span.

use std::time::Instant;

use tokio::net::TcpStream;
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream, client_async_tls_with_config,
    tungstenite::{self, client::IntoClientRequest, handshake::client::Request},
};
use tracing::Instrument;

use crate::{config::ConnectConfig, endpoint::Endpoint, error::Error, tls};

/// The socket type under every connection.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `endpoint` and completes the WebSocket upgrade.
pub(crate) async fn dial(endpoint: &Endpoint, config: &ConnectConfig) -> Result<WsStream, Error> {
    let authority = endpoint.authority();
    let span = tracing::info_span!(
        "gemini_connect",
        kind = %endpoint.kind(),
        authority = %authority,
        tls = endpoint.uses_tls(),
    );
    async {
        let started = Instant::now();
        let result = tokio::time::timeout(config.connect_timeout, open(endpoint, config)).await;
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
    let connector = if endpoint.uses_tls() {
        let tls = match &config.tls {
            Some(tls) => tls.clone(),
            None => tls::default_client_config()?,
        };
        Connector::Rustls(tls)
    } else {
        Connector::Plain
    };
    let (stream, _response) =
        client_async_tls_with_config(request, tcp, Some(config.websocket()), Some(connector))
            .await
            .map_err(|e| handshake_error(&authority, e))?;
    Ok(stream)
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

fn handshake_error(authority: &str, error: tungstenite::Error) -> Error {
    let authority = authority.to_owned();
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            Error::Handshake {
                authority,
                status: Some(status.as_u16()),
                detail: status
                    .canonical_reason()
                    .unwrap_or("upgrade refused")
                    .to_owned(),
            }
        }
        tungstenite::Error::Tls(e) => Error::Tls {
            authority,
            detail: e.to_string(),
        },
        tungstenite::Error::Io(e) if is_tls_failure(&e) => Error::Tls {
            authority,
            detail: e.to_string(),
        },
        other => Error::Handshake {
            authority,
            status: None,
            detail: other.to_string(),
        },
    }
}

fn is_tls_failure(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
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
