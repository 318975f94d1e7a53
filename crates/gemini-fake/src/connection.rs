//! The async shell around one WebSocket: upgrade checks, frame IO, outgoing queue (stall and
//! delay faults), connection lifetime and test-side controls.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::FrameKind;
use crate::conversation::{Conversation, Step};
use crate::endpoint::{self, Route};
use crate::outbound;
use crate::server::until_shutdown;
use crate::session::{ConnectionEnd, ConnectionId, ConnectionRecord};
use crate::shared::{Control, Shared};

/// How long the server waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The reason the service gives for a bad key.
const BAD_KEY: &str = "API key not valid. Please pass a valid API key.";

/// What the upgrade request said.
#[derive(Debug, Default)]
struct Upgrade {
    route: Option<Route>,
    key_ok: bool,
}

fn refuse(status: u16, text: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(text.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    response
}

/// Checks the path and credentials of an upgrade request.
fn check_upgrade(
    shared: &Shared,
    request: &Request,
    upgrade: &mut Upgrade,
) -> Result<(), (u16, &'static str)> {
    let refused = shared.update(|state| match state.faults.refuse_upgrades.as_mut() {
        Some((remaining, status)) => {
            let status = *status;
            *remaining -= 1;
            if *remaining == 0 {
                state.faults.refuse_upgrades = None;
            }
            Some(status)
        }
        None => None,
    });
    if let Some(status) = refused {
        return Err((status, "The service is currently unavailable."));
    }
    let route = endpoint::route(request.uri().path())
        .filter(|route| route.vertex == shared.config.vertex)
        .ok_or((404, "Not Found"))?;
    let headers = request.headers();
    let found = endpoint::credentials(request.uri().query(), |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    });
    upgrade.key_ok = match &shared.config.api_key {
        Some(key) => found.iter().any(|k| k == key),
        None => true,
    };
    upgrade.route = Some(route);
    Ok(())
}

/// An outgoing frame and when it may leave.
struct Queued {
    due: Instant,
    message: Message,
}

/// Serves one accepted TCP connection to its end.
// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut upgrade = Upgrade::default();
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        check_upgrade(&shared, request, &mut upgrade)
            .map(|()| response)
            .map_err(|(status, text)| refuse(status, text))
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let id = shared.update(|state| {
        state.next_connection += 1;
        let id = ConnectionId(state.next_connection);
        state.unattached.push(ConnectionRecord {
            id,
            session: None,
            frames: Vec::new(),
            resumed_from: None,
            opened_at: Instant::now(),
            end: None,
        });
        state.live.insert(id, control_tx);
        id
    });
    let version = upgrade.route.map(|r| r.version).unwrap_or_default();
    let mut link = Link {
        conversation: Conversation::new(Arc::clone(&shared), id, version),
        shared: Arc::clone(&shared),
        id,
        ws,
        queue: VecDeque::new(),
        control: control_rx,
        go_away_at: None,
        end_at: None,
    };
    let end = if upgrade.key_ok {
        link.run().await
    } else {
        link.close(1007, BAD_KEY).await
    };
    record_end(&shared, id, end);
    drop(link);
    shared.update(|state| state.live.remove(&id));
}

/// Records how a connection ended (the first record wins) and when its session was last left.
fn record_end(shared: &Shared, id: ConnectionId, end: ConnectionEnd) {
    shared.update(|state| {
        let now = Instant::now();
        let mut session = None;
        if let Some(record) = state.connection_mut(id) {
            if record.end.is_none() {
                record.end = Some((end, now));
            }
            session = record.session;
        }
        if let Some(s) = session.and_then(|sid| state.sessions.get_mut(&sid)) {
            s.last_ended = Some(now);
        }
    });
}

/// A close reason cut to the 123 bytes a close frame can carry (at a character boundary).
fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// One live WebSocket and its conversation.
struct Link {
    conversation: Conversation,
    shared: Arc<Shared>,
    id: ConnectionId,
    ws: WebSocketStream<TcpStream>,
    queue: VecDeque<Queued>,
    control: mpsc::UnboundedReceiver<Control>,
    go_away_at: Option<Instant>,
    end_at: Option<Instant>,
}

