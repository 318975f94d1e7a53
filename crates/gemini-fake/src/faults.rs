//! Fault injection from the test's side.

use std::sync::Arc;
use std::time::Duration;

use crate::shared::{Control, Shared};

/// When a scheduled fault fires. Scheduled faults form a queue: only the head is armed, and
/// each fires once, in the order scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// When the next `setup` frame arrives, before it is answered.
    SetupReceived,
    /// Right after the next `setupComplete` is sent.
    SetupCompleteSent,
    /// After the N-th client message (not counting `setup`) received from the moment this fault
    /// becomes the head of the queue, once that message has been processed.
    ClientMessages(u32),
}

/// What a scheduled fault does to the connection that fired it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Close with this code and reason.
    Close(u16, String),
    /// Send `goAway` with this `timeLeft` (the connection then ends at the deadline with the
    /// configured lifetime close).
    GoAway(Duration),
}

/// Fault injection handle (cheap to clone). Every method acts at once; methods addressed to
/// connections act on every open connection.
#[derive(Debug, Clone)]
pub struct Faults {
    pub(crate) shared: Arc<Shared>,
}

impl Faults {
    /// Drops every open connection without a close frame (TCP reset); clients see 1006.
    pub fn drop_connections(&self) {
        self.shared.read(|state| state.broadcast(&Control::Drop));
    }

    /// Closes every open connection with this code and reason.
    pub fn close_connections(&self, code: u16, reason: &str) {
        self.shared
            .read(|state| state.broadcast(&Control::Close(code, reason.to_owned())));
    }

    /// The next setup that carries a handle is closed with this code and reason (typically 1007
    /// `Request contains an invalid argument.` or 1011), whatever the handle.
    pub fn refuse_next_resume(&self, code: u16, reason: &str) {
        self.shared.update(|state| {
            state.faults.refuse_next_resume = Some((code, reason.to_owned()));
        });
    }

    /// From now on, every client message after `setup` whose JSON contains `needle` is refused
    /// unprocessed: the connection closes with this code and reason, as the service refuses a
    /// payload it cannot take (typically 1007 `Request contains an invalid argument.`). The
    /// frame is recorded as received. An empty `needle` ends the fault.
    pub fn reject_messages_containing(&self, needle: &str, code: u16, reason: &str) {
        self.shared.update(|state| {
            state.faults.reject_containing =
                (!needle.is_empty()).then(|| (needle.to_owned(), code, reason.to_owned()));
        });
    }

    /// Forgets every handle issued so far: resuming from any of them closes with 1007.
    pub fn expire_all_handles(&self) {
        self.shared.update(|state| state.handles.expire_all());
    }

    /// Stops issuing handles (no resumable update is sent; `{}` updates still are) until
    /// [`Faults::release_handles`]. Lets a test drop a connection "before any handle".
    pub fn withhold_handles(&self) {
        self.shared
            .update(|state| state.faults.withhold_handles = true);
    }

    /// Ends [`Faults::withhold_handles`]; the next idle point issues a handle again.
    pub fn release_handles(&self) {
        self.shared
            .update(|state| state.faults.withhold_handles = false);
    }

    /// Refuses the next `count` WebSocket upgrades with this HTTP status (dial failures).
    pub fn refuse_upgrades(&self, count: u32, status: u16) {
        self.shared.update(|state| {
            state.faults.refuse_upgrades = (count > 0).then_some((count, status));
        });
    }

    /// Leaves the next `count` `setup` frames unanswered (replacing any count not used up):
    /// each is recorded and never acted on, and the connection it came on stays open and
    /// ignores whatever else arrives, until the client gives up on it (its setup timeout).
    pub fn ignore_setups(&self, count: u32) {
        self.shared
            .update(|state| state.faults.ignore_setups = count);
    }

    /// Stops sending data frames, on open and future connections, until [`Faults::unstall`].
    /// Frames produced meanwhile are held and sent in order afterwards; closes still happen.
    pub fn stall(&self) {
        self.set_sending(|faults| faults.stalled = true);
    }

    /// Ends a [`Faults::stall`].
    pub fn unstall(&self) {
        self.set_sending(|faults| faults.stalled = false);
    }

    /// Sends every data frame this long after it was produced (order kept); `Duration::ZERO`
    /// ends the delay.
    pub fn delay_frames(&self, delay: Duration) {
        self.set_sending(|faults| faults.delay = delay);
    }

    /// Sends a frame that is not valid JSON (`{"serverContent": `) on every open connection.
    pub fn send_malformed(&self) {
        self.send_raw(b"{\"serverContent\": ".to_vec(), true);
    }

