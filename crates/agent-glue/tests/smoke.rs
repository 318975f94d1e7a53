//! A session against the fake server: one turn, one tool call, contexts equal.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use gemini_fake::Family;
use resume_policy::DefaultPolicy;
use serde_json::json;

#[tokio::test]
async fn text_turn_and_tool_call_reach_the_server_once() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(
        &server,
        Box::new(DefaultPolicy::default()),
        vec![weather_tool()],
    )
    .await;

    barrier(&session, &mut events, "hello there").await;
    let (call_id, name) = weather_round(&session, &mut events, json!({"temp_c": 18})).await;
    assert_eq!(name, "get_weather");

    let expected = vec![
        "user: hello there".to_owned(),
        "model: echo: hello there".to_owned(),
        "user: what does get_weather say".to_owned(),
        format!("call {call_id} get_weather"),
        format!("response {call_id} get_weather {}", json!({"temp_c": 18})),
        "model: get_weather returned {\"temp_c\":18}".to_owned(),
    ];
    assert_eq!(s_entries(&server), expected);
    assert_eq!(l_entries(&session.chat_ctx()), expected);
    assert_eq!(server.latest_session().unwrap().generations(), 3);
    session.close().await.unwrap();
}
