//! Each close code's class over loopback, refused upgrades, and the connect and setup timeouts.
//! The timeouts run on paused tokio time: a silent peer's timeout elapses on virtual time, and
//! how long the call took is measured on it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connection_support;

use std::time::Duration;

use connection_support::{
    ServerSocket, accept, await_client_close, bind, close_with, next_json, refuse, send_binary,
};
use gemini_transport::{
    CloseClass, CloseInfo, CloseInitiator, ConnectConfig, Connection, Endpoint, Error,
    wire::{ClientMessage, ServerPayload, Setup},
};
use secrecy::SecretString;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::StatusCode;

fn endpoint(base: &str) -> Endpoint {
    Endpoint::api_key(SecretString::from("k"))
        .with_base_url(base)
        .unwrap()
}

/// Connects to a server running `script` and reads until the connection's close.
async fn close_seen_by_client<F, Fut>(script: F) -> (CloseInfo, Vec<ServerPayload>)
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (ws, _) = accept(&listener).await;
        script(ws).await;
    });
    let mut connection = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let info = loop {
        match connection.recv().await {
            Ok(message) => seen.extend(message.payload),
            Err(Error::Closed(info)) => break info,
            Err(other) => panic!("{other:?}"),
        }
    };
    // The recorded close is returned again, not a hang or a different value.
    assert_eq!(
        connection.recv().await.unwrap_err().close_info(),
        Some(&info)
    );
    assert_eq!(connection.close_info().as_ref(), Some(&info));
    server.await.unwrap();
    (info, seen)
}

async fn server_closes(code: u16, reason: &'static str) -> CloseInfo {
    close_seen_by_client(move |mut ws| async move {
        close_with(&mut ws, code, reason).await;
        // Wait for the client's close reply, which the client must send by itself.
        let _ = await_client_close(&mut ws).await;
    })
    .await
    .0
}

#[tokio::test]
async fn server_1000_without_go_away_is_normal() {
    let info = server_closes(1000, "").await;
    assert_eq!((info.code, info.class), (1000, CloseClass::Normal));
    assert_eq!(info.initiator, CloseInitiator::Server);
    assert!(!info.after_go_away);
}

#[tokio::test]
async fn client_close_is_normal_and_the_server_sees_the_code() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        await_client_close(&mut ws).await
    });
    let mut connection = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap();
    let info = connection.close(1000, "bye").await.unwrap();
    assert_eq!((info.code, info.class), (1000, CloseClass::Normal));
    assert_eq!(info.initiator, CloseInitiator::Client);
    assert_eq!(server.await.unwrap(), Some(1000));
    // Sending after the close is a typed error carrying the close.
    let error = connection
        .send(&ClientMessage::Setup(Box::new(Setup::new("m"))))
        .await
        .unwrap_err();
    assert_eq!(error.close_info(), Some(&info));
}

