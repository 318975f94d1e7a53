//! `LiveSession::connect()` against a bare transport connection, to the same in-process
//! `gemini-fake` over loopback on one current-thread runtime: dial, upgrade, `setup`, and
//! `setupComplete`. The session adds its core, its driver task and the first plan; it must not
//! add a wait (issue 8: every dial used to wait a timer set to "now", which rounds up to the
//! next millisecond). Compare the two lines of one run:
//! `cargo bench -p agent-glue --bench connect`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agent_glue::LiveSession;
use divan::Bencher;
use gemini_fake::{FakeConfig, FakeServer};
use gemini_transport::wire::{ClientMessage, Modality, Setup};
use gemini_transport::{ConnectConfig, Connection, Endpoint, SecretString};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

fn bed() -> (Runtime, FakeServer, Endpoint) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(FakeServer::start(FakeConfig::new()))
        .unwrap();
    let endpoint = Endpoint::api_key(SecretString::from("bench"))
        .with_base_url(&server.url())
        .unwrap();
    (runtime, server, endpoint)
}

/// The bare client: `Connection::connect` and `setup`.
#[divan::bench(sample_count = 200)]
fn bare_connection(bencher: Bencher<'_, '_>) {
    let (runtime, server, endpoint) = bed();
    let config = ConnectConfig::default();
    let setup = ClientMessage::Setup(Box::new(
        Setup::new(server.config().setup_model()).with_response_modality(Modality::Text),
    ));
    bencher.bench_local(|| {
        runtime.block_on(async {
            let mut connection = Connection::connect(&endpoint, &config).await.unwrap();
            connection.setup(&setup).await.unwrap();
            connection
        })
    });
}

/// `LiveSession::builder(…).connect()`: returns once the first setup is complete.
#[divan::bench(sample_count = 200)]
fn live_session(bencher: Bencher<'_, '_>) {
    let (runtime, server, endpoint) = bed();
    let model = server.config().setup_model();
    bencher.bench_local(|| {
        runtime.block_on(async {
            LiveSession::builder(endpoint.clone(), model.clone())
                .modality(Modality::Text)
                .connect()
                .await
                .unwrap()
        })
    });
}