    /// Sends this payload as one frame (binary or text), unchecked, on every open connection.
    pub fn send_raw(&self, payload: Vec<u8>, binary: bool) {
        self.shared
            .read(|state| state.broadcast(&Control::SendRaw(payload, binary)));
    }

    /// Sends `goAway` with this `timeLeft` now; each connection then ends at that deadline with
    /// the configured lifetime close.
    pub fn go_away(&self, time_left: Duration) {
        self.shared
            .read(|state| state.broadcast(&Control::GoAway(time_left)));
    }

    /// Queues a fault that fires on a later event (see [`Trigger`]).
    pub fn schedule(&self, trigger: Trigger, action: FaultAction) {
        self.shared
            .update(|state| state.faults.scheduled.push_back((trigger, action)));
    }

    /// Removes every scheduled fault that has not fired.
    pub fn clear_scheduled(&self) {
        self.shared.update(|state| {
            state.faults.scheduled.clear();
            state.faults.counted = 0;
        });
    }

    /// Closes every connection at this age (from its upgrade) with 1011 `Deadline expired
    /// before operation could complete.` and no `goAway`, whatever its family and compression;
    /// `None`: never. Acts on open connections too (one already older closes at once). Until
    /// called, the configuration's age holds ([`FakeConfig::with_hard_close`](crate::FakeConfig::with_hard_close),
    /// by default 58:00 on 3.8: docs/protocol.md section 10.1).
    pub fn hard_close_at(&self, age: Option<Duration>) {
        self.shared.update(|state| {
            state.faults.hard_close = Some(age);
            state.broadcast(&Control::Wake);
        });
    }

    /// Closes every open connection now as the hard close at an age does: 1011 `Deadline
    /// expired before operation could complete.`, no `goAway`, and the session marked for
    /// [`refuse_resumes_after_hard_close`](Self::refuse_resumes_after_hard_close). For
    /// simulators, whose schedules must settle with no timer pending.
    pub fn hard_close_now(&self) {
        self.shared
            .read(|state| state.broadcast(&Control::HardClose));
    }

    /// The next `count` resumes of sessions whose last connection ended with a hard close are
    /// refused with 1007 `Request contains an invalid argument.` (reported after 58:00 closes;
    /// the session is not lost: a later resume works).
    pub fn refuse_resumes_after_hard_close(&self, count: u32) {
        self.shared
            .update(|state| state.faults.refuse_after_hard_close = count);
    }

    /// Answers WebSocket pings `delay` late while data flows (the connection sent a data frame
    /// within the last second); a quiet connection answers at once. `Duration::ZERO` ends it.
    /// The socket server holds each ping back in its WebSocket; [`SimServer`](crate::SimServer)
    /// sees no pings: a simulator models the pong itself, with
    /// [`SimServer::pong_delay`](crate::SimServer::pong_delay).
    pub fn delay_pongs(&self, delay: Duration) {
        self.shared.update(|state| state.faults.pong_delay = delay);
    }

    /// The delay set by [`Faults::delay_pongs`].
    #[must_use]
    pub fn pong_delay(&self) -> Duration {
        self.shared.read(|state| state.faults.pong_delay)
    }

    /// Issues an ephemeral token (presented as `Authorization: Token …` or `?access_token=`)
    /// that opens `uses` connections within `valid_for` from now. Every connection spends one
    /// use, a resume too (as reported, docs/protocol.md section 7.9: a `uses: 1` token cannot
    /// resume); past them the server closes at once with 1011 `Token has been used too many
    /// times`, past its expiry with 1007 `Token has expired.`. A valid token is accepted
    /// whatever API key is configured.
    pub fn issue_token(&self, token: &str, uses: u32, valid_for: Duration) {
        let expires_at = self.shared.now() + valid_for;
        self.shared.update(|state| {
            state.faults.tokens.insert(
                token.to_owned(),
                crate::shared::EphemeralToken {
                    uses_left: uses,
                    expires_at,
                },
            );
        });
    }

    /// Uses left on an ephemeral token (`None`: never issued).
    #[must_use]
    pub fn token_uses_left(&self, token: &str) -> Option<u32> {
        self.shared
            .read(|state| state.faults.tokens.get(token).map(|t| t.uses_left))
    }

    fn set_sending(&self, change: impl FnOnce(&mut crate::shared::FaultState)) {
        self.shared.update(|state| {
            change(&mut state.faults);
            state.broadcast(&Control::Wake);
        });
    }
}
