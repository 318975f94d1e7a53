//! Turning the policy's planned sends into wire messages.

use ctx_model::{FunctionOutput, Item, Message};
use gemini_transport::wire::{ClientMessage, Content, ContextUpdate, FunctionResponse, Scheduling};

use crate::config::BuiltinTools;
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
///
/// `scheduling`: whether the model takes `scheduling` in a function response (extended
/// thinking refuses it); `builtin`: the built-in tools a tool list in a `contextUpdate` keeps.
pub(crate) fn wire_send(
    step: &PlannedSend,
    ledger: &Ledger,
    scheduling: bool,
    builtin: BuiltinTools,
) -> WireSend {
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
            ClientMessage::tool_response(
                responses
                    .iter()
                    .map(|output| scheduled_response(output, scheduling))
                    .collect(),
            ),
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
                // The built-in tools stay: the list replaces the session's whole tool set.
                tools: tools.map(|_| builtin.entries(&ledger.tools.1)),
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

/// The function response for `output` as the session delivers it. A non-blocking result
/// carries `willContinue` when interim, and its scheduling where the model takes one: `SILENT`
/// as asked; anything the model is to answer goes as `INTERRUPT`, because the session applies
/// `WHEN_IDLE` itself (it holds the result until the model is idle, `SessionCore::route`).
/// Left to the server's own `WHEN_IDLE` queue, a result could be answered together with
/// whatever input came next in one model turn, and no client could tell which turn answered
/// what; sent when the model is idle with `INTERRUPT`, it is answered at once by a turn of its
/// own, and cuts off only a reply the client had not seen start.
fn scheduled_response(output: &FunctionOutput, scheduling: bool) -> FunctionResponse {
    let response = function_response(output);
    let delivery = output.delivery;
    if !delivery.non_blocking {
        return response;
    }
    let response = if delivery.will_continue {
        response.with_will_continue(true)
    } else {
        response
    };
    if !scheduling {
        return response;
    }
    response.with_scheduling(match delivery.scheduling {
        Some(ctx_model::Scheduling::Silent) => Scheduling::Silent,
        _ => Scheduling::Interrupt,
    })
}

/// [`wire_send`] for a step the caller owns: the items of a `clientContent` message move into
/// the result instead of being copied (a context update of 100,000 items is one message).
pub(crate) fn into_wire_send(
    step: PlannedSend,
    ledger: &Ledger,
    scheduling: bool,
    builtin: BuiltinTools,
) -> (WireSend, Vec<OpId>) {
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
        _ => (wire_send(&step, ledger, scheduling, builtin), step.ops),
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
