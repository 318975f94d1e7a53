//! The async shell around one WebSocket: upgrade checks and frame IO. The outgoing queue (stall
//! and delay faults), connection lifetime and test-side controls are `link.rs`'s, shared with the
//! simulator.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::FrameKind;
use crate::conversation::Step;
use crate::endpoint::{self, Route};
use crate::link::{self, Action, DataFlow, LinkCore, Outgoing};
use crate::pong::{LatePongs, OnTcp};
use crate::server::until_shutdown;
use crate::session::ConnectionEnd;
use crate::shared::Shared;

/// How long the server waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the upgrade request said.
#[derive(Debug)]
struct Upgrade {
    route: Option<Route>,
    credentials: Result<(), (u16, &'static str)>,
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
    if let Some(status) = link::refused_upgrade(shared) {
        return Err((status, "The service is currently unavailable."));
    }
    let route = endpoint::route(request.uri().path())
        .filter(|route| route.vertex == shared.config.vertex)
        .ok_or((404, "Not Found"))?;
    let headers = request.headers();
    let found = endpoint::credentials(request.uri().query(), |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    });
    upgrade.credentials = link::check_credentials(shared, found.iter().map(String::as_str));
    upgrade.route = Some(route);
    Ok(())
}

/// Serves one accepted connection (TCP, or TLS over TCP) to its end.
// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + OnTcp + Unpin,
{
    let flow = Arc::new(DataFlow::default());
    let stream = LatePongs::new(stream, Arc::clone(&shared), Arc::clone(&flow));
    let mut upgrade = Upgrade {
        route: None,
        credentials: Ok(()),
    };
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        check_upgrade(&shared, request, &mut upgrade)
            .map(|()| response)
            .map_err(|(status, text)| refuse(status, text))
    };
    // tungstenite zero-fills `read_buffer_size` bytes before every read (128 KiB by default):
    // with a thousand connections that memset was most of the fake's CPU. Client frames are
    // small; 8 KiB holds several.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 << 10);
    let mut ws =
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
        {
            Ok(ws) => ws,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
    ws.get_mut().start_framing();
    let version = upgrade.route.map(|r| r.version).unwrap_or_default();
    let (core, first) = LinkCore::open(Arc::clone(&shared), version, upgrade.credentials, flow);
    let mut link = Link { core, ws };
    let end = link.run(first).await;
    link.core.finish(&end);
}

/// One live WebSocket and its connection core.
struct Link<S> {
    core: LinkCore,
    ws: WebSocketStream<LatePongs<S>>,
}

impl<S> Link<S>
where
    S: AsyncRead + AsyncWrite + OnTcp + Unpin,
{
    /// Executes `action`, then serves until the connection ends.
    async fn run(&mut self, mut action: Action) -> ConnectionEnd {
        let mut shutdown = self.core.shared().shutdown.subscribe();
        loop {
            match action {
                Action::Continue => {
                    if self.send_due().await.is_err() {
                        return ConnectionEnd::Vanished;
                    }
                }
                Action::Close(code, reason) => {
                    self.flush_all().await;
                    return self.close(code, reason).await;
                }
                Action::Drop => {
                    self.flush_all().await;
                    return self.drop_now();
                }
            }
            let wake = self.core.next_wake();
            action = tokio::select! {
                incoming = self.ws.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.core.on_frame(text.as_bytes(), false),
                    Some(Ok(Message::Binary(bytes))) => self.core.on_frame(&bytes, true),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                        let end = ConnectionEnd::ClientClose { code, reason };
                        // Ended now, before the reply lets the client dial again: overlaps
                        // are counted against this record.
                        self.core.record_end(&end);
                        // Let tungstenite finish the closing handshake.
                        let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.next()).await;
                        return end;
                    }
                    Some(Ok(_)) => Action::Continue,
                    Some(Err(_)) | None => return ConnectionEnd::Vanished,
                },
                Some(control) = self.core.controls().recv() => self.core.on_control(control),
                () = sleep_opt(wake) => self.core.on_timers(),
                () = until_shutdown(&mut shutdown) => {
                    self.core.after(Step::Close(1001, "server shutting down".to_owned()))
                }
            };
        }
    }

    /// Sends every frame that is due (nothing while stalled).
    async fn send_due(&mut self) -> Result<(), ()> {
        let kind = self.core.shared().config.frame_kind;
        for frame in self.core.take_due() {
            let message = match frame {
                Outgoing::Message(message) => {
                    let json = message.to_json();
                    match kind {
                        FrameKind::Text => Message::Text(json.into()),
                        _ => Message::Binary(json.into_bytes().into()),
                    }
                }
                Outgoing::Encoded(payload) => match kind {
                    FrameKind::Text => {
                        Message::Text(String::from_utf8_lossy(&payload).into_owned().into())
                    }
                    _ => Message::Binary(payload),
                },
                Outgoing::Raw {
                    payload,
                    binary: true,
                } => Message::Binary(payload.into()),
                Outgoing::Raw {
                    payload,
                    binary: false,
                } => Message::Text(String::from_utf8_lossy(&payload).into_owned().into()),
            };
            self.ws.feed(message).await.map_err(|_| ())?;
        }
        self.ws.flush().await.map_err(|_| ())
    }

    /// Before a close or drop: sends what is due now; held or delayed frames are lost.
    async fn flush_all(&mut self) {
        let _ = self.send_due().await;
    }

    async fn close(&mut self, code: u16, reason: String) -> ConnectionEnd {
        // Recorded before the client can see the close frame and dial again.
        let end = self.core.record_server_close(code, &reason);
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.clone().into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        tracing::debug!(connection = %self.core.id(), code, reason, "closed");
        end
    }

    fn drop_now(&mut self) -> ConnectionEnd {
        // A zero linger makes the kernel send RST instead of FIN: no close frame, no goodbye.
        let _ = self.ws.get_ref().tcp().set_zero_linger();
        ConnectionEnd::Dropped
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
