//! Shared helpers for the examples: rendering the application's context (`L`) and the fake
//! server's context (`S`) as comparable lines.
//!
//! Both sides are rendered one line per item: `user: …` / `model: …` for messages (typed or
//! spoken), `call ID NAME` for a function call, `response ID NAME {json}` for its result (the
//! JSON as it travels on the wire: an object as it is, anything else under `output` or
//! `error`).

pub mod live_agent;
pub mod wav;

use agent_glue::{ChatContext, Item, Role};
use agent_glue::{Value, json};
use gemini_fake::{Part, Role as ServerRole, Turn};

/// `L` as lines.
pub fn context_lines(context: &ChatContext) -> Vec<String> {
    context
        .iter()
        .map(|item| match item {
            Item::Message(m) => {
                let role = match m.role {
                    Role::User => "user",
                    Role::Model => "model",
                };
                format!("{role}: {}", m.text())
            }
            Item::FunctionCall(c) => format!("call {} {}", c.call_id, c.name),
            Item::FunctionOutput(o) => {
                let response = match (&o.output, o.is_error) {
                    (Value::Object(_), false) => o.output.clone(),
                    (v, false) => json!({ "output": v }),
                    (v, true) => json!({ "error": v }),
                };
                format!("response {} {} {response}", o.call_id, o.name)
            }
        })
        .collect()
}

/// `S` (the fake server's session context) as lines.
pub fn server_lines(turns: &[Turn]) -> Vec<String> {
    let mut lines = Vec::new();
    for turn in turns {
        let role = match turn.role {
            ServerRole::User => "user",
            ServerRole::Model => "model",
            _ => "other",
        };
        let mut text = String::new();
        for part in &turn.parts {
            match part {
                Part::Text(t) | Part::AudioTranscript(t) => text.push_str(t),
                Part::FunctionCall { id, name, .. } => lines.push(format!("call {id} {name}")),
                Part::FunctionResponse { id, name, response } => {
                    lines.push(format!("response {id} {name} {response}"));
                }
                _ => {}
            }
        }
        if !text.is_empty() {
            lines.push(format!("{role}: {}", text.trim_end()));
        }
    }
    lines
}
