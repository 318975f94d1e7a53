//! Errors printed as a chain (`{:#}` with anyhow, or walking `source()`) say each fact once:
//! every layer's `Display` says only its own, and the figures (a close code, an HTTP status,
//! the port dialled) appear in one layer only. Real failures over loopback: a closed port, an
//! upgrade refused with HTTP 503, a key refused with 1007.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::error::Error as _;
use std::time::Duration;

use agent_glue::{Endpoint, Error, LiveSession, Modality, SecretString};
use common::server;
use gemini_fake::{Family, FaultAction, Trigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Every layer's `Display`, outermost first.
fn chain(error: &Error) -> Vec<String> {
    let mut layers = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        layers.push(e.to_string());
        next = e.source();
    }
    layers
}

/// No layer repeats another, and each of `facts` is said by exactly one layer.
fn says_each_fact_once(layers: &[String], facts: &[&str]) {
    println!("{}", layers.join(": "));
    for (i, a) in layers.iter().enumerate() {
        for (j, b) in layers.iter().enumerate() {
            assert!(
                i == j || !a.contains(b.as_str()),
                "layer {i} repeats layer {j}: {layers:#?}"
            );
        }
    }
    for fact in facts {
        let saying = layers.iter().filter(|l| l.contains(fact)).count();
        assert_eq!(saying, 1, "`{fact}` is said {saying} times: {layers:#?}");
    }
}

async fn connect_error(base_url: &str) -> Error {
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url(base_url)
        .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        LiveSession::builder(
            endpoint,
            "models/gemini-2.5-flash-native-audio-preview-12-2025",
        )
        .modality(Modality::Text)
        .transcription(false)
        .connect(),
    )
    .await
    .expect("fails within the wait");
    match result {
        Err(e) => e,
        Ok(_) => panic!("connected"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_closed_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = connect_error(&format!("ws://127.0.0.1:{port}")).await;
    let layers = chain(&error);
    assert_eq!(
        layers.len(),
        4,
        "session, session error, transport, io: {layers:#?}"
    );
    says_each_fact_once(&layers, &[&port.to_string(), "connect", "refused"]);
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_refused_with_503() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    let error = connect_error(&format!("ws://{addr}")).await;
    let layers = chain(&error);
    says_each_fact_once(&layers, &["503"]);
}

#[tokio::test(start_paused = true)]
async fn a_key_refused_with_1007() {
    let server = server(Family::Gemini25, |c| c).await;
    server.faults().schedule(
        Trigger::SetupReceived,
        FaultAction::Close(
            1007,
            "API key not valid. Please pass a valid API key.".into(),
        ),
    );
    let error = connect_error(&server.url()).await;
    let layers = chain(&error);
    says_each_fact_once(&layers, &["1007", "API key not valid"]);
}
