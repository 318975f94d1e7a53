//! What a resume in another process needs (docs/design.md section 8), as the core shows it
//! and takes it back: a snapshot of the persisted part of the ledger ([`Persisted`]), a cheap
//! mark that changes whenever that part changes in a way that matters ([`PersistMark`]), and
//! a core that starts from a snapshot another process saved. No store, no IO: the shell saves
//! and loads (`ownership.rs`, feature `store`).

use ctx_model::{ChatContext, Item};
use resume_policy::{
    ConnectionId, CoverageTracker, HandleRecord, HandleSerial, Mirror, MirrorVersion, OpId, OpKind,
    Operation, Outbox, ToolCallStatus, Trigger,
};

use super::SessionCore;
use crate::events::SessionEvent;

/// The persisted part of a session: the newest adopted handle with its coverage, the version
/// of `L` it was taken at, what the handle provably holds, the live operations (queued, or
/// sent and not covered), and `L`. A store keeps it as a `StoredSession`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Persisted {
    /// The newest adopted handle (`None` when there is none, or the core distrusts it).
    pub handle: Option<HandleRecord>,
    /// The version of `L` ([`SessionCore::version`]) this snapshot holds.
    pub version: MirrorVersion,
    /// What the handle provably holds.
    pub held: ChatContext,
    /// The live operations, in queue order.
    pub outbox: Vec<Operation>,
    /// `L`.
    pub desired: ChatContext,
    /// The calls of `L` without a result that a session resumed from `handle` knows as calls
    /// (`None`: not known; then the calls `held` holds count).
    pub known_calls: Option<Vec<String>>,
    /// The calls of `L` the server cancelled.
    pub cancelled_calls: Vec<String>,
}

impl Persisted {
    /// A snapshot from its parts (as a store returns them).
    pub fn new(
        handle: Option<HandleRecord>,
        version: MirrorVersion,
        held: ChatContext,
        outbox: Vec<Operation>,
        desired: ChatContext,
    ) -> Self {
        Self {
            handle,
            version,
            held,
            outbox,
            desired,
            known_calls: None,
            cancelled_calls: Vec::new(),
        }
    }

    /// The same snapshot with what it knows of its calls without a result.
    #[must_use]
    pub fn with_calls(mut self, known: Option<Vec<String>>, cancelled: Vec<String>) -> Self {
        self.known_calls = known;
        self.cancelled_calls = cancelled;
        self
    }
}

/// Changes whenever the persisted part of the session changes in a way a resume depends on:
/// `L` changed, an operation was queued, delivered (covered), superseded or reported, another
/// handle was adopted or the adopted one went stale, the session ended. Cheap to take (no
/// clone): the shell compares it with the mark of its last save to decide whether to save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistMark {
    version: u64,
    next_op: OpId,
    live: usize,
    handle: Option<(HandleSerial, bool)>,
    closed: bool,
    cancelled: usize,
}

impl SessionCore {
    /// The mark of the persisted state now.
    pub fn persist_mark(&self) -> PersistMark {
        PersistMark {
            version: self.version,
            next_op: self.ledger.outbox.next_id(),
            live: self.ledger.outbox.live().count(),
            handle: self
                .persisted_handle()
                .map(|handle| (handle.serial, handle.is_stale())),
            closed: self.closed.is_some(),
            cancelled: self
                .ledger
                .tracker
                .tool_calls()
                .iter()
                .filter(|call| call.status == ToolCallStatus::Cancelled)
                .count(),
        }
    }

    /// The persisted state now: what another process needs to resume this session.
    pub fn persisted(&self) -> Persisted {
        let calls = self.ledger.tracker.tool_calls();
        let pending = self.ledger.desired.pending_calls();
        let handle = self.persisted_handle();
        Persisted {
            handle: handle.cloned(),
            version: MirrorVersion(self.version),
            held: self.ledger.mirror.held().clone(),
            outbox: self.ledger.outbox.live().cloned().collect(),
            desired: self.ledger.desired.clone(),
            known_calls: handle.map(|handle| {
                pending
                    .iter()
                    .filter(|call| calls.known_to(&call.call_id, handle))
                    .map(|call| call.call_id.clone())
                    .collect()
            }),
            cancelled_calls: pending
                .iter()
                .filter(|call| calls.is_cancelled(&call.call_id))
                .map(|call| call.call_id.clone())
                .collect(),
        }
    }

