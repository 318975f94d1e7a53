//! A loopback WebSocket server for the connection tests: binds 127.0.0.1:0, accepts one client,
//! and captures the upgrade request it sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err,
    dead_code
)]

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, accept_hdr_async,
    tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

/// What arrived in the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub path: String,
    pub query: Option<String>,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub type ServerSocket = WebSocketStream<TcpStream>;

/// A bound listener and the `ws://` base URL that points at it.
pub async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Accepts one client and completes the upgrade, capturing the request.
pub async fn accept(listener: &TcpListener) -> (ServerSocket, Captured) {
    let (tcp, _) = listener.accept().await.unwrap();
    let captured = Arc::new(Mutex::new(Captured::default()));
    let sink = Arc::clone(&captured);
    let ws = accept_hdr_async(tcp, move |req: &Request, resp: Response| {
        *sink.lock().unwrap() = capture(req);
        Ok(resp)
    })
    .await
    .unwrap();
    let captured = captured.lock().unwrap().clone();
    (ws, captured)
}

/// Accepts one client and refuses the upgrade with `status`.
pub async fn refuse(listener: &TcpListener, status: StatusCode) {
    let (tcp, _) = listener.accept().await.unwrap();
    let _ = accept_hdr_async(tcp, move |_: &Request, _: Response| {
        let mut refusal = ErrorResponse::new(Some("refused".to_owned()));
        *refusal.status_mut() = status;
        Err(refusal)
    })
    .await;
}

fn capture(req: &Request) -> Captured {
    Captured {
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap().to_owned(),
                )
            })
            .collect(),
    }
}

/// The next data frame from the client as text (skipping pings/pongs).
pub async fn next_text(ws: &mut ServerSocket) -> String {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected client frame {other:?}"),
        }
    }
}

/// The next data frame from the client parsed as JSON.
pub async fn next_json(ws: &mut ServerSocket) -> serde_json::Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

/// Sends `json` in a binary frame, as Google's server does.
pub async fn send_binary(ws: &mut ServerSocket, json: &str) {
    ws.send(Message::Binary(json.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

/// Sends `json` in a text frame.
pub async fn send_text(ws: &mut ServerSocket, json: &str) {
    ws.send(Message::Text(json.into())).await.unwrap();
}

/// Sends a close frame with `code` and `reason`.
pub async fn close_with(ws: &mut ServerSocket, code: u16, reason: &str) {
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })))
    .await
    .unwrap();
}

/// Reads until the client's close frame (or the end of the stream); returns its code.
pub async fn await_client_close(ws: &mut ServerSocket) -> Option<u16> {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Close(frame) = message {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

/// A `serverContent` model turn whose one part is the text `hello`.
pub const TEXT_TURN: &str =
    r#"{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":"hello"}]}}}"#;

/// The text of a `serverContent` model turn's parts, joined.
pub fn model_text(message: &gemini_transport::wire::ServerMessage) -> String {
    match &message.payload {
        Some(gemini_transport::wire::ServerPayload::ServerContent(content)) => content
            .model_turn
            .as_ref()
            .unwrap()
            .parts
            .iter()
            .filter_map(|p| p.as_text())
            .collect(),
        other => panic!("expected serverContent, got {other:?}"),
    }
}
