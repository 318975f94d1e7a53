//! Server frames over loopback: text and binary JSON, pings, malformed frames, oversized frames,
//! batched sends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connection_support;

use std::time::Duration;

use connection_support::{
    ServerSocket, TEXT_TURN, accept, await_client_close, bind, model_text, next_json, send_binary,
    send_text,
};
use futures_util::{SinkExt, StreamExt};
use gemini_transport::{
    ConnectConfig, Connection, Endpoint, Error,
    wire::{ClientMessage, RealtimeInput},
};
use secrecy::SecretString;
use serde_json::json;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

/// Starts a server running `script` on the accepted socket, and connects to it.
async fn connect_to<F, Fut>(
    config: ConnectConfig,
    script: F,
) -> (Connection, tokio::task::JoinHandle<()>)
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (ws, _) = accept(&listener).await;
        script(ws).await;
    });
    let endpoint = Endpoint::api_key(SecretString::from("k"))
        .with_base_url(&base)
        .unwrap();
    (
        Connection::connect(&endpoint, &config).await.unwrap(),
        server,
    )
}

#[tokio::test]
async fn json_in_text_and_binary_frames_both_decode() {
    let (mut connection, server) = connect_to(ConnectConfig::default(), |mut ws| async move {
        send_text(&mut ws, TEXT_TURN).await;
        send_binary(&mut ws, TEXT_TURN).await;
        send_binary(&mut ws, r#"{"usageMetadata":{"totalTokenCount":7}}"#).await;
        let _ = await_client_close(&mut ws).await;
    })
    .await;
    assert_eq!(model_text(&connection.recv().await.unwrap()), "hello");
    assert_eq!(model_text(&connection.recv().await.unwrap()), "hello");
    let usage = connection.recv().await.unwrap();
    assert!(usage.payload.is_none());
    assert!(usage.usage_metadata.is_some());
    connection.close(1000, "done").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let (mut connection, server) = connect_to(ConnectConfig::default(), |mut ws| async move {
        ws.send(Message::Ping(b"are-you-there".to_vec().into()))
            .await
            .unwrap();
        // The pong must arrive while the client is waiting in recv(), before any data frame.
        let pong = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no pong within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(pong, Message::Pong(b"are-you-there".to_vec().into()));
        send_binary(&mut ws, TEXT_TURN).await;
        let _ = await_client_close(&mut ws).await;
    })
    .await;
    assert_eq!(model_text(&connection.recv().await.unwrap()), "hello");
    connection.close(1000, "").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn malformed_binary_frames_are_typed_errors_and_the_connection_goes_on() {
    let (mut connection, server) = connect_to(ConnectConfig::default(), |mut ws| async move {
        send_binary(&mut ws, r#"{"serverContent": {"modelTurn": "#).await;
        ws.send(Message::Binary(vec![b'{', 0xff, 0xfe, b'}'].into()))
            .await
            .unwrap();
        send_binary(&mut ws, r#"{"goAway":{"timeLeft":"oops"}}"#).await;
        send_binary(&mut ws, TEXT_TURN).await;
        let _ = await_client_close(&mut ws).await;
    })
    .await;
    for _ in 0..3 {
        let error = connection.recv().await.unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error:?}");
        assert!(!error.ends_connection());
    }
    assert_eq!(model_text(&connection.recv().await.unwrap()), "hello");
    connection.close(1000, "").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_ends_the_connection_with_a_typed_error() {
    let (mut connection, server) = connect_to(ConnectConfig::default(), |mut ws| async move {
        let frame = Frame::message(vec![0xc3, 0x28], OpCode::Data(Data::Text), true);
        ws.send(Message::Frame(frame)).await.unwrap();
        let _ = await_client_close(&mut ws).await;
    })
    .await;
    let error = connection.recv().await.unwrap_err();
    assert!(matches!(error, Error::WebSocket { .. }), "{error:?}");
    assert!(error.ends_connection());
    // Later calls report the recorded end instead of hanging.
    assert!(matches!(connection.recv().await, Err(Error::Closed(_))));
    drop(connection);
    server.await.unwrap();
}

#[tokio::test]
async fn oversized_frame_is_a_typed_error_and_closes_with_1009() {
    let config = ConnectConfig::default()
        .with_max_message_size(1024)
        .with_max_frame_size(1024);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (mut connection, server) = connect_to(config, |mut ws| async move {
        let big = format!(
            r#"{{"serverContent":{{"outputTranscription":{{"text":"{}"}}}}}}"#,
            "a".repeat(4096)
        );
        send_binary(&mut ws, &big).await;
        tx.send(await_client_close(&mut ws).await).unwrap();
    })
    .await;
    match connection.recv().await {
        Err(Error::MessageTooLarge { size, max }) => {
            assert_eq!(max, 1024);
            assert!(size > 1024, "{size}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.await.unwrap(), Some(1009));
    server.await.unwrap();
}

#[tokio::test]
async fn batch_is_received_in_order_and_frames_are_text() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (connection, server) = connect_to(ConnectConfig::default(), |mut ws| async move {
        let mut frames = Vec::new();
        for _ in 0..4 {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => {
                    frames.push(serde_json::from_str::<serde_json::Value>(&t).unwrap())
                }
                other => panic!("client frames must be text, got {other:?}"),
            }
        }
        frames.push(next_json(&mut ws).await);
        tx.send(frames).unwrap();
        let _ = await_client_close(&mut ws).await;
    })
    .await;
    let (mut sender, mut receiver) = connection.split();
    let chunks: Vec<ClientMessage> = (0u8..3)
        .map(|i| {
            ClientMessage::RealtimeInput(RealtimeInput::Audio(gemini_transport::wire::Blob::pcm(
                vec![i; 4],
                16_000,
            )))
        })
        .collect();
    assert_eq!(sender.send_batch(&chunks).await.unwrap(), 3);
    sender.send_audio(&[3u8; 4], 16_000).await.unwrap();
    sender
        .send(&ClientMessage::RealtimeInput(RealtimeInput::AudioStreamEnd))
        .await
        .unwrap();
    let frames = rx.await.unwrap();
    assert_eq!(
        frames,
        vec![
            json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAAAAA=="}}}),
            json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AQEBAQ=="}}}),
            json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AgICAg=="}}}),
            json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AwMDAw=="}}}),
            json!({"realtimeInput": {"audioStreamEnd": true}}),
        ]
    );
    sender.close(1000, "bye").await.unwrap();
    let closed = receiver.recv().await.unwrap_err();
    let info = closed.close_info().unwrap();
    assert_eq!(info.code, 1000);
    assert_eq!(info.class, gemini_transport::CloseClass::Normal);
    assert_eq!(info.initiator, gemini_transport::CloseInitiator::Client);
    server.await.unwrap();
}
