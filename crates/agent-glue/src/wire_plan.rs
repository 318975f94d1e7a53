//! Turning the policy's planned sends into wire messages.

use ctx_model::{Item, Message};
use gemini_transport::wire::{ClientMessage, Content, ContextUpdate, Tool};
use resume_policy::{Channel, MessageKind, Payload, PlannedSend};

use crate::convert::{function_response, items_to_contents};
use crate::ledger::Ledger;

/// The wire message for a planned send, the kind of reaction it provokes, and the items of
/// `L` it puts into the server session.
pub(crate) struct WireSend {
    pub(crate) message: Option<ClientMessage>,
    pub(crate) kind: MessageKind,
    pub(crate) items: Vec<Item>,
}

/// Builds the message for `step` with the ledger's current configuration.
pub(crate) fn wire_send(step: &PlannedSend, ledger: &Ledger) -> WireSend {
    let (message, items) = message_and_items(step, ledger);
    WireSend {
        message,
        kind: step.message_kind().unwrap_or(MessageKind::Silent),
        items,
    }
}

fn message_and_items(step: &PlannedSend, ledger: &Ledger) -> (Option<ClientMessage>, Vec<Item>) {
    match (&step.channel, &step.payload) {
        (Channel::SetupField, _) => (None, Vec::new()),
        (Channel::ClientContent { turn_complete }, Payload::Items(items)) => (
            Some(ClientMessage::client_content(
                items_to_contents(items),
                *turn_complete,
            )),
            items.clone(),
        ),
        (Channel::ClientContent { .. }, Payload::GenerateReply { instructions }) => {
            let turns = instructions
                .iter()
                .map(|text| Content::user_text(text.clone()))
                .collect();
            let items = instructions
                .iter()
                .map(|text| request_item(ledger, text))
                .collect();
            (Some(ClientMessage::client_content(turns, true)), items)
        }
        (Channel::RealtimeText, Payload::Text(text)) => {
            // The user message in `L` behind the text, if any.
            let items = step
                .ops
                .iter()
                .filter_map(|id| ledger.outbox.get(*id))
                .filter_map(|op| match &op.kind {
                    resume_policy::OpKind::RealtimeText { item: Some(id), .. } => {
                        ledger.desired.get(id).cloned()
                    }
                    resume_policy::OpKind::Append { items, .. } => items.first().cloned(),
                    _ => None,
                })
                .collect();
            (Some(ClientMessage::realtime_text(text.clone())), items)
        }
        (Channel::RealtimeText, Payload::GenerateReply { instructions }) => {
            let text = instructions
                .clone()
                .unwrap_or_else(|| "Please continue.".to_owned());
            let item = request_item(ledger, &text);
            (Some(ClientMessage::realtime_text(text)), vec![item])
        }
        (Channel::ToolResponse, Payload::ToolResponses(outputs)) => (
            Some(ClientMessage::tool_response(
                outputs.iter().map(function_response).collect(),
            )),
            outputs.iter().cloned().map(Item::FunctionOutput).collect(),
        ),
        (
            Channel::ContextUpdate,
            Payload::Config {
                instructions,
                tools,
            },
        ) => {
            let update = ContextUpdate {
                system_instruction: instructions.and(
                    ledger
                        .instructions
                        .1
                        .as_ref()
                        .map(|text| Content::system_instruction(text.clone())),
                ),
                tools: tools.map(|_| {
                    if ledger.tools.1.is_empty() {
                        Vec::new()
                    } else {
                        vec![Tool::functions(ledger.tools.1.clone())]
                    }
                }),
            };
            (Some(ClientMessage::context_update(update)), Vec::new())
        }
        // A channel and payload the policy should not pair: send the items as history.
        (_, Payload::Items(items)) => (
            Some(ClientMessage::client_content(
                items_to_contents(items),
                false,
            )),
            items.clone(),
        ),
        _ => (None, Vec::new()),
    }
}

/// The user turn a reply request puts into the server session (realtime text, or the
/// instructions as `clientContent`). The session records it in `L` too, so that `L` and the
/// server's context stay equal (a fresh 3.1 session is asked to answer a seeded tool result
/// this way).
fn request_item(ledger: &Ledger, text: &str) -> Item {
    let id = (ledger.desired.len()..)
        .map(|n| format!("reply-request-{n}"))
        .find(|id| !ledger.desired.contains(id.as_str()))
        .unwrap_or_else(|| "reply-request".to_owned());
    Item::Message(Message::user(id, text))
}
