//! Conversions between the application's chat items (`ctx-model`) and wire `Content`.
//!
//! One item becomes one `Content` turn, so the order on the wire is the order in the context:
//! a message keeps its role and text; a function call is a `model` turn with one
//! `functionCall` part; a function output is a `user` turn with one `functionResponse` part.
//! A function output's value is sent as `{"output": value}` (or `{"error": value}` when it is
//! an error), the convention both official SDKs use, unless it already is a JSON object, which
//! is sent as it is.

use ctx_model::{ContentPart, FunctionOutput, Item, Role};
use gemini_transport::wire::{self, Content, FunctionCall, FunctionResponse, Part};
use serde_json::{Map, Value};

/// The wire turn for one chat item.
pub(crate) fn item_to_content(item: &Item) -> Content {
    match item {
        Item::Message(message) => {
            let role = match message.role {
                Role::User => wire::Role::User,
                Role::Model => wire::Role::Model,
            };
            // Sized up front: a collected `filter_map` would reserve four parts for the usual
            // one, four times the memory over a large context.
            let mut parts = Vec::with_capacity(message.parts.len());
            parts.extend(
                message
                    .parts
                    .iter()
                    .filter_map(ContentPart::as_text)
                    .map(Part::text),
            );
            Content::new(role, parts)
        }
        Item::FunctionCall(call) => Content::new(
            wire::Role::Model,
            vec![Part::function_call(FunctionCall::new(
                call.call_id.clone(),
                call.name.clone(),
                json_object(&call.arguments, "args"),
            ))],
        ),
        Item::FunctionOutput(output) => Content::new(
            wire::Role::User,
            vec![Part::function_response(function_response(output))],
        ),
    }
}

/// The wire turns for a run of chat items, in order.
pub(crate) fn items_to_contents(items: &[Item]) -> Vec<Content> {
    items.iter().map(item_to_content).collect()
}

/// The wire `functionResponse` for a function output.
pub(crate) fn function_response(output: &FunctionOutput) -> FunctionResponse {
    let key = if output.is_error { "error" } else { "output" };
    let response = match (&output.output, output.is_error) {
        (Value::Object(map), false) => map.clone(),
        (value, _) => {
            let mut map = Map::new();
            map.insert(key.to_owned(), value.clone());
            map
        }
    };
    FunctionResponse::new(output.call_id.clone(), output.name.clone(), response)
}

/// A JSON object for a wire field that must be one: objects pass through, anything else is
/// wrapped under `key`.
fn json_object(value: &Value, key: &str) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert(key.to_owned(), other.clone());
            map
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctx_model::{FunctionCall as CallItem, Message};
    use serde_json::json;

    #[test]
    fn message_keeps_role_and_text() {
        let item = Item::from(Message::model("m1", "Hello"));
        let json =
            wire::ClientMessage::client_content(vec![item_to_content(&item)], false).to_json();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"clientContent": {"turns": [{"role": "model", "parts": [{"text": "Hello"}]}], "turnComplete": false}})
        );
    }

    #[test]
    fn function_call_and_output_use_call_ids() {
        let call = Item::from(CallItem::new(
            "i1",
            "call-1",
            "get_weather",
            json!({"city": "Oslo"}),
        ));
        let out = Item::from(FunctionOutput::new(
            "i2",
            "call-1",
            "get_weather",
            json!(18),
        ));
        let err = Item::from(FunctionOutput::error(
            "i3",
            "call-2",
            "book",
            json!("no seats"),
        ));
        let msg = wire::ClientMessage::client_content(items_to_contents(&[call, out, err]), true);
        assert_eq!(
            serde_json::from_str::<Value>(&msg.to_json()).unwrap(),
            json!({"clientContent": {"turns": [
                {"role": "model", "parts": [{"functionCall": {"id": "call-1", "name": "get_weather", "args": {"city": "Oslo"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "call-1", "name": "get_weather", "response": {"output": 18}}}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "call-2", "name": "book", "response": {"error": "no seats"}}}]}
            ], "turnComplete": true}})
        );
    }

    #[test]
    fn object_output_is_sent_as_is() {
        let out = FunctionOutput::new("i2", "call-1", "get_weather", json!({"temp_c": 18}));
        assert_eq!(
            Value::Object(function_response(&out).response),
            json!({"temp_c": 18})
        );
    }
}
