//! An endpoint with a credential source: the source is called once before every dial and the
//! credential it returns is the one on the wire (a fresh ephemeral token per connection); a
//! failure of the source is a dial failure with a typed error, classified by permanence, and
//! nothing is dialled.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connection_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use connection_support::{accept, bind};
use gemini_transport::{
    CloseClass, ConnectConfig, Connection, CredentialError, CredentialSource, Endpoint, Error,
};
use secrecy::SecretString;

/// A source that mints `auth_tokens/minted-{n}` on its n-th call (from 0) and counts calls.
fn counting() -> (CredentialSource, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let source = CredentialSource::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok(SecretString::from(format!("auth_tokens/minted-{n}"))) }
    });
    (source, calls)
}

#[tokio::test]
async fn every_dial_carries_a_freshly_minted_token() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (_ws, captured) = accept(&listener).await;
            seen.push(captured.header("authorization").map(str::to_owned));
        }
        seen
    });
    let (source, calls) = counting();
    let endpoint = Endpoint::ephemeral_tokens(source)
        .with_base_url(&base)
        .unwrap();
    for dial in 1..=3 {
        let connection = Connection::connect(&endpoint, &ConnectConfig::default())
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), dial, "one call per dial");
        drop(connection);
    }
    let seen = server.await.unwrap();
    assert_eq!(
        seen,
        (0..3)
            .map(|n| Some(format!("Token auth_tokens/minted-{n}")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_source_replaces_the_credential_of_any_endpoint_kind() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (_ws, captured) = accept(&listener).await;
        captured.header("authorization").map(str::to_owned)
    });
    let source = CredentialSource::new(|| async { Ok(SecretString::from("ya29.refreshed")) });
    let endpoint = Endpoint::vertex("us-central1", SecretString::from("ya29.expired"))
        .unwrap()
        .with_credential_source(source)
        .with_base_url(&base)
        .unwrap();
    let _connection = Connection::connect(&endpoint, &ConnectConfig::default())
        .await
        .unwrap();
    assert_eq!(
        server.await.unwrap().as_deref(),
        Some("Bearer ya29.refreshed")
    );
}

#[tokio::test]
async fn a_failing_source_fails_the_dial_by_its_permanence_and_dials_nothing() {
    for permanent in [false, true] {
        // A port nobody listens on: a dial would fail with `Error::Connect`.
        let (listener, base) = bind().await;
        drop(listener);
        let source = CredentialSource::new(move || async move {
            let cause = std::io::Error::other("the token backend said no");
            Err(if permanent {
                CredentialError::permanent(cause)
            } else {
                CredentialError::transient(cause)
            })
        });
        let endpoint = Endpoint::ephemeral_tokens(source)
            .with_base_url(&base)
            .unwrap();
        let error = Connection::connect(&endpoint, &ConnectConfig::default())
            .await
            .unwrap_err();
        match &error {
            Error::Credential(e) => assert_eq!(e.is_permanent(), permanent),
            other => panic!("not a credential error: {other:?}"),
        }
        let expected = if permanent {
            CloseClass::AuthOrQuota
        } else {
            CloseClass::Transient
        };
        assert_eq!(error.class(), expected);
        assert!(error.ends_connection());
        // The application's own error is the source, never part of the message.
        let cause = std::error::Error::source(&error)
            .and_then(std::error::Error::source)
            .map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("the token backend said no"));
        assert!(!error.to_string().contains("backend"), "{error}");
        assert!(!format!("{error:?}").contains("backend"), "{error:?}");
    }
}