    /// The handle a resume may use: none while a ledger step failed (the next plan is fresh).
    fn persisted_handle(&self) -> Option<&HandleRecord> {
        self.ledger
            .tracker
            .handle()
            .filter(|_| !self.handle_distrusted)
    }

    /// Takes over a session another process saved (scenario S31), before the first plan.
    ///
    /// The first connection is planned for [`Trigger::ProcessRestart`]: `stored` is the saved
    /// version, and this process's context (`L`, given to the builder) holds that version
    /// exactly when it equals the saved `L`. Then the ledger continues from the saved one (the
    /// handle and what it holds, the live operations, the tool calls `L` shows) and the
    /// policy resumes without a seed. Otherwise `L` stays the given context, queued whole as
    /// for any new session, the policy starts fresh and seeds it, and a
    /// [`SessionEvent::Divergence`] with
    /// [`StoredContextMismatch`](resume_policy::DivergenceReason::StoredContextMismatch) names
    /// the saved items the given context does not hold.
    pub(super) fn restore(&mut self, stored: Persisted) -> Trigger {
        let matches = stored.desired == self.ledger.desired;
        let current = if matches {
            stored.version
        } else {
            MirrorVersion(stored.version.0.wrapping_add(1))
        };
        let trigger = Trigger::ProcessRestart {
            stored: stored.version,
            current,
        };
        // Connection ids of this process start above every id the stored state names, so that
        // none is taken for a connection of the saving process.
        let highest = stored
            .handle
            .iter()
            .map(|h| h.connection)
            .chain(
                stored
                    .outbox
                    .iter()
                    .filter_map(|op| op.state.sent_at().map(|at| at.connection)),
            )
            .max()
            .unwrap_or(ConnectionId(0));
        self.next_connection = self.next_connection.max(highest.0);
        if let Some(handle) = stored.handle.clone() {
            let session = &self.config.session;
            self.ledger.tracker = CoverageTracker::restore(
                handle,
                session.transparent && self.caps.transparent_resumption,
            )
            .with_transcripts(session.transcription)
            .with_manual_activity(!session.automatic_activity_detection)
            .with_end_of_speech_silence(session.end_of_speech_silence);
            self.ledger.mirror = Mirror::restore(stored.held.clone());
        }
        if !matches {
            // Calls of the given context without their output: as `new` inherited them, now
            // in the restored tracker (known to no handle).
            for call in self.ledger.desired.pending_calls() {
                self.ledger
                    .tracker
                    .on_inherited_call(&call.call_id, &call.name);
            }
            let missing: Vec<_> = stored
                .desired
                .ids()
                .filter(|id| !self.ledger.desired.contains(*id))
                .cloned()
                .collect();
            let calls = stored
                .desired
                .pending_calls()
                .into_iter()
                .filter(|call| !self.ledger.desired.contains(&call.id))
                .map(|call| call.call_id.clone())
                .collect();
            self.emit(SessionEvent::Divergence {
                operations: Vec::new(),
                items: missing,
                calls,
                why: resume_policy::DivergenceReason::StoredContextMismatch,
            });
            return trigger;
        }
        self.version = stored.version.0;
        if stored.handle.is_none() {
            // Nothing to resume: the first connection is fresh and seeds `L`, which holds every
            // stored operation's items, as `new` queued it.
            return trigger;
        }
        // The given context was queued whole, as for a new session: the stored operations
        // replace that (their items are in `L` already, and what the handle holds needs no
        // delivery). The new `setup` carries this process's instructions and tools.
        let ops = stored.outbox.into_iter().filter(|op| {
            op.state.is_live()
                && !matches!(
                    op.kind,
                    OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. }
                )
        });
        self.ledger.outbox = Outbox::from_operations(ops);
        // Calls with a final output (an interim one leaves the call open: nobody here will
        // send the rest, so the policy answers or reports it).
        let pending: std::collections::HashSet<&str> = self
            .ledger
            .desired
            .pending_calls()
            .into_iter()
            .map(|call| call.call_id.as_str())
            .collect();
        let calls: Vec<(String, String, bool, ToolCallStatus)> = self
            .ledger
            .desired
            .iter()
            .filter_map(|item| match item {
                Item::FunctionCall(call) => Some((
                    call.call_id.clone(),
                    call.name.clone(),
                    // Known as a call to a session resumed from the handle (a call it holds
                    // only as seeded history takes no `toolResponse`).
                    match &stored.known_calls {
                        Some(known) => known.contains(&call.call_id),
                        None => stored.held.contains(&call.id),
                    },
                    if !pending.contains(call.call_id.as_str()) {
                        ToolCallStatus::Answered
                    } else if stored.cancelled_calls.contains(&call.call_id) {
                        // The server cancelled it: never answered.
                        ToolCallStatus::Cancelled
                    } else {
                        // Nobody in this process runs it: the policy answers or reports it.
                        ToolCallStatus::Lost
                    },
                )),
                _ => None,
            })
            .collect();
        for (call_id, name, held, status) in calls {
            self.ledger
                .tracker
                .on_restored_call(&call_id, &name, held, status);
        }
        trigger
    }
}

