//! A scripted WebSocket server for the shell's bound tests: plain tokio-tungstenite on
//! loopback, so the server misbehaves exactly as a test tells it to.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_glue::{SessionEvent, SessionEvents};
use futures_util::{SinkExt, StreamExt};
use gemini_transport::{Endpoint, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = WebSocketStream<TcpStream>;

pub const MODEL: &str = "models/gemini-2.5-flash-native-audio-preview-12-2025";

/// 20 ms of 16 kHz PCM16.
pub const CHUNK: usize = 640;

/// A server that runs `script` on every connection after answering its `setup`; the setup
/// frames it received are kept (the text of each).
pub struct Scripted {
    pub url: String,
    pub setups: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Scripted {
    pub async fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(usize, Ws) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let setups = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (s, c) = (Arc::clone(&setups), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                let (script, setups, connections) =
                    (Arc::clone(&script), Arc::clone(&s), Arc::clone(&c));
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let Some(Ok(Message::Text(setup))) = ws.next().await else {
                        return;
                    };
                    setups.lock().await.push(setup.to_string());
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    if ws
                        .send(Message::text(r#"{"setupComplete":{}}"#))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    script(n, ws).await;
                });
            }
        });
        Self {
            url,
            setups,
            connections,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::api_key(SecretString::from("test-key"))
            .with_base_url(&self.url)
            .unwrap()
    }
}

/// Holds `ws` without reading or writing until the test ends (a peer that stopped reading).
pub async fn hold(ws: Ws) {
    let _ws = ws;
    std::future::pending::<()>().await;
}

/// Waits until `done` holds, on paused tokio time (a current-thread runtime with its clock
/// paused). Each `sleep` of the loop ends only when the runtime has nothing left to run, no
/// task ready and no socket ready, and the clock jumps to the next timer: so `done` is
/// checked each time everything in flight has settled, never by the wall clock. `limit` is
/// virtual time, a failure bound only: what is awaited here needs none to pass.
pub async fn idle_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads (and drops) everything the client sends until it closes.
pub async fn drain(mut ws: Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// The process's resident memory, in bytes (Linux).
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Counts the events read so far that matter here.
#[derive(Debug, Default)]
pub struct Seen {
    pub lost: usize,
    pub reconnected: usize,
    pub dropped: Duration,
}

pub fn tally(events: &mut SessionEvents, seen: &mut Seen) {
    while let Some(event) = events.try_recv() {
        match event {
            SessionEvent::Reconnecting {
                reason: agent_glue::ReconnectReason::ConnectionLost { code: 1006, .. },
            } => seen.lost += 1,
            SessionEvent::Reconnected(_) => seen.reconnected += 1,
            SessionEvent::AudioDropped { duration } => seen.dropped += duration,
            _ => {}
        }
    }
}

/// One model turn of `chunks` audio frames (24 kHz, 40 ms each), each frame followed by a
/// usage report, then `turnComplete`.
pub async fn talk(ws: &mut Ws, chunks: usize) {
    let pcm = vec![0u8; 1_920];
    let data = base64_standard(&pcm);
    let audio = format!(
        r#"{{"serverContent":{{"modelTurn":{{"parts":[{{"inlineData":{{"mimeType":"audio/pcm;rate=24000","data":"{data}"}}}}]}}}}}}"#
    );
    for n in 0..chunks {
        if ws.feed(Message::text(audio.clone())).await.is_err() {
            return;
        }
        let usage = format!(r#"{{"usageMetadata":{{"totalTokenCount":{n}}}}}"#);
        if ws.feed(Message::text(usage)).await.is_err() {
            return;
        }
    }
    let _ = ws
        .send(Message::text(
            r#"{"serverContent":{"generationComplete":true,"turnComplete":true}}"#,
        ))
        .await;
}

pub fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
