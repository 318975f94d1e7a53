//! `LiveSession::connect()` against a bare transport connection, to the same in-process
//! `gemini-fake` over loopback on one current-thread runtime: dial, upgrade, `setup`, and
//! `setupComplete`. The session adds its core, its driver task and the first plan; it must not
//! add a wait (issue 8: every dial used to wait a timer set to "now", which rounds up to the
//! next millisecond). Both send the same `setup`; between samples the runtime is left to
//! finish closing the previous connection, untimed. `core_only` is the session's own work
//! without sockets. Compare the lines of one run:
//! `cargo bench -p agent-glue --bench connect`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::LiveSession;
use agent_glue::conduit::Action;
use divan::Bencher;
use gemini_fake::{FakeConfig, FakeServer};
use gemini_transport::wire::Modality;
use gemini_transport::{ConnectConfig, Connection, Endpoint, SecretString};
use resume_policy::Millis;
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

/// Outside the timed region: lets the runtime finish what the previous sample left (its
/// connection closing on both sides), so that no sample pays for the one before.
fn quiesce(runtime: &Runtime) {
    runtime.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(2)).await });
}

/// The bare client: `Connection::connect` and `setup`, with the very `setup` the session
/// sends (so that both lines ask the server for the same work: resumption, transcription).
#[divan::bench(sample_count = 200)]
fn bare_connection(bencher: Bencher<'_, '_>) {
    let (runtime, server, endpoint) = bed();
    let config = ConnectConfig::default();
    let mut core = LiveSession::builder(endpoint.clone(), server.config().setup_model())
        .modality(Modality::Text)
        .into_core(Millis(0), 1)
        .unwrap();
    let Some(Action::Open { setup, .. }) = core.poll_action() else {
        panic!("a fresh core opens a connection first");
    };
    bencher
        .with_inputs(|| quiesce(&runtime))
        .bench_local_values(|()| {
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
    bencher
        .with_inputs(|| quiesce(&runtime))
        .bench_local_values(|()| {
            runtime.block_on(async {
                LiveSession::builder(endpoint.clone(), model.clone())
                    .modality(Modality::Text)
                    .connect()
                    .await
                    .unwrap()
            })
        });
}

/// The session's own work on the way to `setupComplete`, without sockets: building the core,
/// its first plan and `setup`, and taking the setup as complete.
#[divan::bench(sample_count = 200)]
fn core_only(bencher: Bencher<'_, '_>) {
    let (_runtime, server, endpoint) = bed();
    let model = server.config().setup_model();
    bencher.bench_local(|| {
        let mut core = LiveSession::builder(endpoint.clone(), model.clone())
            .modality(Modality::Text)
            .into_core(Millis(0), 1)
            .unwrap();
        let Some(Action::Open { connection, setup }) = core.poll_action() else {
            panic!("a fresh core opens a connection first");
        };
        core.handle_setup_complete(Millis(1), connection);
        while core.poll_transmit().is_some() {}
        (core, setup)
    });
}
