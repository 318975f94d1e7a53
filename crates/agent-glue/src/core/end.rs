//! How a session ends on its own: a give-up plan, or a failure no retry fixes. Both go
//! through the policy, and nothing still owed ends silently.

use std::collections::HashSet;

use ctx_model::{ChatContext, ItemId};
use resume_policy::{DivergenceReason, FatalCause, Millis, OpId, ResumePlan, Trigger};

use super::SessionCore;
use crate::events::SessionEvent;
use crate::session_error::SessionError;

impl SessionCore {
    /// Ends the session for `failure`, which no other attempt can fix (a refused key, a spent
    /// quota, a rejected `setup`, a first connection that cannot succeed): the policy plans the
    /// end for [`Trigger::Fatal`], its divergences say what was not delivered, and
    /// [`SessionEvent::Closed`] carries `failure`.
    ///
    /// The end is final even if the policy plans another connection (the credential, the
    /// quota and the configuration do not change within a session, so it would fail the same
    /// way, in a loop): the application is warned, and what the plan leaves live is reported
    /// as given up.
    pub(super) fn end_fatal(&mut self, now: Millis, cause: FatalCause, failure: SessionError) {
        let plan = self.make_plan(now, Trigger::Fatal { cause });
        if !plan.is_give_up() {
            self.emit(SessionEvent::Warning(format!(
                "the resume policy planned another connection after a failure no retry fixes \
                 ({cause:?}); the session ends"
            )));
        }
        self.end(Some(&plan), failure);
    }

    /// Ends the session with `error` after `plan` (a give-up plan, or the plan for a fatal
    /// end): what it supersedes and reports is recorded and reported first; then the
    /// operations still live, which a custom policy may have left out, are reported as given
    /// up; then the items of `L` that no server session the application could resume
    /// provably holds. Without a plan (the policy's own plan could not be executed) all of
    /// that is reported by the second and third steps.
    pub(super) fn end(&mut self, plan: Option<&ResumePlan>, error: SessionError) {
        let mut named: HashSet<ItemId> = HashSet::new();
        if let Some(plan) = plan {
            self.ledger.outbox.record_plan(plan);
            self.report_divergences(plan);
            named.extend(
                plan.undeliverable
                    .iter()
                    .flat_map(|d| d.items.iter().cloned()),
            );
        }
        self.report_still_live(&mut named);
        self.report_unheld(&named);
        self.shutdown(Some(error));
    }

    /// The live operations, reported as given up (and marked so).
    fn report_still_live(&mut self, named: &mut HashSet<ItemId>) {
        let live: Vec<&resume_policy::Operation> = self.ledger.outbox.live().collect();
        if live.is_empty() {
            return;
        }
        let operations: Vec<OpId> = live.iter().map(|op| op.id).collect();
        let items: Vec<ItemId> = live
            .iter()
            .flat_map(|op| op.kind.item_ids())
            .cloned()
            .collect();
        let calls: Vec<String> = live
            .iter()
            .filter_map(|op| op.kind.call_id())
            .map(str::to_owned)
            .collect();
        let reported = self
            .ledger
            .outbox
            .report(&operations, DivergenceReason::GaveUp);
        self.checked("reporting the operations left at the end", reported);
        named.extend(items.iter().cloned());
        self.emit(SessionEvent::Divergence {
            operations,
            items,
            calls,
            why: DivergenceReason::GaveUp,
        });
    }

    /// Items the newest handle does not hold (or holds in an older version) are not provably
    /// in any server session the application could resume: reported too, unless a divergence
    /// named them already.
    fn report_unheld(&mut self, named: &HashSet<ItemId>) {
        // Without a handle (refused, expired, or none yet) nothing is held.
        let empty = ChatContext::new();
        let held = match self.ledger.tracker.handle() {
            Some(_) => self.ledger.mirror.held(),
            None => &empty,
        };
        let unheld: Vec<ItemId> = self
            .ledger
            .desired
            .iter()
            .filter(|item| held.get(item.id()) != Some(*item) && !named.contains(item.id()))
            .map(|item| item.id().clone())
            .collect();
        if !unheld.is_empty() {
            self.emit(SessionEvent::Divergence {
                operations: Vec::new(),
                items: unheld,
                calls: Vec::new(),
                why: DivergenceReason::GaveUp,
            });
        }
    }
}

/// What the policy is told about a failure the core ends the session for: authentication and
/// quota by what failed (a credential source's permanent failure is authentication), anything
/// else as `otherwise`.
pub(super) fn fatal_cause(failure: &SessionError, otherwise: FatalCause) -> FatalCause {
    match failure {
        SessionError::Auth { .. }
        | SessionError::Credential {
            permanent: true, ..
        } => FatalCause::Auth,
        SessionError::Quota { .. } => FatalCause::Quota,
        _ => otherwise,
    }
}