#[tokio::test]
async fn close_after_go_away_is_transient() {
    for code in [1000, 1008] {
        let (info, seen) = close_seen_by_client(move |mut ws| async move {
            send_binary(&mut ws, r#"{"goAway":{"timeLeft":"50s"}}"#).await;
            close_with(&mut ws, code, "").await;
            let _ = await_client_close(&mut ws).await;
        })
        .await;
        assert!(matches!(seen.as_slice(), [ServerPayload::GoAway(_)]));
        assert_eq!((info.code, info.class), (code, CloseClass::Transient));
        assert!(info.after_go_away);
    }
}

#[tokio::test]
async fn dropped_tcp_is_1006_transient() {
    let (info, _) = close_seen_by_client(|ws| async move {
        drop(ws);
    })
    .await;
    assert_eq!((info.code, info.class), (1006, CloseClass::Transient));
    assert_eq!(info.initiator, CloseInitiator::Transport);
}

#[tokio::test]
async fn invalid_argument_1007_needs_a_different_request() {
    let info = server_closes(1007, "Request contains an invalid argument.").await;
    assert_eq!(
        (info.code, info.class),
        (1007, CloseClass::NeedsDifferentRequest)
    );
    assert_eq!(info.reason, "Request contains an invalid argument.");
}

#[tokio::test]
async fn invalid_key_1007_is_auth_or_quota() {
    let info = server_closes(1007, "API key not valid. Please pass a valid API key.").await;
    assert_eq!((info.code, info.class), (1007, CloseClass::AuthOrQuota));
}

#[tokio::test]
async fn model_not_found_1008_needs_a_different_request() {
    let info = server_closes(
        1008,
        "models/gemini-x is not found for API version v1beta, or is not supported for bidiGenerateContent.",
    )
    .await;
    assert_eq!(
        (info.code, info.class),
        (1008, CloseClass::NeedsDifferentRequest)
    );
}

#[tokio::test]
async fn internal_1011_is_transient() {
    let info = server_closes(1011, "Internal error encountered.").await;
    assert_eq!((info.code, info.class), (1011, CloseClass::Transient));
}

#[tokio::test]
async fn quota_1011_is_auth_or_quota() {
    let info = server_closes(
        1011,
        "You exceeded your current quota, please check your plan.",
    )
    .await;
    assert_eq!((info.code, info.class), (1011, CloseClass::AuthOrQuota));
    let info = server_closes(1011, "Token has been used too many times").await;
    assert_eq!((info.code, info.class), (1011, CloseClass::AuthOrQuota));
}

#[tokio::test]
async fn refused_upgrade_is_a_handshake_error_classified_by_status() {
    for (status, class) in [
        (StatusCode::UNAUTHORIZED, CloseClass::AuthOrQuota),
        (StatusCode::TOO_MANY_REQUESTS, CloseClass::AuthOrQuota),
        (StatusCode::NOT_FOUND, CloseClass::NeedsDifferentRequest),
        (StatusCode::SERVICE_UNAVAILABLE, CloseClass::Transient),
    ] {
        let (listener, base) = bind().await;
        let server = tokio::spawn(async move { refuse(&listener, status).await });
        let error = Connection::connect(&endpoint(&base), &ConnectConfig::default())
            .await
            .unwrap_err();
        match &error {
            Error::Handshake { status: got, .. } => assert_eq!(*got, Some(status.as_u16())),
            other => panic!("{other:?}"),
        }
        assert_eq!(error.class(), class, "{status}");
        server.await.unwrap();
    }
}

#[tokio::test]
async fn refused_tcp_is_a_transient_connect_error() {
    let (listener, base) = bind().await;
    drop(listener);
    let error = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert_eq!(error.class(), CloseClass::Transient);
}

#[tokio::test(start_paused = true)]
async fn silent_server_hits_the_connect_timeout() {
    let (listener, base) = bind().await;
    // Accept TCP, never answer the upgrade (the socket is held until the task is aborted).
    let server = tokio::spawn(async move {
        let (_tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let config = ConnectConfig::default().with_connect_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = Connection::connect(&endpoint(&base), &config)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    match &error {
        Error::ConnectTimeout { after, .. } => assert_eq!(*after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    assert_eq!(error.class(), CloseClass::Transient);
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn missing_setup_complete_hits_the_setup_timeout() {
    let (listener, base) = bind().await;
    // Reads the setup, never answers it (the socket is held until the task is aborted).
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        let _setup = next_json(&mut ws).await;
        std::future::pending::<()>().await;
    });
    let config = ConnectConfig::default().with_setup_timeout(Duration::from_millis(200));
    let mut connection = Connection::connect(&endpoint(&base), &config)
        .await
        .unwrap();
    let started = Instant::now();
    let error = connection
        .setup(&ClientMessage::Setup(Box::new(Setup::new("models/m"))))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::SetupTimeout { after } if after == Duration::from_millis(200)),
        "{error:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    server.abort();
}

#[tokio::test]
async fn close_instead_of_setup_complete_is_returned_by_setup() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        let _ = next_json(&mut ws).await;
        close_with(&mut ws, 1008, "models/nope is not found").await;
        let _ = await_client_close(&mut ws).await;
    });
    let mut connection = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap();
    let error = connection
        .setup(&ClientMessage::Setup(Box::new(Setup::new("models/nope"))))
        .await
        .unwrap_err();
    let info = error.close_info().unwrap();
    assert_eq!(
        (info.code, info.class),
        (1008, CloseClass::NeedsDifferentRequest)
    );
    server.await.unwrap();
}

#[tokio::test]
async fn other_message_before_setup_complete_is_kept_in_the_error() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        let _ = next_json(&mut ws).await;
        send_binary(&mut ws, r#"{"goAway":{"timeLeft":"1s"}}"#).await;
        let _ = await_client_close(&mut ws).await;
    });
    let mut connection = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap();
    match connection
        .setup(&ClientMessage::Setup(Box::new(Setup::new("models/m"))))
        .await
    {
        Err(Error::UnexpectedSetupReply(message)) => {
            assert!(matches!(message.payload, Some(ServerPayload::GoAway(_))));
        }
        other => panic!("{other:?}"),
    }
    drop(connection);
    server.await.unwrap();
}

