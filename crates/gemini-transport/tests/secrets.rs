//! The API key and tokens never appear in `Debug`, `Display`, errors or tracing output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connection_support;

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use connection_support::{accept, await_client_close, bind, next_json, refuse, send_binary};
use gemini_transport::{
    ConnectConfig, Connection, CredentialError, CredentialSource, Endpoint, Error,
    wire::{ClientMessage, Setup},
};
use secrecy::SecretString;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tracing::{
    Event, Id, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Record},
};

const KEY: &str = "AIzaSyD-THIS-IS-THE-SECRET-KEY-0123456789";
const TOKEN: &str = "auth_tokens/SECRET-EPHEMERAL-TOKEN-abcdef";
const BEARER: &str = "ya29.SECRET-ACCESS-TOKEN-zyxw";
/// What a credential source mints before every dial.
const MINTED: &str = "auth_tokens/SECRET-MINTED-TOKEN-4242";
const SECRETS: [&str; 4] = [KEY, TOKEN, BEARER, MINTED];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks a secret: {text}");
        // The distinctive middle of each secret, in case it was cut or re-prefixed.
        assert!(!text.contains("SECRET"), "{what} leaks a secret: {text}");
    }
}

fn endpoints(base: Option<&str>) -> Vec<Endpoint> {
    let minted = CredentialSource::new(|| async { Ok(SecretString::from(MINTED)) });
    let all = vec![
        Endpoint::ephemeral_tokens(minted),
        Endpoint::api_key(SecretString::from(KEY)),
        Endpoint::ephemeral_token(SecretString::from(TOKEN)),
        Endpoint::vertex("us-central1", SecretString::from(BEARER))
            .unwrap()
            .with_user_project("p"),
    ];
    match base {
        Some(base) => all
            .into_iter()
            .map(|e| e.with_base_url(base).unwrap())
            .collect(),
        None => all,
    }
}

fn format_all(value: &(impl std::fmt::Debug + std::fmt::Display)) -> String {
    format!("{value:?} | {value:#?} | {value}")
}

#[test]
fn credential_source_failures_never_print_the_applications_error() {
    // The application's error may say anything (here: the token it could not use); this
    // crate keeps it as the source and never formats it.
    for error in [
        CredentialError::permanent(format!("backend refused {MINTED}")),
        CredentialError::transient(format!("backend timed out minting {MINTED}")),
    ] {
        let source = CredentialSource::new(|| async { Ok(SecretString::from(MINTED)) });
        assert_clean("CredentialSource", &format!("{source:?}"));
        let error = Error::Credential(error);
        assert_clean("Error::Credential", &format_all(&error));
    }
}

#[test]
fn endpoints_never_print_their_credential() {
    for endpoint in endpoints(None)
        .into_iter()
        .chain(endpoints(Some("ws://127.0.0.1:1/x")))
    {
        let text = format_all(&endpoint);
        assert!(
            text.contains("[REDACTED]") || text.contains("[minted per dial]"),
            "{text}"
        );
        assert_clean("Endpoint", &text);
        assert_clean("Endpoint::url", &endpoint.url());
    }
}

#[test]
fn proxy_credentials_never_print() {
    let proxy = gemini_transport::Proxy::parse("http://proxy-user:proxy-pass@proxy:3128").unwrap();
    let config = gemini_transport::ProxyConfig::Via(proxy.clone());
    for text in [format!("{proxy:?}"), format!("{config:?}")] {
        assert!(
            !text.contains("proxy-pass") && !text.contains("proxy-user"),
            "{text}"
        );
    }
    let refused = gemini_transport::Error::Proxy {
        proxy: proxy.authority(),
        status: Some(407),
        detail: "Proxy Authentication Required".to_owned(),
    };
    let text = format_all(&refused);
    assert!(!text.contains("proxy-pass"), "{text}");
}

