//! A session over `wss://`: the fake server with a self-signed certificate, the session
//! trusting it. The transport's own socket type carries TLS (boxed) as it carries plain TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use agent_glue::{LiveSession, SessionEvent};
use common::{until, weather_tool};
use gemini_fake::{FakeConfig, FakeServer, TlsIdentity};
use gemini_transport::wire::Modality;
use gemini_transport::{ConnectConfig, Endpoint, SecretString};

#[tokio::test]
async fn a_session_over_wss_answers_a_turn() {
    let identity = TlsIdentity::self_signed().expect("a certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            identity.cert_der().to_vec(),
        ))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = FakeServer::start(FakeConfig::new().with_tls(identity))
        .await
        .expect("fake server starts");
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url(&server.url())
        .unwrap();
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .tools(vec![weather_tool()])
        .connect_config(ConnectConfig::default().with_tls(Arc::new(tls)))
        .connect()
        .await
        .expect("connects over TLS");
    session.send_text("over tls").unwrap();
    let seen = until(&mut events, "the answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    let text: String = seen
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "echo: over tls");
    session.close().await.unwrap();
}
