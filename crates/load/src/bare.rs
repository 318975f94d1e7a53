//! Sessions on tokio-tungstenite directly: the least a competent client does. The session's own
//! `setup`, its 16 KiB read buffer (one line of configuration), the same audio frames (`ClientMessage::write_audio_json` into a reused buffer, one allocation
//! for the frame), `TCP_NODELAY` as `gemini-transport` sets it; the socket is split and a
//! reader task decodes every server frame (`ServerMessage::from_json`: JSON and base64, what
//! any client that plays the audio must do) and counts the model audio.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use gemini_transport::wire::{ClientMessage, ServerMessage, ServerPayload};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use std::time::Duration;

use gemini_transport::Endpoint;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::audio::{INPUT_RATE, microphone_chunk, model_audio_chunks};
use crate::run::{DRAIN, Plan, SessionCtx, SessionOutcome};
use crate::{Kind, Pace};

type Socket = WebSocketStream<TcpStream>;

/// The read buffer a competent bare client sets, in one line: the session's own (16 KiB;
/// tungstenite's default is 128 KiB, zero-filled before every read).
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(gemini_transport::ConnectConfig::default().read_buffer_size)
}

/// Dials, upgrades, sends `setup` and waits for `setupComplete`.
async fn connect(ctx: &SessionCtx) -> Result<Socket, String> {
    let _dial = ctx.dials.acquire().await.map_err(|e| e.to_string())?;
    dial(&ctx.endpoint, &ctx.setup).await
}

/// One timed connect (to `setupComplete`), then an untimed close.
pub(crate) async fn connect_once(endpoint: &Endpoint, setup: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut ws = dial(endpoint, setup).await?;
    let took = started.elapsed();
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
    Ok(took)
}

async fn dial(endpoint: &Endpoint, setup: &str) -> Result<Socket, String> {
    let tcp = TcpStream::connect(endpoint.authority())
        .await
        .map_err(|e| format!("dial: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    // The API key in its header, as the service requires of any client.
    let mut request = endpoint
        .url()
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    request.headers_mut().insert(
        "x-goog-api-key",
        HeaderValue::from_static(crate::run::API_KEY),
    );
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(websocket_config()))
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
    ws.send(Message::Text(setup.into()))
        .await
        .map_err(|e| format!("setup: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                if is_setup_complete(&bytes) {
                    return Ok(ws);
                }
            }
            Some(Ok(Message::Text(text))) => {
                if is_setup_complete(text.as_bytes()) {
                    return Ok(ws);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("before setupComplete: {e}")),
            None => return Err("closed before setupComplete".to_owned()),
        }
    }
}

fn is_setup_complete(frame: &[u8]) -> bool {
    ServerMessage::from_json(frame)
        .is_ok_and(|m| matches!(m.payload, Some(ServerPayload::SetupComplete(_))))
}

/// Reads until the connection ends; returns the model audio chunks received.
fn spawn_reader(mut stream: SplitStream<Socket>) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut received = 0;
        while let Some(Ok(frame)) = stream.next().await {
            let message = match &frame {
                Message::Binary(bytes) => ServerMessage::from_json(bytes),
                Message::Text(text) => ServerMessage::from_json(text.as_bytes()),
                Message::Close(_) => break,
                _ => continue,
            };
            if let Ok(message) = message {
                received += model_audio_chunks(&message);
            }
        }
        received
    })
}

/// The sending half and its reused encode buffer.
struct Sender {
    sink: SplitSink<Socket, Message>,
    buf: Vec<u8>,
    pcm: Vec<u8>,
}

impl Sender {
    /// Encodes one chunk and queues its frame, without flushing.
    async fn feed(&mut self) -> Result<(), String> {
        ClientMessage::write_audio_json(&mut self.buf, &self.pcm, INPUT_RATE);
        let text = std::str::from_utf8(&self.buf).map_err(|e| e.to_string())?;
        self.sink
            .feed(Message::Text(Utf8Bytes::from(text)))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.sink.flush().await.map_err(|e| format!("flush: {e}"))
    }
}