/// Collects every span field and event field, as a log formatter would print them.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut text));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.text.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nevent {}", event.metadata().target());
        event.record(&mut Fields(&mut text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs connects that succeed and fail for every endpoint kind under a capturing subscriber;
/// formats every error and connection value; checks captured output and formatted values.
/// (The only test in this file that connects: tracing's per-callsite interest cache makes a
/// scoped subscriber unreliable while another thread runs the same callsites unobserved.)
#[test]
fn connects_errors_and_tracing_output_never_hold_a_secret() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut formatted = String::new();
    runtime.block_on(async {
        // Successful connect, setup, a message, a client close.
        let (listener, base) = bind().await;
        let server = tokio::spawn(async move {
            for _ in 0..SECRETS.len() {
                let (mut ws, _) = accept(&listener).await;
                let _ = next_json(&mut ws).await;
                send_binary(&mut ws, r#"{"setupComplete":{}}"#).await;
                let _ = await_client_close(&mut ws).await;
            }
        });
        for endpoint in endpoints(Some(&base)) {
            let mut connection = Connection::connect(&endpoint, &ConnectConfig::default())
                .await
                .unwrap();
            let _ = writeln!(formatted, "{connection:?}");
            let complete = connection
                .setup(&ClientMessage::Setup(Box::new(Setup::new("models/m"))))
                .await
                .unwrap();
            let _ = writeln!(formatted, "{complete:?}");
            let info = connection.close(1000, "done").await.unwrap();
            let _ = writeln!(formatted, "{info:?} {info}");
            let (sender, receiver) = connection.split();
            let _ = writeln!(formatted, "{sender:?} {receiver:?}");
        }
        server.await.unwrap();

        // A credential that cannot be a header value: the error names the field, not the value.
        let bad = Endpoint::api_key(SecretString::from(format!("{KEY}\n")));
        let error = Connection::connect(&bad, &ConnectConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidEndpoint {
                    field: "api_key",
                    ..
                }
            ),
            "{error:?}"
        );
        let _ = writeln!(formatted, "{}", format_all(&error));

        // Refused upgrade (401), refused TCP, connect timeout: every kind.
        for endpoint in endpoints(None) {
            let (listener, base) = bind().await;
            let refusing = tokio::spawn(async move {
                refuse(&listener, StatusCode::UNAUTHORIZED).await;
            });
            let error = Connection::connect(
                &endpoint.clone().with_base_url(&base).unwrap(),
                &ConnectConfig::default(),
            )
            .await
            .unwrap_err();
            let _ = writeln!(formatted, "{}", format_all(&error));
            refusing.await.unwrap();

            let (listener, base) = bind().await;
            drop(listener);
            let error = Connection::connect(
                &endpoint.clone().with_base_url(&base).unwrap(),
                &ConnectConfig::default(),
            )
            .await
            .unwrap_err();
            let _ = writeln!(formatted, "{}", format_all(&error));

            // A peer that accepts and never answers: the connect timeout elapses on paused
            // tokio time, not the wall clock.
            let (listener, base) = bind().await;
            let silent = tokio::spawn(async move {
                let (_tcp, _) = listener.accept().await.unwrap();
                std::future::pending::<()>().await;
            });
            tokio::time::pause();
            let error = Connection::connect(
                &endpoint.with_base_url(&base).unwrap(),
                &ConnectConfig::default().with_connect_timeout(Duration::from_millis(50)),
            )
            .await
            .unwrap_err();
            tokio::time::resume();
            let _ = writeln!(formatted, "{}", format_all(&error));
            silent.abort();
        }
    });
    drop(_guard);
    assert_clean("formatted values", &formatted);
    assert!(formatted.contains("401"), "{formatted}");
    assert!(formatted.contains("timed out"), "{formatted}");
    let traced = capture.text.lock().unwrap().clone();
    // The capture really saw the connection attempts, with kind and authority...
    for kind in ["api_key", "ephemeral_token", "vertex_ai"] {
        assert!(traced.contains(&format!("kind={kind}")), "{traced}");
    }
    assert!(traced.contains("span gemini_connect"), "{traced}");
    assert!(traced.contains("authority=127.0.0.1:"), "{traced}");
    assert!(traced.contains("connect failed"), "{traced}");
    // ...and no secret.
    assert_clean("tracing output", &traced);
}
