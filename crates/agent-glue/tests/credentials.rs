//! Credentials per dial, over loopback against the fake server: an endpoint whose credential
//! source mints a token before every dial (an ephemeral token with `uses: 1` cannot open a
//! second connection: docs/protocol.md section 7.9) is asked once per connection, the first
//! and every reconnect, for a fresh value; a transient failure of the source is a failed dial
//! the session retries, a permanent one ends the session through the policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_glue::{Error, LiveSession, LiveSessionBuilder, SessionError, SessionEvent};
use common::{barrier, server, until};
use gemini_fake::{FakeServer, Family};
use gemini_transport::wire::Modality;
use gemini_transport::{CredentialError, CredentialSource, Endpoint, SecretString};
use resume_policy::{Backoff, DefaultPolicy, EditHandling};

/// What the source does on each call, in order (`Ok` after the script runs out).
#[derive(Clone, Copy, Debug)]
enum Mint {
    Ok,
    Transient,
    Permanent,
}

/// A source that follows `script` and records the tokens it handed out, in order.
fn scripted(script: Vec<Mint>) -> (CredentialSource, Arc<Mutex<Vec<String>>>) {
    let minted = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0usize));
    let record = Arc::clone(&minted);
    let source = CredentialSource::new(move || {
        let n = {
            let mut calls = calls.lock().unwrap();
            *calls += 1;
            *calls - 1
        };
        let step = script.get(n).copied().unwrap_or(Mint::Ok);
        let token = format!("auth_tokens/minted-{n}");
        if matches!(step, Mint::Ok) {
            record.lock().unwrap().push(token.clone());
        }
        async move {
            match step {
                Mint::Ok => Ok(SecretString::from(token)),
                Mint::Transient => Err(CredentialError::transient("the token backend is busy")),
                Mint::Permanent => Err(CredentialError::permanent("no token for this user")),
            }
        }
    });
    (source, minted)
}

/// A TEXT session on 2.5 whose endpoint mints its token with `source` before every dial,
/// with a short backoff (20 ms nominal).
fn builder(server: &FakeServer, source: CredentialSource) -> LiveSessionBuilder {
    let endpoint = Endpoint::ephemeral_tokens(source)
        .with_base_url(&server.url())
        .unwrap();
    let mut backoff = Backoff::default();
    backoff.base = Duration::from_millis(20);
    backoff.max = Duration::from_millis(200);
    LiveSession::builder(endpoint, server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .policy(Box::new(DefaultPolicy::new(
            backoff,
            EditHandling::default(),
        )))
}

#[tokio::test]
async fn every_dial_mints_a_fresh_token() {
    let server = server(Family::Gemini25, |c| c).await;
    let (source, minted) = scripted(Vec::new());
    let (session, mut events) = builder(&server, source).connect().await.unwrap();
    barrier(&session, &mut events, "one").await;
    for _ in 0..2 {
        server.faults().drop_connections();
        until(&mut events, "Reconnected", |e| {
            matches!(e, SessionEvent::Reconnected(_))
        })
        .await;
    }
    barrier(&session, &mut events, "two").await;
    let minted = minted.lock().unwrap().clone();
    // One call per connection the server saw, each with a token of its own.
    assert_eq!(minted.len(), server.connections().len(), "{minted:?}");
    assert_eq!(minted.len(), 3);
    assert_eq!(minted.iter().collect::<BTreeSet<_>>().len(), minted.len());
    // The reconnects resumed: the session went on as one.
    assert!(
        server.connections()[1..]
            .iter()
            .all(|c| c.resumed_from.is_some())
    );
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_a_permanent_one_ends_the_session() {
    let server = server(Family::Gemini25, |c| c).await;
    // First dial, then a reconnect whose token is late once, then one refused for good.
    let (source, minted) = scripted(vec![Mint::Ok, Mint::Transient, Mint::Ok, Mint::Permanent]);
    let (session, mut events) = builder(&server, source).connect().await.unwrap();
    barrier(&session, &mut events, "one").await;

    server.faults().drop_connections();
    let seen = until(&mut events, "Reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    match seen.last() {
        Some(SessionEvent::Reconnected(report)) => assert_eq!(report.attempts, 2),
        other => panic!("{other:?}"),
    }
    // The failed mint dialled nothing.
    assert_eq!(server.connections().len(), 2);

    server.faults().drop_connections();
    let seen = until(&mut events, "Closed", |e| {
        matches!(e, SessionEvent::Closed { .. })
    })
    .await;
    match seen.last() {
        Some(SessionEvent::Closed {
            error:
                Some(SessionError::Credential {
                    permanent: true, ..
                }),
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.connections().len(), 2);
    assert_eq!(minted.lock().unwrap().len(), 2);
    assert!(matches!(session.send_text("three"), Err(Error::Closed)));
}

#[tokio::test]
async fn a_first_dial_without_a_credential_fails_connect_with_its_cause() {
    let server = server(Family::Gemini25, |c| c).await;
    let (source, _) = scripted(vec![Mint::Permanent]);
    match builder(&server, source).connect().await {
        Err(Error::Session(SessionError::Credential {
            permanent: true,
            source,
        })) => {
            // The transport error, the source's failure, the application's own error.
            let cause = std::error::Error::source(&*source)
                .and_then(std::error::Error::source)
                .map(ToString::to_string);
            assert_eq!(cause.as_deref(), Some("no token for this user"));
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected without a credential"),
    }
    assert!(server.connections().is_empty());
}
