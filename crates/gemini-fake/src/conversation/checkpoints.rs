//! Resumption updates: when handles are issued and which snapshot they capture.

use super::*;

impl Conversation {
    pub(super) fn resumption_on(&self) -> bool {
        self.setup.as_ref().is_some_and(|s| s.resumption.is_some())
    }

    pub(super) fn transparent(&self) -> bool {
        self.setup
            .as_ref()
            .and_then(|s| s.resumption.as_ref())
            .is_some_and(|r| r.transparent)
    }

    /// Remembers the model state as of the current message (for lagging handles).
    pub(super) fn record_ring(&mut self) {
        let Some(state) = self.with_session(|s| s.state.clone()) else {
            return;
        };
        match self.ring.back_mut() {
            Some((index, stored)) if *index == self.index => *stored = state,
            _ => self.ring.push_back((self.index, state)),
        }
        let keep = usize::try_from(self.shared.config.handle_lag)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while self.ring.len() > keep {
            self.ring.pop_front();
        }
    }

    /// The message index a handle issued now covers, with the configured lag.
    pub(super) fn covered_index(&self) -> u64 {
        self.index
            .saturating_sub(self.shared.config.handle_lag)
            .max(self.last_reacted)
    }

    pub(super) fn reported_index(&self, covered: u64) -> Option<u64> {
        if self.transparent() {
            self.shared.config.index_convention.report(covered)
        } else {
            None
        }
    }

    pub(super) fn not_resumable(&mut self) {
        if self.resumption_on() {
            let reported = self.reported_index(self.covered_index());
            self.out.push(outbound::resumption_update(None, reported));
        }
    }

    /// Issues a resumable update with a new handle when the session is idle.
    pub(super) fn offer_handle(&mut self) {
        if !self.resumption_on() || !matches!(self.turn, TurnState::Idle) {
            return;
        }
        if self.deferred_turn || !self.deferred_answers.is_empty() {
            // The model owes an answer (deferred behind a turn the user's speech cut off):
            // it is not idle, and a resume from here would lose that answer.
            return;
        }
        let Some(session) = self.session else {
            return;
        };
        if self.shared.read(|state| state.faults.withhold_handles) {
            return;
        }
        let covered = self.covered_index();
        let snapshot = self
            .ring
            .iter()
            .rev()
            .find(|(index, _)| *index <= covered)
            .or(self.ring.front())
            .map(|(index, state)| (*index, state.clone()));
        let Some((covered, snapshot)) = snapshot else {
            return;
        };
        let connection = self.connection;
        let now = self.shared.now();
        let handle = self.shared.update(|state| {
            let context_len = snapshot.context.len();
            let handle = state.handles.issue(session, snapshot, now);
            if let Some(s) = state.sessions.get_mut(&session) {
                s.handles_issued.push(IssuedHandle {
                    handle: handle.clone(),
                    connection,
                    covers_index: covered,
                    context_len,
                    issued_at: now,
                });
            }
            handle
        });
        let reported = self.reported_index(covered);
        self.out
            .push(outbound::resumption_update(Some(handle), reported));
    }
}
