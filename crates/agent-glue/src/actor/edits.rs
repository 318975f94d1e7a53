//! The application's edits of the context: tool results and whole-context updates, checked
//! against `L` and queued as operations.

use ctx_model::{ChatContext, Item};
use resume_policy::{OpKind, ToolCallStatus, Trigger};
use tracing::debug;

use super::Actor;
use crate::Error;

impl Actor {
    pub(super) async fn tool_result(
        &mut self,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
    ) -> Result<(), Error> {
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
        let answered = self.ledger.desired.iter().any(|item| {
            item.as_function_output()
                .is_some_and(|o| o.call_id == call_id)
        });
        if answered {
            return Err(Error::InvalidArgument(format!(
                "tool call {call_id:?} was already answered"
            )));
        }
        if self.ledger.tracker.tool_calls().is_cancelled(&call_id) {
            // The server withdrew the call: its result reaches no connection, and `L` does
            // not claim an answer the model never got (scenario S15).
            debug!(call_id, "result of a cancelled tool call dropped");
            return Ok(());
        }
        let id = self.ledger.new_item_id("output");
        let item = if is_error {
            ctx_model::FunctionOutput::error(id, call_id.clone(), call.name.clone(), output)
        } else {
            ctx_model::FunctionOutput::new(id, call_id.clone(), call.name.clone(), output)
        };
        self.ledger
            .desired
            .push(Item::FunctionOutput(item.clone()))?;
        self.ledger
            .tracker
            .set_tool_status(&call_id, ToolCallStatus::Answered);
        let op = self
            .ledger
            .outbox
            .push(OpKind::ToolResponse { output: item });
        self.publish_context();
        self.route(op).await;
        Ok(())
    }

    pub(super) async fn update_context(&mut self, context: ChatContext) -> Result<(), Error> {
        let diff = ctx_model::diff(&self.ledger.desired, &context);
        if diff.is_empty() {
            return Ok(());
        }
        let appended: Vec<Item> = diff.appended().to_vec();
        let rewrite = diff.classify() == ctx_model::DiffKind::Rewrite;
        self.ledger.desired = context;
        self.publish_context();
        let mut ops = Vec::new();
        if !appended.is_empty() {
            ops.push(self.ledger.outbox.push(OpKind::Append {
                items: appended,
                turn_complete: false,
            }));
        }
        if rewrite {
            // Edits of items the server holds: the policy decides at the next connection
            // (reseed or report); make that connection at the next turn boundary.
            if self.live.is_some() {
                self.request_restart(Trigger::ConfigChange {
                    instructions: false,
                    tools: false,
                })
                .await;
                return Ok(());
            }
        }
        for op in ops {
            self.route(op).await;
        }
        Ok(())
    }
}
