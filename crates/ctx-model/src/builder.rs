//! A builder that reads like the conversation it builds.

use serde_json::Value;

use crate::{ChatContext, Error, FunctionCall, FunctionOutput, Item, ItemId, Message};

/// Builds a [`ChatContext`] in conversation order; ids are checked once, in
/// [`build`](Self::build).
///
/// ```
/// use ctx_model::ChatContext;
/// use serde_json::json;
///
/// let context = ChatContext::builder()
///     .user("u1", "What's the weather in Paris?")
///     .function_call("c1", "call-1", "get_weather", json!({"city": "Paris"}))
///     .function_output("o1", "call-1", "get_weather", json!({"celsius": 18}))
///     .model("m1", "18 °C and sunny.")
///     .user_transcript("u2", "thanks!")
///     .build()?;
/// assert_eq!(context.len(), 5);
/// # Ok::<(), ctx_model::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ChatContextBuilder {
    items: Vec<Item>,
}

impl ChatContextBuilder {
    /// Adds any item.
    pub fn item(mut self, item: impl Into<Item>) -> Self {
        self.items.push(item.into());
        self
    }

    /// Adds a typed user message.
    pub fn user(self, id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        self.item(Message::user(id, text))
    }

    /// Adds a typed model message.
    pub fn model(self, id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        self.item(Message::model(id, text))
    }

    /// Adds the transcript of something the user said.
    pub fn user_transcript(self, id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        self.item(Message::user(id, text).transcript())
    }

    /// Adds the transcript of something the model said.
    pub fn model_transcript(self, id: impl Into<ItemId>, text: impl Into<String>) -> Self {
        self.item(Message::model(id, text).transcript())
    }

    /// Adds a function call issued by the model.
    pub fn function_call(
        self,
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Self {
        self.item(FunctionCall::new(id, call_id, name, arguments))
    }

    /// Adds a successful function output.
    pub fn function_output(
        self,
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: Value,
    ) -> Self {
        self.item(FunctionOutput::new(id, call_id, name, output))
    }

    /// Adds a failed function output.
    pub fn function_error(
        self,
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: Value,
    ) -> Self {
        self.item(FunctionOutput::error(id, call_id, name, output))
    }

    /// The context.
    ///
    /// # Errors
    /// [`Error::EmptyId`] or [`Error::DuplicateId`] for the first offending item.
    pub fn build(self) -> Result<ChatContext, Error> {
        ChatContext::from_items(self.items)
    }
}
