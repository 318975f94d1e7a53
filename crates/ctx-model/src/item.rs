//! The items of a chat context: messages, function calls and function outputs.

use serde_json::Value;

use crate::ItemId;

/// Who produced a turn.
///
/// Gemini knows exactly two roles in a conversation; the system instruction is not an item but
/// part of the session configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Role {
    /// The human (or the application speaking for them).
    User,
    /// The model.
    Model,
}

/// How a message came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

/// When the model takes up the result of a call it did not wait for (a non-blocking call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Scheduling {
    /// The result only enters the context; the model says nothing about it now.
    Silent,
    /// The model answers it once it is idle (the default).
    WhenIdle,
    /// The model stops what it is saying and answers it at once.
    Interrupt,
}

/// How a function result is delivered: whether the model waited for it, when it takes it up,
/// and whether more results of the same call follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Delivery {
    /// The call did not block the model (it talked on): the result is answered by a model
    /// turn of its own, as [`scheduling`](Self::scheduling) says.
    pub non_blocking: bool,
    /// When the model takes it up (non-blocking calls; `None`: the service's default, when
    /// idle).
    pub scheduling: Option<Scheduling>,
    /// An interim result: more results of the same call follow (non-blocking calls only).
    pub will_continue: bool,
}

impl Delivery {
    /// The result of a call the model waits for.
    pub const BLOCKING: Self = Self {
        non_blocking: false,
        scheduling: None,
        will_continue: false,
    };

    /// The result of a call the model talked on from, taken up as `scheduling` says.
    pub fn non_blocking(scheduling: Option<Scheduling>, will_continue: bool) -> Self {
        Self {
            non_blocking: true,
            scheduling,
            will_continue,
        }
    }

    /// Whether the model answers it with a turn of its own (a non-blocking result that is not
    /// [`Scheduling::Silent`]).
    pub fn answered_by_own_turn(&self) -> bool {
        self.non_blocking && self.scheduling != Some(Scheduling::Silent)
    }
}

/// The result of a function call, sent back to the model.
///
/// Two outputs are equal when they say the same thing: how one is delivered
/// ([`Delivery`]) is not part of what the context holds.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    /// How it is delivered ([`Delivery::BLOCKING`] unless the call was non-blocking).
    pub delivery: Delivery,
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
            delivery: Delivery::BLOCKING,
        }
    }

    /// The same output delivered as `delivery` says.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// An interim result (more results of the same call follow).
    pub fn is_interim(&self) -> bool {
        self.delivery.non_blocking && self.delivery.will_continue
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

impl PartialEq for FunctionOutput {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.call_id == other.call_id
            && self.name == other.name
            && self.output == other.output
            && self.is_error == other.is_error
    }
}

impl Eq for FunctionOutput {}

/// One entry of a [`ChatContext`](crate::ChatContext).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
