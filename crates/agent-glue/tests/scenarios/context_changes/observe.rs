//! What the context-change scenarios observe beyond the shared checks: the frames that
//! mention an item, the setup fields, and closes for a protocol violation.

use agent_glue::LiveSession;
use ctx_model::{ChatContext, Item};
use gemini_fake::{ConnectionEnd, ConnectionRecord, FakeServer};
use serde_json::Value;

use crate::runner::Outcome;

/// `L` with `items` appended.
pub(super) fn appended(
    session: &LiveSession,
    items: Vec<Item>,
) -> Result<(ChatContext, u64), String> {
    let (version, mut ctx) = session.snapshot();
    ctx.extend(items).map_err(|e| e.to_string())?;
    Ok((ctx, version))
}

/// The frames of `conn` (after its setup) whose JSON mentions `needle`.
pub(super) fn frames_mentioning(conn: &ConnectionRecord, needle: &str) -> Vec<Value> {
    conn.frames
        .iter()
        .skip(1)
        .filter(|f| f.raw.contains(needle))
        .map(|f| f.json())
        .collect()
}

/// Every frame of every connection that mentions `needle`.
pub(super) fn all_frames_mentioning(server: &FakeServer, needle: &str) -> Vec<Value> {
    server
        .connections()
        .iter()
        .flat_map(|c| frames_mentioning(c, needle))
        .collect()
}

/// The setup frame of `conn`, as JSON.
pub(super) fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames.first().map(|f| f.json()).unwrap_or(Value::Null)
}

/// The system instruction text carried by a setup frame.
pub(super) fn setup_instruction(setup: &Value) -> Option<String> {
    let parts = setup["setup"]["systemInstruction"]["parts"].as_array()?;
    Some(
        parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
    )
}

/// The function names declared by a setup frame.
pub(super) fn setup_tools(setup: &Value) -> Vec<String> {
    setup["setup"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect()
}

/// No connection was closed by the server for a protocol violation.
pub(super) fn no_rejections(server: &FakeServer) -> Outcome {
    for conn in server.connections() {
        if let Some((code, reason)) = conn.closed_with() {
            if matches!(conn.end, Some((ConnectionEnd::ServerClose { .. }, _)))
                && (code == 1007 || code == 1008)
            {
                return Err(format!(
                    "connection {} closed by the server with {code}: {reason}",
                    conn.id
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
