//! A raw tokio-tungstenite client for driving the fake server in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gemini_fake::FakeServer;
use gemini_transport::wire::{
    ClientMessage, FunctionDeclaration, Modality, ServerMessage, ServerPayload,
    SessionResumptionConfig, Setup, Tool,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous wall-clock limit for one expected event.
pub const STEP: Duration = Duration::from_secs(10);

/// What the client saw next.
#[derive(Debug)]
pub enum Event {
    /// A decoded server message, and whether it came in a binary frame.
    Message(ServerMessage, bool),
    /// A frame that did not decode (raw text).
    Garbage(String),
    /// A close frame.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Limit per expected frame; `None` under paused time (a tokio timeout would fire first).
    pub step: Option<Duration>,
}

impl Client {
    pub async fn connect(server: &FakeServer) -> Client {
        Self::connect_url(&server.endpoint_url()).await.unwrap()
    }

    pub async fn connect_url(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client {
            ws,
            step: Some(STEP),
        })
    }

    /// Connects and completes a setup; returns the frames up to and including `setupComplete`.
    pub async fn start(server: &FakeServer, setup: Setup) -> Client {
        let mut client = Self::connect(server).await;
        client.send(&ClientMessage::setup(setup)).await;
        client.expect_setup_complete().await;
        client
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        self.ws
            .send(Message::Text(message.to_json().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    pub async fn next(&mut self) -> Event {
        loop {
            let frame = match self.step {
                Some(step) => tokio::time::timeout(step, self.ws.next())
                    .await
                    .expect("no server frame in time"),
                None => self.ws.next().await,
            };
            return match frame {
                Some(Ok(Message::Binary(bytes))) => match ServerMessage::from_json(&bytes) {
                    Ok(message) => Event::Message(message, true),
                    Err(_) => Event::Garbage(String::from_utf8_lossy(&bytes).into_owned()),
                },
                Some(Ok(Message::Text(text))) => match ServerMessage::from_json(text.as_bytes()) {
                    Ok(message) => Event::Message(message, false),
                    Err(_) => Event::Garbage(text.to_string()),
                },
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    Event::Closed(code, reason)
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Event::Dropped,
            };
        }
    }

    /// The next server message (panics on a close or drop).
    pub async fn message(&mut self) -> ServerMessage {
        match self.next().await {
            Event::Message(message, _) => message,
            other => panic!("expected a server message, got {other:?}"),
        }
    }

    /// Messages up to and including the first one for which `stop` holds.
    pub async fn until(&mut self, stop: impl Fn(&ServerMessage) -> bool) -> Vec<ServerMessage> {
        let mut seen = Vec::new();
        loop {
            let message = self.message().await;
            let done = stop(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Messages up to and including `turnComplete`.
    pub async fn turn(&mut self) -> Vec<ServerMessage> {
        self.until(is_turn_complete).await
    }

    pub async fn expect_setup_complete(&mut self) {
        let message = self.message().await;
        assert!(
            matches!(message.payload, Some(ServerPayload::SetupComplete(_))),
            "expected setupComplete, got {message:?}"
        );
    }

    /// Skips messages until the connection closes; returns the close (or panics on a drop).
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Event::Closed(code, reason) => return (code, reason),
                Event::Message(..) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// The next resumable handle (skipping other messages).
    pub async fn next_handle(&mut self) -> String {
        loop {
            if let Some((Some(handle), _)) = resumption(&self.message().await) {
                return handle;
            }
        }
    }
}

pub fn is_turn_complete(message: &ServerMessage) -> bool {
    message
        .server_content_ref()
        .is_some_and(|c| c.turn_complete)
}

/// `(newHandle, lastConsumedClientMessageIndex)` of a resumption update.
pub fn resumption(message: &ServerMessage) -> Option<(Option<String>, Option<u64>)> {
    match &message.payload {
        Some(ServerPayload::SessionResumptionUpdate(update)) => Some((
            update.new_handle.clone(),
            update.last_consumed_client_message_index,
        )),
        _ => None,
    }
}

/// Concatenated model text parts.
pub fn model_text(messages: &[ServerMessage]) -> String {
    messages
        .iter()
        .filter_map(|m| m.server_content_ref())
        .filter_map(|c| c.model_turn.as_ref())
        .flat_map(|turn| turn.parts.iter())
        .filter_map(|part| part.as_text())
        .collect()
}

/// The wire names of the messages, with the serverContent flags spelled out.
pub fn shape(messages: &[ServerMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match (&m.payload, m.server_content_ref()) {
            (_, Some(c)) if c.turn_complete => "turnComplete".to_owned(),
            (_, Some(c)) if c.generation_complete => "generationComplete".to_owned(),
            (_, Some(c)) if c.interrupted => "interrupted".to_owned(),
            (_, Some(c)) if c.model_turn.is_some() => "modelTurn".to_owned(),
            (_, Some(_)) => "serverContent".to_owned(),
            (Some(ServerPayload::SessionResumptionUpdate(u)), _) if u.resumable => {
                "handle".to_owned()
            }
            (Some(ServerPayload::SessionResumptionUpdate(_)), _) => "notResumable".to_owned(),
            (Some(p), _) => p.member_name().to_owned(),
            (None, _) => "usageOnly".to_owned(),
        })
        .collect()
}

/// A TEXT-modality setup for the server's model.
pub fn text_setup(server: &FakeServer) -> Setup {
    Setup::new(server.config().setup_model()).with_response_modality(Modality::Text)
}

/// A TEXT setup with resumption on.
pub fn resumable_setup(server: &FakeServer) -> Setup {
    text_setup(server).with_session_resumption(SessionResumptionConfig::default())
}

/// Declares functions by name.
pub fn with_functions(setup: Setup, names: &[&str]) -> Setup {
    setup.with_tools(vec![Tool::functions(
        names
            .iter()
            .map(|n| FunctionDeclaration::new(*n, "test function"))
            .collect(),
    )])
}
