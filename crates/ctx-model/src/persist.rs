//! `serde` support (feature `serde`), for persisting a context: a session store keeps the
//! desired context and what a handle holds so that another process can resume the session.
//!
//! This is a storage format, not a wire format: field and variant names are the Rust ones,
//! and nothing here is sent to the Live API (only `gemini-transport` knows the wire). An
//! [`ItemId`] is a plain string; a [`ChatContext`] is the sequence of its items, and reading one
//! back checks its ids as [`ChatContext::from_items`] does (an empty or repeated id is an error
//! of the deserializer, never a context with a broken index).

use serde::de::{Deserialize, Deserializer, Error as _};
use serde::ser::{Serialize, Serializer};

use crate::{ChatContext, Item, ItemId};

impl Serialize for ItemId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ItemId::from)
    }
}

impl Serialize for ChatContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ChatContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<Item>::deserialize(deserializer)?;
        ChatContext::from_items(items).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{ChatContext, Delivery, FunctionOutput, Item, Message, Scheduling};

    #[test]
    fn a_context_round_trips_with_every_kind_of_item() {
        let output = FunctionOutput::new("o1", "call-1", "lookup", json!({"temp": 21}))
            .with_delivery(Delivery::non_blocking(Some(Scheduling::Silent), true));
        let context = ChatContext::builder()
            .user("u1", "Hi")
            .model("m1", "Hello")
            .function_call("c1", "call-1", "lookup", json!({"city": "Paris"}))
            .build();
        let mut context = context.expect("valid context");
        context
            .push(Message::user("u2", "spoken").transcript())
            .expect("new id");
        context.push(output.clone()).expect("new id");
        let text = serde_json::to_string(&context).expect("serializes");
        let back: ChatContext = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, context);
        // `FunctionOutput`'s equality ignores delivery: check it on its own.
        let delivered = back.get("o1").and_then(Item::as_function_output);
        assert_eq!(delivered.map(|o| o.delivery), Some(output.delivery));
        assert_eq!(
            back.get("u2")
                .and_then(Item::as_message)
                .map(Message::is_transcript),
            Some(true)
        );
    }

    #[test]
    fn a_repeated_or_empty_id_is_an_error_not_a_context() {
        let dup = r#"[{"Message":{"id":"a","role":"User","parts":[{"Text":"x"}],"origin":"Typed"}},
                      {"Message":{"id":"a","role":"Model","parts":[],"origin":"Typed"}}]"#;
        let err = serde_json::from_str::<ChatContext>(dup)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains('a')),
            "duplicate id accepted"
        );
        let empty = r#"[{"Message":{"id":"","role":"User","parts":[],"origin":"Typed"}}]"#;
        assert!(serde_json::from_str::<ChatContext>(empty).is_err());
    }
}
