//! No credential in any log record: with a TRACE logger installed for the `log` facade (as
//! applications that bridge `log` into `tracing`, or use `env_logger`, have), connecting with
//! an API key, an ephemeral token or a token a credential source mints for the dial writes no
//! record that contains it. tungstenite logs the whole upgrade request at TRACE when it
//! performs the upgrade, so the transport performs the upgrade (and its framing) itself; this
//! test fails if a dependency on the client's path logs a credential again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use gemini_transport::wire::{ClientMessage, Setup};
use gemini_transport::{ConnectConfig, Connection, CredentialSource, Endpoint, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        RECORDS.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

const KEY: &str = "AIzaSyTHIS-IS-THE-SECRET-KEY-0123456789";
const TOKEN: &str = "auth_tokens/THIS-IS-THE-SECRET-TOKEN-987";
/// What a credential source mints before every dial.
const MINTED: &str = "auth_tokens/THIS-IS-THE-SECRET-MINTED-TOKEN-654";

/// A server that answers the upgrade by hand (so that it logs nothing itself), then reads
/// frames until the client goes.
async fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let key = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let accept =
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let reply = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                if tcp.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                let mut sink = [0u8; 4096];
                while tcp.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
        }
    });
    base
}

#[tokio::test]
async fn a_trace_logger_sees_no_credential() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    // Proof that the logger takes TRACE records: the test's own.
    log::trace!(target: "probe", "logger installed");
    let base = server().await;
    let minted = CredentialSource::new(|| async { Ok(SecretString::from(MINTED)) });
    let endpoints = [
        Endpoint::api_key(SecretString::from(KEY)),
        Endpoint::ephemeral_token(SecretString::from(TOKEN)),
        Endpoint::ephemeral_tokens(minted),
    ];
    for endpoint in endpoints {
        let endpoint = endpoint.with_base_url(&base).unwrap();
        let connection = Connection::connect(&endpoint, &ConnectConfig::default())
            .await
            .expect("the upgrade succeeds");
        let setup = ClientMessage::Setup(Box::new(Setup::new("models/test")));
        let (mut sender, _receiver) = connection.split();
        sender.send(&setup).await.expect("a frame goes out");
        let _ = sender.close(1000, "done").await;
    }
    let records = RECORDS.lock().unwrap().clone();
    assert!(
        records.iter().any(|r| r.starts_with("TRACE probe")),
        "the logger sees TRACE records: {records:#?}"
    );
    for secret in [KEY, TOKEN, MINTED, "SECRET"] {
        let leaked: Vec<&String> = records.iter().filter(|r| r.contains(secret)).collect();
        assert!(leaked.is_empty(), "{secret} in a log record: {leaked:#?}");
    }
}