/// One streaming session.
pub(crate) async fn session(mut ctx: SessionCtx) -> SessionOutcome {
    let ws = match connect(&ctx).await {
        Ok(ws) => {
            let _ = ctx.ready.send(Ok(()));
            ws
        }
        Err(error) => {
            let _ = ctx.ready.send(Err(error.clone()));
            return SessionOutcome::failed(error);
        }
    };
    let (sink, stream) = ws.split();
    let reader = spawn_reader(stream);
    let mut sender = Sender {
        sink,
        buf: Vec::with_capacity(1024),
        pcm: microphone_chunk(),
    };
    let mut outcome = SessionOutcome {
        connected: true,
        ..SessionOutcome::default()
    };
    let Some(plan) = ctx.plan().await else {
        reader.abort();
        return outcome;
    };
    let coalesce = ctx.args.kind == Kind::BareCoalesce;
    let streamed = match ctx.args.pace {
        Pace::Realtime => realtime(&ctx, plan, coalesce, &mut sender, &mut outcome).await,
        Pace::Afap => afap(&ctx, plan, coalesce, &mut sender, &mut outcome).await,
    };
    if let Err(error) = streamed {
        outcome.error = Some(error);
    }
    // The reader goes on while the server's stream runs out; then the close handshake ends it.
    sleep_until(Instant::now() + DRAIN).await;
    if let Err(e) = sender.sink.send(Message::Close(None)).await {
        outcome.error.get_or_insert(format!("close: {e}"));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), reader).await {
        Ok(Ok(received)) => outcome.received = received,
        Ok(Err(e)) => {
            outcome.error.get_or_insert(format!("reader: {e}"));
        }
        Err(_) => {
            outcome.error.get_or_insert("no close reply".to_owned());
        }
    }
    outcome
}

/// One chunk every 20 ms ([`Plan::microphone`], as for `live`). `bare-each` sends and
/// flushes each; `bare-coalesce` feeds every tick already due, then flushes once.
async fn realtime(
    ctx: &SessionCtx,
    plan: Plan,
    coalesce: bool,
    sender: &mut Sender,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let end = plan.end();
    let (mut ticks, due) = plan.microphone(ctx.index, ctx.args.sessions);
    outcome.due = due;
    loop {
        if !outcome.tick_in_run(ticks.tick().await, end) {
            return Ok(());
        }
        sender.feed().await?;
        outcome.sent += 1;
        if coalesce {
            while let Some(at) = ticks.tick().now_or_never() {
                if !outcome.tick_in_run(at, end) {
                    return sender.flush().await;
                }
                sender.feed().await?;
                outcome.sent += 1;
            }
        }
        sender.flush().await?;
    }
}

/// As fast as the socket takes them: `bare-each` sends and flushes each chunk, `bare-coalesce`
/// feeds `batch` chunks and flushes once.
async fn afap(
    ctx: &SessionCtx,
    plan: Plan,
    coalesce: bool,
    sender: &mut Sender,
    outcome: &mut SessionOutcome,
) -> Result<(), String> {
    let per_flush = if coalesce { ctx.args.batch } else { 1 };
    sleep_until(plan.start).await;
    while Instant::now() < plan.end() {
        for _ in 0..per_flush {
            sender.feed().await?;
        }
        sender.flush().await?;
        outcome.sent += per_flush as u64;
        // As the `live` producer does after each batch: the reader task gets its turn, so
        // every kind reads the model audio it is sent (a client that starves its own reader
        // receives less, which leaves the shared cores to its sender).
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// One idle session: connected, its reader task waiting for frames, until the run stops.
pub(crate) async fn idle(mut ctx: SessionCtx) -> SessionOutcome {
    match connect(&ctx).await {
        Ok(ws) => {
            let _ = ctx.ready.send(Ok(()));
            let (mut sink, stream) = ws.split();
            let reader = spawn_reader(stream);
            let _ = ctx.plan().await;
            let _ = sink.send(Message::Close(None)).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
            SessionOutcome {
                connected: true,
                ..SessionOutcome::default()
            }
        }
        Err(error) => {
            let _ = ctx.ready.send(Err(error.clone()));
            SessionOutcome::failed(error)
        }
    }
}
