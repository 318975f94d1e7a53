//! For each endpoint kind: the request path, query and headers that reach a loopback server,
//! and the exact setup frame; plus the real-service URLs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connection_support;

use connection_support::{accept, bind, next_json, send_binary};
use gemini_transport::{
    API_CLIENT, ApiVersion, ConnectConfig, Connection, Endpoint, EndpointKind, vertex_model_name,
    wire::{ClientMessage, ServerPayload, Setup},
};
use secrecy::SecretString;
use serde_json::json;

fn setup(model: &str) -> ClientMessage {
    ClientMessage::Setup(Box::new(Setup::new(model)))
}

/// Connects `endpoint` to a loopback server, runs setup, and returns what the server saw.
async fn round_trip(
    endpoint: Endpoint,
    model: &str,
) -> (connection_support::Captured, serde_json::Value) {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (mut ws, captured) = accept(&listener).await;
        let frame = next_json(&mut ws).await;
        send_binary(&mut ws, r#"{"setupComplete":{}}"#).await;
        (captured, frame)
    });
    let endpoint = endpoint.with_base_url(&base).unwrap();
    let mut connection = Connection::connect(&endpoint, &ConnectConfig::default())
        .await
        .unwrap();
    let complete = connection.setup(&setup(model)).await.unwrap();
    assert!(matches!(
        complete.payload,
        Some(ServerPayload::SetupComplete(_))
    ));
    server.await.unwrap()
}

fn standard_headers_present(captured: &connection_support::Captured) {
    assert_eq!(captured.header("upgrade"), Some("websocket"));
    assert_eq!(captured.header("sec-websocket-version"), Some("13"));
    assert_eq!(captured.header("x-goog-api-client"), Some(API_CLIENT));
    assert!(API_CLIENT.starts_with("gemini-live-rs/"));
}

#[tokio::test]
async fn api_key_goes_in_x_goog_api_key() {
    let endpoint = Endpoint::api_key(SecretString::from("key-abc"));
    let (captured, frame) = round_trip(endpoint, "models/gemini-3.8-live").await;
    assert_eq!(
        captured.path,
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    );
    assert_eq!(captured.query, None);
    assert_eq!(captured.header("x-goog-api-key"), Some("key-abc"));
    assert_eq!(captured.header("authorization"), None);
    assert_eq!(captured.header("x-goog-user-project"), None);
    standard_headers_present(&captured);
    assert_eq!(frame, json!({"setup": {"model": "models/gemini-3.8-live"}}));
}

#[tokio::test]
async fn api_version_changes_the_path() {
    let endpoint =
        Endpoint::api_key(SecretString::from("key-abc")).with_api_version(ApiVersion::V1alpha);
    let (captured, _) = round_trip(endpoint, "models/m").await;
    assert_eq!(
        captured.path,
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
    );
}

#[tokio::test]
async fn ephemeral_token_goes_in_authorization_token() {
    let endpoint = Endpoint::ephemeral_token(SecretString::from("auth_tokens/eph-1"));
    assert_eq!(endpoint.kind(), EndpointKind::EphemeralToken);
    let (captured, frame) = round_trip(endpoint, "models/gemini-3.8-live").await;
    assert_eq!(
        captured.path,
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    );
    assert_eq!(captured.query, None);
    assert_eq!(
        captured.header("authorization"),
        Some("Token auth_tokens/eph-1")
    );
    assert_eq!(captured.header("x-goog-api-key"), None);
    standard_headers_present(&captured);
    assert_eq!(frame, json!({"setup": {"model": "models/gemini-3.8-live"}}));
}

#[tokio::test]
async fn vertex_sends_bearer_and_user_project() {
    let model = vertex_model_name(
        "proj-7",
        "us-central1",
        "gemini-live-2.5-flash-native-audio",
    );
    let endpoint = Endpoint::vertex("us-central1", SecretString::from("ya29.access"))
        .unwrap()
        .with_user_project("proj-7");
    let (captured, frame) = round_trip(endpoint, &model).await;
    assert_eq!(
        captured.path,
        "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    );
    assert_eq!(captured.query, None);
    assert_eq!(captured.header("authorization"), Some("Bearer ya29.access"));
    assert_eq!(captured.header("x-goog-user-project"), Some("proj-7"));
    assert_eq!(captured.header("x-goog-api-key"), None);
    standard_headers_present(&captured);
    assert_eq!(
        frame,
        json!({"setup": {"model": "projects/proj-7/locations/us-central1/publishers/google/models/gemini-live-2.5-flash-native-audio"}})
    );
}

#[tokio::test]
async fn base_url_prefix_is_kept_before_the_method_path() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move { accept(&listener).await.1 });
    let endpoint = Endpoint::api_key(SecretString::from("k"))
        .with_base_url(&format!("{base}/proxy/"))
        .unwrap();
    let _connection = Connection::connect(&endpoint, &ConnectConfig::default())
        .await
        .unwrap();
    assert_eq!(
        server.await.unwrap().path,
        "/proxy/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    );
}

#[test]
fn real_service_urls() {
    let key = || SecretString::from("k");
    assert_eq!(
        Endpoint::api_key(key()).url(),
        "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    );
    assert_eq!(
        Endpoint::api_key(key())
            .with_api_version(ApiVersion::V1)
            .url(),
        "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
    );
    assert_eq!(
        Endpoint::api_key(key())
            .with_api_version(ApiVersion::V1alpha)
            .url(),
        "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
    );
    assert_eq!(
        Endpoint::ephemeral_token(key()).url(),
        "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    );
    assert_eq!(
        Endpoint::vertex("europe-west4", key()).unwrap().url(),
        "wss://europe-west4-aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    );
    assert_eq!(
        Endpoint::vertex("global", key()).unwrap().url(),
        "wss://aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    );
    let vertex = Endpoint::vertex("global", key()).unwrap();
    assert!(vertex.uses_tls());
    assert_eq!(vertex.authority(), "aiplatform.googleapis.com");
    assert_eq!(
        vertex_model_name("p", "global", "gemini-live-2.5-flash-native-audio"),
        "projects/p/locations/global/publishers/google/models/gemini-live-2.5-flash-native-audio"
    );
}
