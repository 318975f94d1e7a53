//! The WebSocket upgrade response, checked as RFC 6455 section 4.1 asks of a client: each
//! deviation a server (or a proxy in front of it) can make is refused with its own typed
//! error, at once, never waited on until the connect timeout. A raw TCP server answers the
//! real upgrade request with each response below; the timeouts run on paused tokio time, so a
//! response the client wrongly waited on would show as `ConnectTimeout` at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gemini_transport::{ConnectConfig, Connection, Endpoint, Error, UpgradeFault};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A server that answers one upgrade request with `response` (`{accept}` replaced by the
/// digest of the request's key), then keeps the socket open without a word more.
async fn answer(response: String) -> Result<Connection, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if socket.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .expect("the request carries a key")
            .trim();
        let response = response.replace("{accept}", &derive_accept_key(key.as_bytes()));
        socket.write_all(response.as_bytes()).await.unwrap();
        std::future::pending::<()>().await;
    });
    let endpoint = Endpoint::api_key(SecretString::from("k"))
        .with_base_url(&base)
        .unwrap();
    let result = Connection::connect(&endpoint, &ConnectConfig::default()).await;
    server.abort();
    result
}

const GOOD: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n";

async fn refused_with(response: &str) -> UpgradeFault {
    match answer(response.to_owned()).await {
        Err(Error::BadUpgrade { fault, authority }) => {
            assert!(authority.starts_with("127.0.0.1:"), "{authority}");
            fault
        }
        Err(other) => panic!("refused otherwise: {other:?} for {response:?}"),
        Ok(_) => panic!("accepted: {response:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_conforming_response_is_accepted_in_any_case_and_token_order() {
    answer(GOOD.to_owned()).await.expect("the plain response");
    let relaxed = "HTTP/1.1 101 OK\r\nupgrade:  WebSocket \r\n\
                   connection: keep-alive, UPGRADE\r\nsec-websocket-accept: {accept}\r\n\
                   Sec-WebSocket-Extensions: \r\nServer: test\r\n\r\n";
    answer(relaxed.to_owned())
        .await
        .expect("case, spaces, a token list, an empty extension list, other headers");
}

#[tokio::test(start_paused = true)]
async fn a_101_in_http_1_0_is_refused() {
    let response = GOOD.replace("HTTP/1.1", "HTTP/1.0");
    assert_eq!(refused_with(&response).await, UpgradeFault::HttpVersion);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_wrong_upgrade_header_is_refused() {
    let missing = GOOD.replace("Upgrade: websocket\r\n", "");
    assert_eq!(refused_with(&missing).await, UpgradeFault::MissingUpgrade);
    let other = GOOD.replace("Upgrade: websocket", "Upgrade: h2c");
    assert_eq!(refused_with(&other).await, UpgradeFault::MissingUpgrade);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_wrong_connection_header_is_refused() {
    let missing = GOOD.replace("Connection: Upgrade\r\n", "");
    assert_eq!(
        refused_with(&missing).await,
        UpgradeFault::MissingConnection
    );
    let other = GOOD.replace("Connection: Upgrade", "Connection: keep-alive");
    assert_eq!(refused_with(&other).await, UpgradeFault::MissingConnection);
    let within = GOOD.replace("Connection: Upgrade", "Connection: upgraded");
    assert_eq!(refused_with(&within).await, UpgradeFault::MissingConnection);
}

#[tokio::test(start_paused = true)]
async fn a_missing_wrong_or_repeated_accept_is_refused() {
    let missing = GOOD.replace("Sec-WebSocket-Accept: {accept}\r\n", "");
    assert_eq!(refused_with(&missing).await, UpgradeFault::AcceptMismatch);
    let wrong = GOOD.replace("{accept}", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(refused_with(&wrong).await, UpgradeFault::AcceptMismatch);
    let twice = GOOD.replace(
        "Sec-WebSocket-Accept: {accept}\r\n",
        "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Accept: {accept}\r\n",
    );
    assert_eq!(refused_with(&twice).await, UpgradeFault::AcceptMismatch);
}

#[tokio::test(start_paused = true)]
async fn an_unrequested_extension_or_subprotocol_is_refused() {
    let extension = GOOD.replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    assert_eq!(
        refused_with(&extension).await,
        UpgradeFault::UnrequestedExtension
    );
    let protocol = GOOD.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
    assert_eq!(
        refused_with(&protocol).await,
        UpgradeFault::UnrequestedProtocol
    );
}

/// Bare LF line endings used to leave the client waiting for a CRLF CRLF that never came,
/// until the connect timeout; they are a malformed response, refused as soon as seen.
#[tokio::test(start_paused = true)]
async fn bare_line_feeds_are_a_malformed_response_not_a_timeout() {
    let all = GOOD.replace("\r\n", "\n");
    assert_eq!(refused_with(&all).await, UpgradeFault::BareLineFeed);
    let one = GOOD.replace("Upgrade: websocket\r\n", "Upgrade: websocket\n");
    assert_eq!(refused_with(&one).await, UpgradeFault::BareLineFeed);
    // A status line alone, still partial, is enough to tell.
    assert_eq!(
        refused_with("HTTP/1.1 101 Switching Protocols\n").await,
        UpgradeFault::BareLineFeed
    );
}

/// Not HTTP, a bad header line, more than 64 headers, or a head past 16 KiB.
#[tokio::test(start_paused = true)]
async fn a_head_that_is_not_http_or_never_ends_is_refused() {
    assert_eq!(
        refused_with("HTTP/1.1 1O1 Switching\r\n\r\n").await,
        UpgradeFault::Malformed
    );
    assert_eq!(
        refused_with("SSH-2.0-OpenSSH_9.6\r\n\r\n").await,
        UpgradeFault::Malformed
    );
    let bad_header = GOOD.replace("Upgrade: websocket", "Up grade: websocket");
    assert_eq!(refused_with(&bad_header).await, UpgradeFault::Malformed);
    let many = format!(
        "HTTP/1.1 101 Switching Protocols\r\n{}\r\n",
        "X-Filler: 0\r\n".repeat(100)
    );
    assert_eq!(refused_with(&many).await, UpgradeFault::Malformed);
    let endless = format!(
        "HTTP/1.1 101 Switching Protocols\r\nX-Filler: {}",
        "0123456789".repeat(2_000)
    );
    assert_eq!(refused_with(&endless).await, UpgradeFault::HeadTooLarge);
}

/// A status other than 101 is the server's refusal, in any HTTP version, reported with it.
#[tokio::test(start_paused = true)]
async fn another_status_is_a_refused_upgrade_with_its_status() {
    for (response, status) in [
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403),
        ("HTTP/1.0 503 Service Unavailable\r\n\r\n", 503),
    ] {
        match answer(response.to_owned()).await {
            Err(Error::Handshake { status: got, .. }) => assert_eq!(got, Some(status)),
            other => panic!("{response:?}: {:?}", other.err()),
        }
    }
}
