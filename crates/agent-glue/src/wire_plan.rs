//! Turning the policy's planned sends into wire messages.

use ctx_model::{Item, Message};
use gemini_transport::wire::{ClientMessage, Content, ContextUpdate, Tool};
use resume_policy::{MessageKind, OpId, OpKind, PlannedMessage, PlannedSend};

use crate::convert::{function_response, items_to_contents};
use crate::ledger::Ledger;

/// The wire message for a planned send, the kind of reaction it provokes, and the items of
/// `L` it puts into the server session.
pub(crate) struct WireSend {
    pub(crate) message: ClientMessage,
    pub(crate) kind: MessageKind,
    pub(crate) items: Vec<Item>,
}

/// Builds the message for `step` with the ledger's current configuration. Every
/// [`PlannedMessage`] is one client message, so the match is exhaustive.
pub(crate) fn wire_send(step: &PlannedSend, ledger: &Ledger) -> WireSend {
    let (message, items) = match &step.message {
        PlannedMessage::ClientContent {
            items,
            turn_complete,
        } => (
            ClientMessage::client_content(items_to_contents(items), *turn_complete),
            items.clone(),
        ),
        PlannedMessage::ReplyRequest { instructions } => {
            let turns = instructions
                .iter()
                .map(|text| Content::user_text(text.clone()))
                .collect();
            let items = instructions
                .iter()
                .map(|text| request_item(ledger, text))
                .collect();
            (ClientMessage::client_content(turns, true), items)
        }
        PlannedMessage::RealtimeText { text } => (
            ClientMessage::realtime_text(text.clone()),
            realtime_text_items(step, ledger),
        ),
        PlannedMessage::RealtimeReplyRequest { instructions } => {
            let text = instructions
                .clone()
                .unwrap_or_else(|| "Please continue.".to_owned());
            let item = request_item(ledger, &text);
            (ClientMessage::realtime_text(text), vec![item])
        }
        PlannedMessage::ToolResponse { responses } => (
            ClientMessage::tool_response(responses.iter().map(function_response).collect()),
            responses
                .iter()
                .cloned()
                .map(Item::FunctionOutput)
                .collect(),
        ),
        PlannedMessage::ContextUpdate {
            instructions,
            tools,
        } => {
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
            (ClientMessage::context_update(update), Vec::new())
        }
    };
    WireSend {
        message,
        kind: step.message_kind(),
        items,
    }
}

/// [`wire_send`] for a step the caller owns: the items of a `clientContent` message move into
/// the result instead of being copied (a context update of 100,000 items is one message).
pub(crate) fn into_wire_send(step: PlannedSend, ledger: &Ledger) -> (WireSend, Vec<OpId>) {
    let kind = step.message_kind();
    match step.message {
        PlannedMessage::ClientContent {
            items,
            turn_complete,
        } => {
            let message = ClientMessage::client_content(items_to_contents(&items), turn_complete);
            let send = WireSend {
                message,
                kind,
                items,
            };
            (send, step.ops)
        }
        _ => (wire_send(&step, ledger), step.ops),
    }
}

/// The user message in `L` behind realtime text, if any: the item the operation records, or
/// the typed turn of an append sent as realtime text.
fn realtime_text_items(step: &PlannedSend, ledger: &Ledger) -> Vec<Item> {
    step.ops
        .iter()
        .filter_map(|id| ledger.outbox.get(*id))
        .filter_map(|op| match &op.kind {
            OpKind::RealtimeText { item: Some(id), .. } => ledger.desired.get(id).cloned(),
            OpKind::Append { items, .. } => items.first().cloned(),
            _ => None,
        })
        .collect()
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
