//! A `SimServer` driven on virtual time, and what a client saw of it.

use std::time::Duration;

use gemini_fake::{ConnectionId, FakeConfig, Family, SimOutput, SimServer};
use gemini_transport::wire::{
    Behavior, ClientMessage, FunctionDeclaration, FunctionResponse, InteractionStatus, Modality,
    Scheduling, ServerMessage, ServerPayload, SessionResumptionConfig, Setup, ThinkingConfig,
    ThinkingLevel, Tool,
};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A configuration whose connections never end on their own (no lifetime, no hard close): the
/// tests that rely on that say so by calling this.
pub fn no_lifetime() -> FakeConfig {
    FakeConfig::new().with_lifetime(None).with_hard_close(None)
}

/// An AUDIO setup for `family` (with both transcriptions and resumption), with the
/// `thinkingLevel` extended thinking requires.
pub fn setup(family: Family) -> Setup {
    let mut setup = Setup::new(family.setup_model(false))
        .with_response_modality(Modality::Audio)
        .with_transcriptions()
        .with_session_resumption(SessionResumptionConfig::default());
    if family == Family::Gemini38ExtendedThinking {
        if let Some(generation) = setup.generation_config.as_mut() {
            generation.thinking_config = Some(ThinkingConfig::level(ThinkingLevel::Low));
        }
    }
    setup
}

/// `setup` with one declared function, with or without `behavior`.
pub fn with_tool(setup: Setup, name: &str, behavior: Option<Behavior>) -> Setup {
    let mut declaration = FunctionDeclaration::new(name, "a tool");
    declaration.behavior = behavior;
    setup.with_tools(vec![Tool::functions(vec![declaration])])
}

/// A response to `id` with `scheduling` and `willContinue` as given.
pub fn response(
    id: &str,
    name: &str,
    output: &str,
    scheduling: Option<Scheduling>,
    will_continue: bool,
) -> ClientMessage {
    let mut body = serde_json::Map::new();
    body.insert("output".to_owned(), output.into());
    let mut response = FunctionResponse::new(id, name, body);
    response.scheduling = scheduling;
    response.will_continue = will_continue.then_some(true);
    ClientMessage::tool_response(vec![response])
}

/// One model turn as a client sees it: what was said (transcription or text), whether it was
/// cut, and its `interactionStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub said: String,
    pub interrupted: bool,
    pub status: Option<InteractionStatus>,
}

impl Seen {
    /// A turn that ran to its end.
    pub fn done(said: &str, status: Option<InteractionStatus>) -> Seen {
        Seen {
            said: said.to_owned(),
            interrupted: false,
            status,
        }
    }
}

/// The server on virtual time and every output it produced.
pub struct Fake {
    pub sim: SimServer,
    pub log: Vec<(Duration, ConnectionId, SimOutput)>,
}

impl Fake {
    pub fn new(config: FakeConfig) -> Fake {
        Fake {
            sim: SimServer::new(config),
            log: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some((conn, output)) = self.sim.poll_output() {
            self.log.push((self.sim.now(), conn, output));
        }
    }

    pub fn connect(&mut self) -> ConnectionId {
        let conn = self.sim.connect(self.sim.now()).unwrap();
        self.drain();
        conn
    }

    pub fn send(&mut self, conn: ConnectionId, message: &ClientMessage) {
        self.sim
            .receive(conn, message.to_json().as_bytes(), self.sim.now());
        self.drain();
    }

    pub fn send_raw(&mut self, conn: ConnectionId, json: &str) {
        self.sim.receive(conn, json.as_bytes(), self.sim.now());
        self.drain();
    }

    /// A new connection that sent `setup`.
    pub fn open(&mut self, setup: Setup) -> ConnectionId {
        let conn = self.connect();
        self.send(conn, &ClientMessage::setup(setup));
        conn
    }

    /// Runs every timer for `span` of virtual time, one wake at a time.
    pub fn run(&mut self, span: Duration) {
        let until = self.sim.now() + span;
        while let Some(at) = self.sim.next_timer().filter(|at| *at <= until) {
            self.sim.advance(at);
            self.drain();
        }
        self.sim.advance(until);
        self.drain();
    }

    pub fn messages(&self, conn: ConnectionId) -> Vec<ServerMessage> {
        self.log
            .iter()
            .filter(|(_, c, _)| *c == conn)
            .filter_map(|(_, _, output)| match output {
                SimOutput::Frame(message) => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// The close the server sent on `conn`, if any.
    pub fn closed(&self, conn: ConnectionId) -> Option<(u16, String)> {
        self.log.iter().find_map(|(_, c, output)| match output {
            SimOutput::Close { code, reason } if *c == conn => Some((*code, reason.clone())),
            _ => None,
        })
    }

    /// When `conn` was closed (virtual time), if it was.
    pub fn closed_at(&self, conn: ConnectionId) -> Option<Duration> {
        self.log
            .iter()
            .find(|(_, c, output)| *c == conn && matches!(output, SimOutput::Close { .. }))
            .map(|(at, _, _)| *at)
    }

    /// Whether `conn`'s setup was answered with `setupComplete`.
    pub fn set_up(&self, conn: ConnectionId) -> bool {
        self.messages(conn)
            .first()
            .is_some_and(|m| matches!(m.payload, Some(ServerPayload::SetupComplete(_))))
    }

    /// The model turns seen on `conn`, in order.
    pub fn turns(&self, conn: ConnectionId) -> Vec<Seen> {
        let mut turns = Vec::new();
        let mut said = String::new();
        let mut interrupted = false;
        for message in self.messages(conn) {
            let Some(content) = message.server_content_ref() else {
                continue;
            };
            if let Some(t) = &content.output_transcription {
                said.push_str(&t.text);
            }
            for part in content.model_turn.iter().flat_map(|m| m.parts.iter()) {
                if let Some(text) = part.as_text() {
                    said.push_str(text);
                }
            }
            interrupted |= content.interrupted;
            if content.turn_complete {
                turns.push(Seen {
                    said: std::mem::take(&mut said),
                    interrupted: std::mem::take(&mut interrupted),
                    status: content.interaction_status.clone(),
                });
            }
        }
        turns
    }

    /// The ids of the calls `conn` received, in order.
    pub fn calls(&self, conn: ConnectionId) -> Vec<String> {
        self.messages(conn)
            .iter()
            .filter_map(|m| match &m.payload {
                Some(ServerPayload::ToolCall(call)) => Some(call.function_calls.clone()),
                _ => None,
            })
            .flatten()
            .map(|c| c.id)
            .collect()
    }

    /// The newest resumable handle sent on `conn`.
    pub fn handle(&self, conn: ConnectionId) -> Option<String> {
        self.messages(conn)
            .iter()
            .rev()
            .find_map(|m| match &m.payload {
                Some(ServerPayload::SessionResumptionUpdate(u)) if u.resumable => {
                    u.new_handle.clone()
                }
                _ => None,
            })
    }
}
