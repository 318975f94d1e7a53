//! The model's side of a conversation: ordered turns with their parts, and the state a handle
//! captures.

use serde_json::Value;

/// Who a turn belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The user (also carries function responses).
    User,
    /// The model.
    Model,
    /// Any other role string a client sent.
    Other(String),
}

impl Role {
    pub(crate) fn from_wire(role: Option<&str>) -> Role {
        match role {
            None | Some("user") | Some("") => Role::User,
            Some("model") => Role::Model,
            Some(other) => Role::Other(other.to_owned()),
        }
    }
}

/// One part of a turn.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Text (typed user text, seeded history, a TEXT-modality answer).
    Text(String),
    /// A function call made by the model.
    FunctionCall {
        /// Call id (`call-<session>-<n>` for calls the fake issued).
        id: String,
        /// Function name.
        name: String,
        /// Arguments as sent.
        args: Value,
    },
    /// A function result given by the client.
    FunctionResponse {
        /// The call id it answers.
        id: String,
        /// Function name.
        name: String,
        /// The response object as sent.
        response: Value,
    },
    /// Spoken content, kept as its deterministic transcript: `[audio 1.20s]` for user speech,
    /// the answer text for an AUDIO-modality model answer.
    AudioTranscript(String),
    /// Inline media in client content (images, audio blobs), by MIME type.
    InlineData {
        /// The blob's MIME type.
        mime_type: String,
    },
    /// A part kind the fake does not model, by its field name.
    Other(String),
}

impl Part {
    /// The text this part contributes to the scripted model's input, if any.
    pub(crate) fn spoken_or_typed(&self) -> Option<&str> {
        match self {
            Part::Text(text) | Part::AudioTranscript(text) => Some(text),
            _ => None,
        }
    }
}

/// One turn of the context.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Whose turn it is.
    pub role: Role,
    /// Its parts, in order.
    pub parts: Vec<Part>,
}

impl Turn {
    /// A user turn with one text part.
    #[must_use]
    pub fn user_text(text: impl Into<String>) -> Turn {
        Turn {
            role: Role::User,
            parts: vec![Part::Text(text.into())],
        }
    }

    /// A model turn with one text part.
    #[must_use]
    pub fn model_text(text: impl Into<String>) -> Turn {
        Turn {
            role: Role::Model,
            parts: vec![Part::Text(text.into())],
        }
    }

    /// All text and transcript parts joined with a space.
    #[must_use]
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(Part::spoken_or_typed)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A function call issued by the model and not yet answered (finally) or cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCall {
    /// Call id.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Whether the model waits for it (`BLOCKING`); a non-blocking call's model turn goes on
    /// and completes, and its response is answered by a later turn, as its `scheduling` says.
    pub blocking: bool,
}

/// What a resumption handle captures: the model's context and its open calls.
///
/// Resuming from a handle replaces the session's `ModelState` with the captured one; everything
/// the session did after the handle was issued is lost, as on the real service. The session's
/// journal (generations, calls, responses, answers, connections) is never rolled back.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ModelState {
    /// The turns the model holds, in order.
    pub(crate) context: Vec<Turn>,
    /// Calls awaiting a response.
    pub(crate) pending_calls: Vec<PendingCall>,
    /// Length of `context` when the last generation started: user text after this point is the
    /// "new input" the scripted model answers.
    pub(crate) answered_upto: usize,
}

impl ModelState {
    /// The function responses of the last turn added since the last generation started, when
    /// that turn is a user turn carrying them (results delivered as `clientContent` history):
    /// `(name, response)` in order; empty otherwise.
    pub(crate) fn new_function_responses(&self) -> Vec<(String, Value)> {
        let start = self.answered_upto.min(self.context.len());
        match self.context[start..].last() {
            Some(turn) if turn.role == Role::User => turn
                .parts
                .iter()
                .filter_map(|part| match part {
                    Part::FunctionResponse { name, response, .. } => {
                        Some((name.clone(), response.clone()))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Text of the last user turn added since the last generation started (`""` if none).
    pub(crate) fn new_user_text(&self) -> String {
        let start = self.answered_upto.min(self.context.len());
        self.context[start..]
            .iter()
            .rev()
            .filter(|turn| turn.role == Role::User)
            .map(Turn::text)
            .find(|text| !text.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_user_text_is_the_last_user_turn_after_the_mark() {
        let mut state = ModelState {
            context: vec![Turn::user_text("old"), Turn::model_text("echo: old")],
            pending_calls: Vec::new(),
            answered_upto: 2,
        };
        assert_eq!(state.new_user_text(), "");
        state.context.push(Turn::user_text("first"));
        state.context.push(Turn::user_text("second"));
        assert_eq!(state.new_user_text(), "second");
        state.answered_upto = 0;
        state.context.truncate(1);
        assert_eq!(state.new_user_text(), "old");
    }

    #[test]
    fn function_responses_in_the_last_new_turn_are_found() {
        let response = Part::FunctionResponse {
            id: "c1".into(),
            name: "f".into(),
            response: serde_json::json!({"a": 1}),
        };
        let mut state = ModelState {
            context: vec![Turn::user_text("call f")],
            pending_calls: Vec::new(),
            answered_upto: 0,
        };
        assert!(state.new_function_responses().is_empty());
        state.context.push(Turn {
            role: Role::User,
            parts: vec![response],
        });
        assert_eq!(
            state.new_function_responses(),
            vec![("f".to_owned(), serde_json::json!({"a": 1}))]
        );
        state.answered_upto = 2;
        assert!(state.new_function_responses().is_empty());
    }
}
