//! The items of a chat context: messages, function calls and function outputs.

use serde_json::Value;

use crate::ItemId;

/// Who produced a turn.
///
/// Gemini knows exactly two roles in a conversation; the system instruction is not an item but
/// part of the session configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The human (or the application speaking for them).
    User,
    /// The model.
    Model,
}

/// How a message came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MessageOrigin {
    /// Typed text (or text supplied by the application).
    #[default]
    Typed,
    /// A transcript of audio that was spoken, by the user or by the model. The audio already
    /// reached (or came from) the live session; the text records what was said.
    Transcript,
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentPart {
    /// Plain text.
    Text(String),
}

impl ContentPart {
    /// The text of a [`ContentPart::Text`] part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
        }
    }
}

impl From<&str> for ContentPart {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for ContentPart {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// A user or model turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Stable id.
    pub id: ItemId,
    /// Who said it.
    pub role: Role,
    /// The content, in order.
    pub parts: Vec<ContentPart>,
    /// Typed, or a transcript of speech.
    pub origin: MessageOrigin,
}

impl Message {
    /// A typed message with the given parts.
    pub fn new(id: impl Into<ItemId>, role: Role, parts: Vec<ContentPart>) -> Self {
        Self {
            id: id.into(),
            role,
            parts,
            origin: MessageOrigin::Typed,
        }
    }

    /// A typed user message with one text part.
    pub fn user(id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        Self::new(id, Role::User, vec![ContentPart::Text(text.into())])
    }

    /// A typed model message with one text part.
    pub fn model(id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        Self::new(id, Role::Model, vec![ContentPart::Text(text.into())])
    }

    /// The same message, marked as a transcript of speech.
    #[must_use]
    pub fn transcript(mut self) -> Self {
        self.origin = MessageOrigin::Transcript;
        self
    }

    /// Whether the message is a transcript of speech rather than typed text.
    pub fn is_transcript(&self) -> bool {
        self.origin == MessageOrigin::Transcript
    }

    /// All text parts concatenated, in order.
    pub fn text(&self) -> String {
        self.parts.iter().filter_map(ContentPart::as_text).collect()
    }
}

/// A function (tool) call issued by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// Stable item id (distinct from `call_id`).
    pub id: ItemId,
    /// The server's id of the call, which the matching [`FunctionOutput`] repeats.
    pub call_id: String,
    /// The function's name.
    pub name: String,
    /// Free-form JSON arguments.
    pub arguments: Value,
}

impl FunctionCall {
    /// A call of `name` with `arguments`.
    pub fn new(
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Self {
        Self {
            id: id.into(),
            call_id: call_id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// The result of a function call, sent back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionOutput {
    /// Stable item id (distinct from `call_id`).
    pub id: ItemId,
    /// The `call_id` of the [`FunctionCall`] this answers.
    pub call_id: String,
    /// The function's name.
    pub name: String,
    /// Free-form JSON output.
    pub output: Value,
    /// Whether the function failed (`output` then describes the failure).
    pub is_error: bool,
}

impl FunctionOutput {
    /// A successful result.
    pub fn new(
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: Value,
    ) -> Self {
        Self {
            id: id.into(),
            call_id: call_id.into(),
            name: name.into(),
            output,
            is_error: false,
        }
    }

    /// A failed call; `output` describes the failure.
    pub fn error(
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: Value,
    ) -> Self {
        Self {
            is_error: true,
            ..Self::new(id, call_id, name, output)
        }
    }
}

/// One entry of a [`ChatContext`](crate::ChatContext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A user or model turn.
    Message(Message),
    /// A function call issued by the model.
    FunctionCall(FunctionCall),
    /// A function result returned to the model.
    FunctionOutput(FunctionOutput),
}

impl Item {
    /// The item's stable id.
    pub fn id(&self) -> &ItemId {
        match self {
            Self::Message(m) => &m.id,
            Self::FunctionCall(c) => &c.id,
            Self::FunctionOutput(o) => &o.id,
        }
    }

    /// The role the item has in the conversation: function calls come from the model,
    /// function outputs from the user side.
    pub fn role(&self) -> Role {
        match self {
            Self::Message(m) => m.role,
            Self::FunctionCall(_) => Role::Model,
            Self::FunctionOutput(_) => Role::User,
        }
    }

    /// The call id of a function call or output; `None` for a message.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Message(_) => None,
            Self::FunctionCall(c) => Some(&c.call_id),
            Self::FunctionOutput(o) => Some(&o.call_id),
        }
    }

    /// The message, if the item is one.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Self::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The function call, if the item is one.
    pub fn as_function_call(&self) -> Option<&FunctionCall> {
        match self {
            Self::FunctionCall(c) => Some(c),
            _ => None,
        }
    }

    /// The function output, if the item is one.
    pub fn as_function_output(&self) -> Option<&FunctionOutput> {
        match self {
            Self::FunctionOutput(o) => Some(o),
            _ => None,
        }
    }
}

impl From<Message> for Item {
    fn from(message: Message) -> Self {
        Self::Message(message)
    }
}

impl From<FunctionCall> for Item {
    fn from(call: FunctionCall) -> Self {
        Self::FunctionCall(call)
    }
}

impl From<FunctionOutput> for Item {
    fn from(output: FunctionOutput) -> Self {
        Self::FunctionOutput(output)
    }
}