#[cfg(test)]
mod tests {
    use gemini_transport::wire::ServerMessage;
    use gemini_transport::{CloseInfo, Endpoint, SecretString};
    use resume_policy::{ConnectionId, DivergenceReason, Millis};

    use super::*;
    use crate::LiveSessionBuilder;
    use crate::core::{Action, Command};

    const MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";

    fn builder() -> LiveSessionBuilder {
        LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), MODEL)
    }

    fn message(json: &str) -> ServerMessage {
        ServerMessage::from_json(json.as_bytes()).unwrap()
    }

    /// The next `Open`: its connection and its `setup` as JSON.
    fn opened(core: &mut SessionCore) -> (ConnectionId, String) {
        loop {
            match core.poll_action() {
                Some(Action::Open { connection, setup }) => return (connection, setup.to_json()),
                Some(_) => {}
                None => panic!("no connection requested"),
            }
        }
    }

    /// A typed turn answered on `connection`, then a resumable handle `token`.
    fn exchange(core: &mut SessionCore, connection: ConnectionId, text: &str, token: &str) {
        core.command(Millis(1), Command::Text(text.to_owned()))
            .unwrap();
        core.handle_message(
            Millis(2),
            connection,
            message(r#"{"serverContent":{"turnComplete":true}}"#),
        );
        let update =
            format!(r#"{{"sessionResumptionUpdate":{{"newHandle":"{token}","resumable":true}}}}"#);
        core.handle_message(Millis(3), connection, message(&update));
    }

    /// A session that went through two connections, its newest handle `h2` on the second.
    fn saved() -> Persisted {
        let mut core = builder().into_core(Millis(0), 1).unwrap();
        let (first, _) = opened(&mut core);
        core.handle_setup_complete(Millis(0), first);
        exchange(&mut core, first, "one", "h1");
        core.handle_closed(
            Millis(4),
            first,
            CloseInfo::abnormal("connection reset", false),
            None,
        );
        let second = loop {
            if let Some(Action::Open { connection, .. }) = core.poll_action() {
                break connection;
            }
            let at = core.poll_timeout().unwrap();
            core.handle_timeout(at);
        };
        core.handle_setup_complete(Millis(600), second);
        exchange(&mut core, second, "two", "h2");
        let mark = core.persist_mark();
        let state = core.persisted();
        assert_eq!(
            core.persist_mark(),
            mark,
            "taking the state changes nothing"
        );
        core.command(Millis(700), Command::Text("three".to_owned()))
            .unwrap();
        assert_ne!(
            core.persist_mark(),
            mark,
            "a queued turn is a change to save"
        );
        assert_eq!(state.handle.as_ref().map(|h| h.connection), Some(second));
        state
    }

    #[test]
    fn a_core_given_the_saved_context_resumes_from_the_saved_handle_without_a_seed() {
        let state = saved();
        let connection = state.handle.as_ref().unwrap().connection;
        let mut core = builder()
            .initial_context(state.desired.clone())
            .resume_from(state.clone())
            .into_core(Millis(0), 2)
            .unwrap();
        assert_eq!(core.version(), state.version.0, "L's version goes on");
        let (next, setup) = opened(&mut core);
        assert!(setup.contains(r#""handle":"h2""#), "{setup}");
        // Its connections are numbered after every one the saved state names.
        assert!(next > connection, "{next:?} after {connection:?}");
        core.handle_setup_complete(Millis(1), next);
        assert_eq!(core.poll_transmit(), None, "a seed or a replay");
        assert_eq!(core.chat_ctx(), &state.desired);
        assert!(
            !std::iter::from_fn(|| core.poll_event())
                .any(|e| matches!(e, SessionEvent::Divergence { .. })),
        );
    }

    /// A call `L` shows with only an interim result is still open: restored as lost (the
    /// policy answers or reports it), not as answered, which would leave the server's call
    /// open with nobody to close it.
    #[test]
    fn a_call_with_only_an_interim_result_is_restored_as_lost() {
        use ctx_model::{Delivery, FunctionCall, FunctionOutput};
        let saved_state = saved();
        let mut desired = saved_state.desired.clone();
        desired
            .push(Item::FunctionCall(FunctionCall::new(
                "call-x",
                "k1",
                "get_weather",
                serde_json::json!({}),
            )))
            .unwrap();
        let interim = FunctionOutput::new("out-x", "k1", "get_weather", serde_json::json!({}))
            .with_delivery(Delivery::non_blocking(None, true));
        desired.push(Item::FunctionOutput(interim)).unwrap();
        let state = Persisted::new(
            saved_state.handle.clone(),
            saved_state.version,
            saved_state.held.clone(),
            saved_state.outbox.clone(),
            desired.clone(),
        );
        let core = builder()
            .initial_context(desired)
            .resume_from(state)
            .into_core(Millis(0), 2)
            .unwrap();
        let status = core.ledger.tracker.tool_calls().get("k1").map(|c| c.status);
        assert_eq!(status, Some(ToolCallStatus::Lost));
    }

    #[test]
    fn a_core_given_another_context_starts_fresh_and_names_what_it_leaves_behind() {
        let state = saved();
        // The application kept the first turn only.
        let kept = state.desired.prefix(1);
        let left: Vec<_> = state.desired.ids().skip(1).cloned().collect();
        assert_eq!(left.len(), 1, "{:?}", state.desired);
        let mut core = builder()
            .initial_context(kept.clone())
            .resume_from(state)
            .into_core(Millis(0), 2)
            .unwrap();
        let reported: Vec<_> = std::iter::from_fn(|| core.poll_event())
            .filter_map(|e| match e {
                SessionEvent::Divergence { items, why, .. } => Some((items, why)),
                _ => None,
            })
            .collect();
        assert_eq!(reported, [(left, DivergenceReason::StoredContextMismatch)]);
        let (next, setup) = opened(&mut core);
        assert!(!setup.contains("handle\":\""), "{setup}");
        core.handle_setup_complete(Millis(1), next);
        let seed = core.poll_transmit().expect("a seed").message.to_json();
        assert!(seed.contains("one") && !seed.contains("two"), "{seed}");
        assert_eq!(core.poll_transmit(), None, "one seed");
        assert_eq!(core.chat_ctx(), &kept);
    }

    #[test]
    fn a_saved_session_without_a_handle_is_seeded_from_its_context() {
        let context = ChatContext::builder()
            .user("u1", "first question")
            .model("m1", "first answer")
            .build()
            .unwrap();
        let state = Persisted::new(
            None,
            MirrorVersion(3),
            ChatContext::new(),
            Vec::new(),
            context.clone(),
        );
        let mut core = builder()
            .initial_context(context.clone())
            .resume_from(state)
            .into_core(Millis(0), 2)
            .unwrap();
        assert_eq!(core.version(), 3);
        let (next, setup) = opened(&mut core);
        assert!(!setup.contains("handle\":\""), "{setup}");
        core.handle_setup_complete(Millis(1), next);
        let seed = core.poll_transmit().expect("a seed").message.to_json();
        assert!(
            seed.contains("first question") && seed.contains("first answer"),
            "{seed}"
        );
        assert_eq!(core.poll_transmit(), None, "one seed");
        assert!(
            !std::iter::from_fn(|| core.poll_event())
                .any(|e| matches!(e, SessionEvent::Divergence { .. })),
        );
    }
}
