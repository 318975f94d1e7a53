//! Shared helpers for the examples.
//!
//! [`EchoServer`] is an in-process loopback WebSocket server that speaks just enough of Gemini
//! Live for the quickstart: it answers `setup` with `setupComplete` and answers every text turn
//! (`clientContent` or `realtimeInput.text`) with a `serverContent` model turn echoing the text,
//! then `turnComplete`. Like Google's server it sends its JSON in binary frames. It needs no API
//! key and no network; it accepts any credential.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use gemini_transport::wire::{ClientMessage, Part, RealtimeInput};
use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// A loopback Gemini Live echo server, stopped when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Binds `127.0.0.1` on a free port and starts serving connections.
    ///
    /// # Errors
    /// The I/O error when the port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp));
            }
        });
        Ok(Self { addr, task })
    }

    /// The `ws://` base URL to give [`gemini_transport::Endpoint::with_base_url`].
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection until the client closes or the socket fails.
async fn serve(tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    while let Some(Ok(frame)) = ws.next().await {
        let bytes = match &frame {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes.as_ref(),
            Message::Close(_) => break,
            _ => continue,
        };
        let replies = match ClientMessage::from_json(bytes) {
            Ok(message) => replies_to(&message),
            Err(_) => {
                let close = CloseFrame {
                    code: CloseCode::Invalid,
                    reason: "Request contains an invalid argument.".into(),
                };
                let _ = ws.send(Message::Close(Some(close))).await;
                break;
            }
        };
        for reply in replies {
            if ws
                .feed(Message::Binary(reply.into_bytes().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

/// The server frames (JSON) that answer one client message.
fn replies_to(message: &ClientMessage) -> Vec<String> {
    let text = match message {
        ClientMessage::Setup(_) => return vec![json!({"setupComplete": {}}).to_string()],
        ClientMessage::ClientContent(content) => content
            .turns
            .iter()
            .flat_map(|turn| turn.parts.iter())
            .filter_map(Part::as_text)
            .collect::<Vec<_>>()
            .join(" "),
        ClientMessage::RealtimeInput(RealtimeInput::Text(text)) => text.clone(),
        _ => return Vec::new(),
    };
    vec![
        json!({"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": format!("You said: {text}")}]}}})
            .to_string(),
        json!({"serverContent": {"turnComplete": true}}).to_string(),
    ]
}
