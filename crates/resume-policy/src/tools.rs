//! The tool calls the session has seen, and which server session knows each of them.

use std::collections::BTreeMap;

use crate::{ConnectionId, HandleRecord, HandleSerial, SessionEpoch};

/// Where a tool call stands on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolCallStatus {
    /// Received; the tool runs or has not answered yet.
    Running,
    /// A response was queued in the outbox.
    Answered,
    /// The server cancelled it (`toolCallCancellation`): never answer it (scenario S15).
    Cancelled,
    /// Its execution was lost (for example the process restarted while it ran): no result will
    /// ever come unless the policy answers it (scenario S16).
    Lost,
}

/// One tool call as the session saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCallRecord {
    /// `functionCalls[].id`.
    pub call_id: String,
    /// `functionCalls[].name`.
    pub name: String,
    /// The connection it arrived on.
    pub connection: ConnectionId,
    /// The server session it belongs to.
    pub epoch: SessionEpoch,
    /// The first handle issued after it on its connection: that handle and every later one of
    /// the same session include the call. `None` while no handle includes it.
    pub known_by: Option<HandleSerial>,
    /// Whether the server session the client is (or was last) connected to knows the call.
    pub in_session: bool,
    /// Client-side status.
    pub status: ToolCallStatus,
    /// The model waits for its result (`false`: a non-blocking call, the model talked on).
    pub blocking: bool,
}

/// The session's tool calls, by call id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCalls {
    calls: BTreeMap<String, ToolCallRecord>,
}

impl ToolCalls {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of `call_id`.
    pub fn get(&self, call_id: &str) -> Option<&ToolCallRecord> {
        self.calls.get(call_id)
    }

    /// Every record, by call id.
    pub fn iter(&self) -> impl Iterator<Item = &ToolCallRecord> + '_ {
        self.calls.values()
    }

    /// Whether a session resumed from `handle` knows `call_id` (can accept a `toolResponse`
    /// for it).
    pub fn known_to(&self, call_id: &str, handle: &HandleRecord) -> bool {
        self.calls.get(call_id).is_some_and(|call| {
            call.epoch == handle.epoch && call.known_by.is_some_and(|by| by <= handle.serial)
        })
    }

    /// Whether the current server session knows `call_id`.
    pub fn in_session(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_some_and(|call| call.in_session)
    }

    /// Whether the server cancelled `call_id`.
    pub fn is_cancelled(&self, call_id: &str) -> bool {
        self.calls
            .get(call_id)
            .is_some_and(|call| call.status == ToolCallStatus::Cancelled)
    }

    /// Records a `toolCall` received on `connection` of session `epoch`. A repeated id keeps
    /// its first record.
    pub fn observe(
        &mut self,
        call_id: impl Into<String>,
        name: impl Into<String>,
        connection: ConnectionId,
        epoch: SessionEpoch,
    ) {
        let call_id = call_id.into();
        self.calls
            .entry(call_id.clone())
            .or_insert_with(|| ToolCallRecord {
                call_id,
                name: name.into(),
                connection,
                epoch,
                known_by: None,
                in_session: true,
                status: ToolCallStatus::Running,
                blocking: true,
            });
    }

    /// Sets the status of `call_id`; returns `false` for an unknown id. A cancelled call stays
    /// cancelled.
    pub fn set_status(&mut self, call_id: &str, status: ToolCallStatus) -> bool {
        match self.calls.get_mut(call_id) {
            Some(call) => {
                if call.status != ToolCallStatus::Cancelled {
                    call.status = status;
                }
                true
            }
            None => false,
        }
    }

    /// Records whether the model waits for `call_id`'s result; returns `false` for an
    /// unknown id.
    pub fn set_blocking(&mut self, call_id: &str, blocking: bool) -> bool {
        match self.calls.get_mut(call_id) {
            Some(call) => {
                call.blocking = blocking;
                true
            }
            None => false,
        }
    }

    /// Whether the model waits for `call_id`'s result (unknown calls: `true`).
    pub fn is_blocking(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_none_or(|call| call.blocking)
    }

    /// Forgets calls that can no longer matter: answered or cancelled calls of other sessions.
    pub fn prune(&mut self, current: SessionEpoch) {
        self.calls.retain(|_, call| {
            call.epoch == current
                || matches!(call.status, ToolCallStatus::Running | ToolCallStatus::Lost)
        });
    }

    /// A call restored from a store: known to handles from `known_by` on, not in any session
    /// this process is connected to, with `status`.
    pub(crate) fn restored(
        &mut self,
        call_id: &str,
        known_by: Option<HandleSerial>,
        status: ToolCallStatus,
    ) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.known_by = known_by;
            call.in_session = false;
            call.status = status;
        }
    }

    /// A resumable handle arrived on `connection`: it includes every call seen before it there.
    pub(crate) fn on_handle(&mut self, connection: ConnectionId, serial: HandleSerial) {
        for call in self.calls.values_mut() {
            if call.connection == connection && call.known_by.is_none() {
                call.known_by = Some(serial);
            }
        }
    }

    /// A connection resumed from `handle` (or started fresh, `None`).
    pub(crate) fn on_connect(&mut self, handle: Option<&HandleRecord>) {
        let known: Vec<bool> = self
            .calls
            .values()
            .map(|call| {
                handle.is_some_and(|h| {
                    call.epoch == h.epoch && call.known_by.is_some_and(|by| by <= h.serial)
                })
            })
            .collect();
        for (call, known) in self.calls.values_mut().zip(known) {
            call.in_session = known;
            if !known {
                // The new session's timeline branches off before the call (or starts anew):
                // handles it issues do not hold the call, whatever their serial.
                call.known_by = None;
            }
        }
    }
}