#[tokio::test]
async fn wss_to_a_plain_server_is_a_tls_error_not_a_panic() {
    // Exercises the rustls path with the explicitly chosen provider: the handshake fails
    // because the server does not speak TLS, and the failure is typed.
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_tungstenite::accept_async(tcp).await;
    });
    let wss = base.replacen("ws://", "wss://", 1);
    let error = Connection::connect(&endpoint(&wss), &ConnectConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Tls { .. } | Error::Handshake { status: None, .. }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), CloseClass::Transient);
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_waiting_after_the_close_timeout() {
    let (listener, base) = bind().await;
    // Accepts the upgrade, then neither reads nor answers (until the task is aborted).
    let server = tokio::spawn(async move {
        let (_ws, _) = accept(&listener).await;
        std::future::pending::<()>().await;
    });
    let config = ConnectConfig::default().with_close_timeout(Duration::from_millis(200));
    let mut connection = Connection::connect(&endpoint(&base), &config)
        .await
        .unwrap();
    let started = Instant::now();
    let info = connection.close(4000, "going").await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    assert_eq!((info.code, info.class), (4000, CloseClass::Normal));
    assert_eq!(info.initiator, CloseInitiator::Client);
    server.abort();
}

#[tokio::test]
async fn receiver_task_sees_the_close_that_the_sender_started() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        send_binary(&mut ws, r#"{"setupComplete":{}}"#).await;
        await_client_close(&mut ws).await
    });
    let connection = Connection::connect(&endpoint(&base), &ConnectConfig::default())
        .await
        .unwrap();
    let (mut sender, mut receiver) = connection.split();
    // Told when the reader has the first message (`setupComplete`).
    let (first, first_read) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut first = Some(first);
        let mut payloads = Vec::new();
        loop {
            match receiver.recv().await {
                Ok(message) => {
                    payloads.extend(message.payload);
                    if let Some(first) = first.take() {
                        let _ = first.send(());
                    }
                }
                Err(Error::Closed(info)) => return (payloads, info),
                Err(other) => panic!("{other:?}"),
            }
        }
    });
    // The reader has read `setupComplete` and waits for the next message: now the close.
    first_read.await.unwrap();
    sender.close(1000, "bye").await.unwrap();
    let (payloads, info) = reader.await.unwrap();
    assert!(matches!(
        payloads.as_slice(),
        [ServerPayload::SetupComplete(_)]
    ));
    assert_eq!((info.code, info.class), (1000, CloseClass::Normal));
    assert_eq!(sender.close_info(), Some(info));
    assert_eq!(server.await.unwrap(), Some(1000));
}
