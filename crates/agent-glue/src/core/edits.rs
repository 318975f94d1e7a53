//! The application's edits of the context: typed turns, appends, whole-context updates, tool
//! results and reply requests, checked against `L` and queued as operations.

use ctx_model::{ChatContext, Item, Message};
use resume_policy::{Millis, OpKind, ToolCallStatus, Trigger};

use super::{Receipt, SessionCore};
use crate::Error;

impl SessionCore {
    /// A typed user turn: in `L` now, delivered as the policy routes it.
    pub(super) fn text(&mut self, now: Millis, text: String) -> Result<Receipt, Error> {
        let id = self.ledger.new_item_id("user");
        let item = Item::from(Message::user(id.clone(), text));
        self.ledger.desired.push(item.clone())?;
        self.bump();
        let op = self.ledger.outbox.push(OpKind::Append {
            items: vec![item],
            turn_complete: true,
        });
        self.route(now, op);
        Ok(Receipt {
            items: vec![id],
            op: Some(op),
            version: 0,
        })
    }

    /// Items appended to `L` as history. Never conflicts with other changes.
    pub(super) fn append(&mut self, now: Millis, items: Vec<Item>) -> Result<Receipt, Error> {
        if items.is_empty() {
            return Ok(Receipt::default());
        }
        let mut next = self.ledger.desired.clone();
        next.extend(items.iter().cloned())?;
        self.ledger.desired = next;
        self.bump();
        let ids = items.iter().map(|i| i.id().clone()).collect();
        let op = self.ledger.outbox.push(OpKind::Append {
            items,
            turn_complete: false,
        });
        self.route(now, op);
        Ok(Receipt {
            items: ids,
            op: Some(op),
            version: 0,
        })
    }

    pub(super) fn tool_result(
        &mut self,
        now: Millis,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
        (scheduling, will_continue): (Option<ctx_model::Scheduling>, bool),
    ) -> Result<Receipt, Error> {
        let Some(call) = self
            .ledger
            .desired
            .iter()
            .find_map(|item| item.as_function_call().filter(|c| c.call_id == call_id))
            .cloned()
        else {
            return Err(Error::InvalidArgument(format!(
                "no tool call with id {call_id:?}"
            )));
        };
        // Interim results of a non-blocking call leave it open; a final one closes it.
        let answered = self.ledger.desired.iter().any(|item| {
            item.as_function_output()
                .is_some_and(|o| o.call_id == call_id && !o.is_interim())
        });
        if answered {
            return Err(Error::InvalidArgument(format!(
                "tool call {call_id:?} was already answered"
            )));
        }
        if self.ledger.tracker.tool_calls().is_cancelled(&call_id) {
            // The server withdrew the call: its result reaches no connection, and `L` does
            // not claim an answer the model never got (scenario S15).
            tracing::debug!(call_id, "result of a cancelled tool call dropped");
            return Ok(Receipt::default());
        }
        let blocking = self.ledger.tracker.tool_calls().is_blocking(&call_id);
        if blocking && will_continue {
            return Err(Error::InvalidArgument(format!(
                "tool call {call_id:?} blocks the model, so its result is final: \
                 will_continue applies to non-blocking calls"
            )));
        }
        let delivery = if blocking {
            ctx_model::Delivery::BLOCKING
        } else if !self.caps.response_scheduling {
            // The model takes no `scheduling` (extended thinking): it takes every result up
            // when idle, as the service's default says.
            ctx_model::Delivery::non_blocking(None, will_continue)
        } else {
            ctx_model::Delivery::non_blocking(scheduling, will_continue)
        };
        let id = self.ledger.new_item_id("output");
        let item = if is_error {
            ctx_model::FunctionOutput::error(id.clone(), call_id.clone(), call.name.clone(), output)
        } else {
            ctx_model::FunctionOutput::new(id.clone(), call_id.clone(), call.name.clone(), output)
        }
        .with_delivery(delivery);
        self.ledger
            .desired
            .push(Item::FunctionOutput(item.clone()))?;
        self.bump();
        if !will_continue {
            self.ledger
                .tracker
                .set_tool_status(&call_id, ToolCallStatus::Answered);
        }
        let op = self
            .ledger
            .outbox
            .push(OpKind::ToolResponse { output: item });
        self.route(now, op);
        Ok(Receipt {
            items: vec![id],
            op: Some(op),
            version: 0,
        })
    }

    /// `generate_reply`: with instructions, a user turn carrying them (in `L` now, answered
    /// once); without, a bare request on models that take one, else the nudge a model without
    /// mid-session `clientContent` needs, as a user turn in `L`.
    pub(super) fn generate_reply(
        &mut self,
        now: Millis,
        instructions: Option<String>,
    ) -> Result<Receipt, Error> {
        match instructions {
            Some(text) => self.text(now, text),
            None if !self.caps.client_content_mid_session => {
                self.text(now, "Please continue.".to_owned())
            }
            None => {
                let op = self
                    .ledger
                    .outbox
                    .push(OpKind::GenerateReply { instructions: None });
                self.route(now, op);
                Ok(Receipt {
                    items: Vec::new(),
                    op: Some(op),
                    version: 0,
                })
            }
        }
    }

    /// Replaces `L`, if it is still at version `based_on`. Appended items are delivered as
    /// history; edits and removals of items the server holds are the policy's to handle (a
    /// fresh seeded session by default, or a divergence).
    pub(super) fn update_context(
        &mut self,
        now: Millis,
        context: ChatContext,
        based_on: u64,
    ) -> Result<Receipt, Error> {
        if based_on != self.version {
            return Err(Error::Conflict {
                based_on,
                current: self.version,
            });
        }
        let diff = ctx_model::diff(&self.ledger.desired, &context);
        if diff.is_empty() {
            return Ok(Receipt::default());
        }
        let rewrite = diff.classify() == ctx_model::DiffKind::Rewrite;
        let appended: Vec<Item> = diff.into_appended();
        self.ledger.desired = context;
        self.bump();
        // What has not been sent yet goes out as `L` now says.
        let emptied = self.ledger.outbox.refresh_queued(&self.ledger.desired);
        let superseded = self.ledger.outbox.supersede(&emptied);
        self.checked("superseding appends emptied by an update", superseded);
        let ids = appended.iter().map(|i| i.id().clone()).collect();
        let op = (!appended.is_empty()).then(|| {
            self.ledger.outbox.push(OpKind::Append {
                items: appended,
                turn_complete: false,
            })
        });
        if rewrite && self.link.id().is_some() {
            // Edits of items the server holds: the policy decides at the next connection
            // (reseed or report); make that connection at the next turn boundary (a
            // connection being set up executes a plan made before the edit first).
            self.request_restart(
                now,
                Trigger::ConfigChange {
                    instructions: false,
                    tools: false,
                },
            );
        } else if let Some(op) = op {
            self.route(now, op);
        }
        Ok(Receipt {
            items: ids,
            op,
            version: 0,
        })
    }

    /// Answers to the cancelled calls `call_ids` leave `L` and the mirror: the server never
    /// takes them. One pass over `L`, however many calls a cancellation names.
    pub(super) fn drop_cancelled_outputs(&mut self, call_ids: &[String]) {
        let cancelled: std::collections::HashSet<&str> =
            call_ids.iter().map(String::as_str).collect();
        let outputs = self.ledger.desired.remove_where(|item| {
            item.as_function_output()
                .is_some_and(|o| cancelled.contains(o.call_id.as_str()))
        });
        if !outputs.is_empty() {
            self.ledger.mirror.forget_all(&outputs);
            self.bump();
        }
    }
}
