//! The connections' lifecycle: the core's actions started in order (a `Close` at once, an
//! `Open` once no socket is left), and the end of a connection (its unconfirmed audio
//! reported, its socket released, the core told).

use gemini_transport::CloseInfo;
use resume_policy::{ConnectionId, Millis};

use super::{AudioLoss, Conduit, Order};
use crate::core::Action;
use crate::{SessionEvent, TransportCause};

/// How a line ended.
pub(super) enum End {
    /// Its reader saw the end.
    Closed(CloseInfo, Option<TransportCause>),
    /// The conduit judged it lost (1006).
    Lost(String),
    /// The closing handshake was given up, or nobody wants the connection.
    Abandoned,
}

impl Conduit {
    /// Moves what the core produced into the queues and starts the actions that may start.
    pub(super) fn drain(&mut self, now: Millis) {
        while let Some(t) = self.core.poll_transmit() {
            if self
                .line
                .as_ref()
                .is_some_and(|l| l.id == t.connection && l.healthy())
            {
                self.out.message(t.connection, t.message);
            }
            // Else it is lost with its connection: the ledger replays what it must.
        }
        while let Some(event) = self.core.poll_event() {
            if matches!(event, SessionEvent::Closed { .. }) {
                self.closed_event = Some(Box::new(event));
            } else {
                self.events.push_back(event);
            }
        }
        while let Some(action) = self.core.poll_action() {
            self.actions.push_back(action);
        }
        self.run_actions(now);
        if self.core.closed().is_some() {
            if let Some(connection) = self.dialing.take() {
                self.dial_deadline = None;
                self.orders.push_back(Order::Release { connection });
            }
        }
        if self.line.is_none() {
            if let Some(closed) = self.closed_event.take() {
                self.events.push_back(*closed);
                self.finished = true;
            }
        }
        self.core_deadline = self.core.poll_timeout();
    }

    /// Starts the core's actions in order: a `Close` at once (its close frame queued behind
    /// nothing else of its connection), an `Open` once no socket is left.
    fn run_actions(&mut self, now: Millis) {
        while let Some(action) = self.actions.front() {
            match action {
                Action::Close {
                    connection,
                    code,
                    reason,
                } => {
                    let (connection, code, reason) = (*connection, *code, *reason);
                    self.actions.pop_front();
                    self.close(now, connection, code, reason);
                }
                Action::Open { .. } if self.core.closed().is_some() => {
                    self.actions.pop_front();
                }
                Action::Open { .. } if self.line.is_some() || self.dialing.is_some() => break,
                Action::Open { .. } => {
                    if let Some(Action::Open { connection, setup }) = self.actions.pop_front() {
                        self.dialing = Some(connection);
                        let after = u64::try_from(self.timing.setup_timeout.as_millis())
                            .unwrap_or(u64::MAX);
                        self.dial_deadline = Some(Millis(now.0.saturating_add(after)));
                        self.orders.push_back(Order::Dial { connection, setup });
                    }
                }
            }
        }
    }

    /// The core closes `connection` (and has forgotten it).
    fn close(&mut self, now: Millis, connection: ConnectionId, code: u16, reason: &'static str) {
        if self.dialing == Some(connection) {
            self.dialing = None;
            self.dial_deadline = None;
            self.orders.push_back(Order::Release { connection });
            return;
        }
        let Some(line) = self
            .line
            .as_mut()
            .filter(|l| l.id == connection && l.closing.is_none())
        else {
            return;
        };
        line.close(now, code, reason);
        let failed = line.failed;
        // What was queued for it and not written goes to the next connection instead.
        let audio = self.out.purge(connection);
        self.unwritten(audio, true);
        if failed {
            self.end_line(now, End::Abandoned);
        } else {
            self.out.close(connection, code, reason);
        }
    }

    /// The current line ended: its unconfirmed audio is reported (unless `end` is the answer
    /// to our close), its socket released, what it did not write waits for the next
    /// connection, and the core is told if the connection was still its own.
    pub(super) fn end_line(&mut self, now: Millis, end: End) {
        let Some(line) = self.line.take() else {
            return;
        };
        let answered = matches!(&end, End::Closed(info, _) if line.answered(info));
        if !answered {
            let (connection, bytes) = (line.id, line.unconfirmed());
            let (_, _, mut staging) = self.audio_parts();
            staging
                .losses
                .report(bytes, || AudioLoss::Unconfirmed { connection, bytes });
        }
        self.orders.push_back(Order::Release {
            connection: line.id,
        });
        let audio = self.out.purge(line.id);
        self.unwritten(audio, true);
        if line.closing.is_some() {
            // The core forgot this connection; an authentication or quota close still concerns
            // it (the credential and the quota are the session's, not the connection's).
            if let End::Closed(info, cause) = end {
                if info.class == gemini_transport::CloseClass::AuthOrQuota {
                    self.core.handle_closed(now, line.id, info, cause);
                }
            }
            return;
        }
        let (info, cause) = match end {
            End::Closed(info, cause) => (info, cause),
            End::Lost(reason) => (CloseInfo::abnormal(reason, false), None),
            End::Abandoned => return,
        };
        tracing::debug!(connection = line.id.0, %info, "connection ended");
        self.core.handle_closed(now, line.id, info, cause);
    }
}