impl Link {
    async fn run(&mut self) -> ConnectionEnd {
        if let Some(lifetime) = self.shared.config.lifetime {
            let start = Instant::now();
            self.end_at = Some(start + lifetime);
            self.go_away_at =
                Some(start + lifetime.saturating_sub(self.shared.config.go_away_lead));
        }
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            let (stalled, _) = self.sending_conditions();
            let next_send = if stalled {
                None
            } else {
                self.queue.front().map(|q| q.due)
            };
            let tick = self.conversation.next_tick();
            let step = tokio::select! {
                incoming = self.ws.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.conversation.on_frame(text.as_bytes(), false),
                    Some(Ok(Message::Binary(bytes))) => self.conversation.on_frame(&bytes, true),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                        let end = ConnectionEnd::ClientClose { code, reason };
                        // Ended now, before the reply lets the client dial again: overlaps
                        // are counted against this record.
                        record_end(&self.shared, self.id, end.clone());
                        // Let tungstenite finish the closing handshake.
                        let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.next()).await;
                        return end;
                    }
                    Some(Ok(_)) => Step::Continue,
                    Some(Err(_)) | None => return ConnectionEnd::Vanished,
                },
                Some(control) = self.control.recv() => self.on_control(control),
                () = sleep_opt(next_send) => Step::Continue,
                () = sleep_opt(tick) => {
                    self.conversation.on_tick(Instant::now());
                    Step::Continue
                }
                () = sleep_opt(self.go_away_at) => {
                    self.go_away_at = None;
                    let left = self.end_at.map_or(Duration::ZERO, |end| end.saturating_duration_since(Instant::now()));
                    self.enqueue(&outbound::go_away(left));
                    Step::Continue
                }
                () = sleep_opt(self.end_at) => {
                    let (code, reason) = self.shared.config.lifetime_end.close();
                    Step::Close(code, reason.to_owned())
                }
                () = until_shutdown(&mut shutdown) => Step::Close(1001, "server shutting down".to_owned()),
            };
            for message in self.conversation.take_out() {
                self.enqueue(&message);
            }
            match step {
                Step::Continue => {}
                Step::GoAway(time_left) => self.go_away(time_left),
                Step::Close(code, reason) => {
                    self.flush_all().await;
                    return self.close(code, &reason).await;
                }
                Step::Drop => {
                    self.flush_all().await;
                    return self.drop_now();
                }
            }
            if self.send_due().await.is_err() {
                return ConnectionEnd::Vanished;
            }
        }
    }

    fn on_control(&mut self, control: Control) -> Step {
        match control {
            Control::Drop => Step::Drop,
            Control::Close(code, reason) => Step::Close(code, reason),
            Control::SendRaw(payload, binary) => {
                let message = if binary {
                    Message::Binary(payload.into())
                } else {
                    Message::Text(String::from_utf8_lossy(&payload).into_owned().into())
                };
                let due = Instant::now() + self.sending_conditions().1;
                self.queue.push_back(Queued { due, message });
                Step::Continue
            }
            Control::GoAway(time_left) => Step::GoAway(time_left),
            Control::Wake => Step::Continue,
        }
    }

    /// Queues `goAway` and moves the end of the connection to its deadline.
    fn go_away(&mut self, time_left: Duration) {
        self.enqueue(&outbound::go_away(time_left));
        let deadline = Instant::now() + time_left;
        self.go_away_at = None;
        self.end_at = Some(self.end_at.map_or(deadline, |end| end.min(deadline)));
    }

    fn sending_conditions(&self) -> (bool, Duration) {
        self.shared
            .read(|state| (state.faults.stalled, state.faults.delay))
    }

    fn enqueue(&mut self, message: &gemini_transport::wire::ServerMessage) {
        let json = message.to_json();
        let message = match self.shared.config.frame_kind {
            FrameKind::Text => Message::Text(json.into()),
            _ => Message::Binary(json.into_bytes().into()),
        };
        let due = Instant::now() + self.sending_conditions().1;
        self.queue.push_back(Queued { due, message });
    }

    /// Sends every frame that is due (nothing while stalled).
    async fn send_due(&mut self) -> Result<(), ()> {
        let (stalled, _) = self.sending_conditions();
        if stalled {
            return Ok(());
        }
        let now = Instant::now();
        while self.queue.front().is_some_and(|q| q.due <= now) {
            if let Some(queued) = self.queue.pop_front() {
                self.ws.feed(queued.message).await.map_err(|_| ())?;
            }
        }
        self.ws.flush().await.map_err(|_| ())
    }

    /// Before a close or drop: sends what is due now; held or delayed frames are lost.
    async fn flush_all(&mut self) {
        let _ = self.send_due().await;
    }

    async fn close(&mut self, code: u16, reason: &str) -> ConnectionEnd {
        let reason = truncate_reason(reason);
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        let end = ConnectionEnd::ServerClose {
            code,
            reason: reason.to_owned(),
        };
        // Recorded before the client can see the close frame and dial again.
        record_end(&self.shared, self.id, end.clone());
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        tracing::debug!(connection = %self.id, code, reason, "closed");
        end
    }

    fn drop_now(&mut self) -> ConnectionEnd {
        // A zero linger makes the kernel send RST instead of FIN: no close frame, no goodbye.
        let _ = self.ws.get_ref().set_zero_linger();
        ConnectionEnd::Dropped
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
