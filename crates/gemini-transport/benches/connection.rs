//! Connection benchmarks over loopback, against an in-process tokio-tungstenite server that
//! answers `setup` and drains everything else:
//!
//! - `connect_to_setup_complete`: TCP + upgrade + `setup` → `setupComplete` (the reconnect path).
//! - `audio_chunks`: 50 chunks of 20 ms 16 kHz PCM (640 bytes), either each sent and flushed on
//!   its own, or fed and flushed once (feed many, flush once).
//!
//! Wall-clock on a current-thread runtime, client and server sharing it; compare runs on one
//! machine, not across machines. Run with `cargo bench -p gemini-transport --bench connection`.
// Benchmarks run against a known-good local server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, counter::ItemsCount};
use futures_util::{SinkExt, StreamExt};
use gemini_transport::{
    ConnectConfig, Connection, Endpoint, SecretString,
    wire::{ClientMessage, Setup},
};
use tokio::{net::TcpListener, runtime::Runtime};
use tokio_tungstenite::tungstenite::Message;

const CHUNKS: usize = 50;

fn main() {
    divan::main();
}

/// A runtime and a loopback server serving any number of connections.
fn bed() -> (Runtime, Endpoint) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("ws://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(frame)) = ws.next().await {
                        if let Message::Text(text) = &frame {
                            if text.starts_with("{\"setup\"") {
                                let reply = br#"{"setupComplete":{}}"#.to_vec();
                                if ws.send(Message::Binary(reply.into())).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        base
    });
    let endpoint = Endpoint::api_key(SecretString::from("bench"))
        .with_base_url(&base)
        .unwrap();
    (runtime, endpoint)
}

fn setup() -> ClientMessage {
    ClientMessage::Setup(Box::new(Setup::new("models/bench")))
}

#[divan::bench(sample_count = 200)]
fn connect_to_setup_complete(bencher: Bencher<'_, '_>) {
    let (runtime, endpoint) = bed();
    let config = ConnectConfig::default();
    let setup = setup();
    bencher.bench_local(|| {
        runtime.block_on(async {
            let mut connection = Connection::connect(&endpoint, &config).await.unwrap();
            connection.setup(&setup).await.unwrap();
            connection
        })
    });
}

#[divan::bench(args = ["flush_each", "flush_once"])]
fn audio_chunks(bencher: Bencher<'_, '_>, mode: &str) {
    let (runtime, endpoint) = bed();
    let connection = runtime.block_on(async {
        let mut connection = Connection::connect(&endpoint, &ConnectConfig::default())
            .await
            .unwrap();
        connection.setup(&setup()).await.unwrap();
        connection
    });
    let (mut sender, _receiver) = connection.split();
    let pcm = vec![7u8; 640];
    bencher.counter(ItemsCount::new(CHUNKS)).bench_local(|| {
        runtime.block_on(async {
            if mode == "flush_each" {
                for _ in 0..CHUNKS {
                    sender.send_audio(&pcm, 16_000).await.unwrap();
                }
            } else {
                for _ in 0..CHUNKS {
                    sender.feed_audio(&pcm, 16_000).await.unwrap();
                }
                sender.flush().await.unwrap();
            }
        });
    });
}
