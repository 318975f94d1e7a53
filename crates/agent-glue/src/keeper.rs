//! The lease keeper's decisions, sans IO (feature `store`; docs/design.md section 8): when to
//! renew the session's lease, when it counts as lost, when to save the session's persisted
//! state and what a store's answer means. No store, no clock, no tasks: the driver tells it
//! the time on its own monotonic clock (any origin, as a [`Duration`]), the session's
//! [`PersistMark`] and whether the session has finished, carries out its [`KeeperOrder`]s and
//! hands back the store's answers. The tokio shell (`ownership.rs`) drives it over a real
//! [`SessionStore`](session_store::SessionStore); the simulator (`session-sim`) drives the
//! same machine over a store on virtual time, with partitions and skewed clocks.
//!
//! The rules:
//!
//! - The owner's deadline is the TTL after it *sent* its last successful acquire or renew, on
//!   its own clock (the store's clock cannot be read). It renews every third of the TTL; a
//!   transient failure is retried a tenth of the TTL later.
//! - Every store call is bounded by [`close_by`](Keeper::close_by), a quarter of the TTL
//!   before the deadline: a renewal not answered by then, or not sent by then, loses the lease
//!   ([`KeeperOrder::Lose`]), and the session must close at once, so that its socket is gone
//!   before the store can grant the lease to anyone else.
//! - A renewal or save refused as [`Fenced`](session_store::Error::Fenced) (or any other
//!   non-transient refusal of a renewal) loses the lease too.
//! - Saves: whenever the mark differs from the last saved one (and from the one whose save
//!   just failed), at most one in flight; a failed save is tried again at the next change or
//!   after the next successful renewal.
//! - The end (the session finished for another reason than a lost lease): once the save in
//!   flight is answered, one final save, then the release, whatever the final save came to
//!   (break-before-make: the driver reports the session finished only once its socket is
//!   gone).

use std::time::Duration;

use resume_policy::Outbox;
use session_store::StoredSession;

use crate::conduit::{PersistMark, Persisted};

/// What the keeper asks its driver to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperOrder {
    /// Send a renewal of the lease, bounded by [`Keeper::close_by`]; answer with
    /// [`Keeper::on_renewal`].
    Renew,
    /// Save the session's persisted state as it is now (its mark is this one), bounded by
    /// [`Keeper::close_by`]; answer with [`Keeper::on_saved`]. During the end, the final save.
    Save(PersistMark),
    /// The lease is lost (or cannot be kept): close the session now, saying why. The keeper
    /// is done; nothing is saved or released.
    Lose(String),
    /// The final save was answered: release the lease. The keeper is done.
    Release,
}

/// What a renewal's answer came to.
#[derive(Debug)]
pub enum Renewed {
    /// Kept: the deadline moved on.
    Kept,
    /// A transient failure, tried again a tenth of the TTL later (until the deadline): warn.
    Retry(String),
    /// Lost: close the session now, saying why (with the store's refusal).
    Lost(String, session_store::Error),
}

/// What a save's answer came to.
#[derive(Debug)]
pub enum SaveOutcome {
    /// Saved.
    Saved,
    /// The final save was answered with this (the release follows whatever it says).
    Final(Result<(), session_store::Error>),
    /// Failed for another reason than a lost lease; `warn`: the first such failure since the
    /// last success or renewal (say it once).
    Failed {
        /// Say it.
        warn: bool,
        /// Why.
        err: session_store::Error,
    },
    /// Refused: the lease is lost; close the session now, saying why.
    Lost(String, session_store::Error),
}

/// The lease keeper of one session, from its acquire on (see the module notes).
#[derive(Debug, Clone)]
pub struct Keeper {
    ttl: Duration,
    deadline: Duration,
    next: Duration,
    /// A renewal in flight, sent then.
    renewing: Option<Duration>,
    saved: Option<PersistMark>,
    saving: Option<PersistMark>,
    /// The state whose save failed: tried again once it changes, or at the next renewal.
    failed: Option<PersistMark>,
    /// The session finished: the final save is ordered (or answered).
    ending: Option<bool>,
    done: bool,
}

impl Keeper {
    /// The keeper of a lease of `ttl` whose acquire was sent at `sent` (the driver's clock).
    pub fn new(ttl: Duration, sent: Duration) -> Self {
        Self {
            ttl,
            deadline: sent + ttl,
            next: sent + ttl / 3,
            renewing: None,
            saved: None,
            saving: None,
            failed: None,
            ending: None,
            done: false,
        }
    }

    /// The lease's time-to-live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The last moment the session may still be writing (and the bound of every store call):
    /// a quarter of the TTL before the deadline, room for the close frame.
    pub fn close_by(&self) -> Duration {
        self.deadline.saturating_sub(self.ttl / 4)
    }

    /// Whether the keeper is done (the lease lost, or released).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether a save is in flight.
    pub fn is_saving(&self) -> bool {
        self.saving.is_some()
    }

    /// When the keeper must be polled next, at the latest (`None`: done, or only answers are
    /// awaited).
    pub fn wake(&self) -> Option<Duration> {
        if self.done || self.ending.is_some() {
            return None;
        }
        Some(match self.renewing {
            Some(_) => self.close_by(),
            None => self.next.min(self.close_by()),
        })
    }

    /// What to do now. `session`: the session's persist mark and whether it has finished
    /// (closed, its socket gone), once it exists (`None` while it connects: nothing to save).
    /// Call it until it returns `None`.
    pub fn poll(
        &mut self,
        now: Duration,
        session: Option<(PersistMark, bool)>,
    ) -> Option<KeeperOrder> {
        if self.done {
            return None;
        }
        if let Some(final_answered) = self.ending {
            if final_answered {
                self.done = true;
                return Some(KeeperOrder::Release);
            }
            return None;
        }
        if let Some((mark, true)) = session {
            if self.saving.is_some() {
                // The final save waits for the answer of the one in flight.
                return None;
            }
            self.ending = Some(false);
            self.saving = Some(mark);
            return Some(KeeperOrder::Save(mark));
        }
        if now >= self.close_by() {
            // Not renewed (or not answered) in time: nothing may be written any more.
            self.done = true;
            return Some(KeeperOrder::Lose(
                "the lease could not be renewed in time".to_owned(),
            ));
        }
        if self.renewing.is_none() && now >= self.next {
            self.renewing = Some(now);
            return Some(KeeperOrder::Renew);
        }
        if let Some((mark, _)) = session {
            if self.saving.is_none() && self.saved != Some(mark) && self.failed != Some(mark) {
                self.saving = Some(mark);
                return Some(KeeperOrder::Save(mark));
            }
        }
        None
    }

    /// The renewal's answer (`now`: when it came). Late answers (after `close_by`) count
    /// for nothing: [`poll`](Self::poll) has already lost the lease.
    pub fn on_renewal(
        &mut self,
        now: Duration,
        result: Result<(), session_store::Error>,
    ) -> Renewed {
        let Some(sent) = self.renewing.take().filter(|_| !self.done) else {
            // Answered after the keeper gave the lease up, or never asked for.
            return Renewed::Lost(
                "the lease could not be renewed in time".to_owned(),
                session_store::Error::Timeout { limit: self.ttl },
            );
        };
        match result {
            Ok(()) => {
                self.deadline = sent + self.ttl;
                self.next = sent + self.ttl / 3;
                self.failed = None;
                Renewed::Kept
            }
            Err(err) if err.is_transient() => {
                self.next = now + self.ttl / 10;
                Renewed::Retry(err.to_string())
            }
            Err(err) => {
                self.done = true;
                Renewed::Lost(format!("the lease was lost: {err}"), err)
            }
        }
    }

    /// The answer to the save in flight.
    pub fn on_saved(&mut self, result: Result<(), session_store::Error>) -> SaveOutcome {
        let mark = self.saving.take();
        if let Some(answered) = self.ending.as_mut() {
            *answered = true;
            return SaveOutcome::Final(result);
        }
        let Some(mark) = mark.filter(|_| !self.done) else {
            // Answered after the keeper gave the lease up: nothing follows from it.
            return SaveOutcome::Final(result);
        };
        match result {
            Ok(()) => {
                self.saved = Some(mark);
                self.failed = None;
                SaveOutcome::Saved
            }
            Err(err @ session_store::Error::Fenced { .. }) => {
                self.done = true;
                SaveOutcome::Lost(format!("the lease was lost: {err}"), err)
            }
            Err(err) => {
                let warn = self.failed.is_none();
                self.failed = Some(mark);
                SaveOutcome::Failed { warn, err }
            }
        }
    }
}

/// A session's persisted state in its stored form.
pub fn to_stored(state: Persisted) -> StoredSession {
    StoredSession::new(
        state.handle,
        state.version,
        state.held,
        &Outbox::from_operations(state.outbox),
        state.desired,
    )
    .with_calls(state.known_calls, state.cancelled_calls)
}

/// A stored session as the core takes it back
/// ([`LiveSessionBuilder::resume_from`](crate::LiveSessionBuilder::resume_from)).
pub fn from_stored(stored: StoredSession) -> Persisted {
    Persisted::new(
        stored.handle,
        stored.mirror_version,
        stored.held,
        stored.outbox,
        stored.desired,
    )
    .with_calls(stored.known_calls, stored.cancelled_calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LiveSessionBuilder;
    use gemini_transport::{Endpoint, SecretString};
    use resume_policy::Millis;

    const MS: Duration = Duration::from_millis(1);

    fn mark() -> PersistMark {
        LiveSessionBuilder::new(
            Endpoint::api_key(SecretString::from("k")),
            "gemini-2.5-flash-native-audio-preview-12-2025",
        )
        .into_core(Millis(0), 1)
        .unwrap()
        .persist_mark()
    }

    #[test]
    fn renews_every_third_and_loses_the_lease_a_quarter_before_its_deadline() {
        let ttl = 1_200 * MS;
        let mut keeper = Keeper::new(ttl, Duration::ZERO);
        assert_eq!(keeper.wake(), Some(400 * MS));
        assert_eq!(keeper.poll(399 * MS, None), None);
        assert_eq!(keeper.poll(400 * MS, None), Some(KeeperOrder::Renew));
        assert_eq!(
            keeper.wake(),
            Some(900 * MS),
            "the renewal's bound: close_by"
        );
        assert!(matches!(keeper.on_renewal(410 * MS, Ok(())), Renewed::Kept));
        assert_eq!(
            keeper.close_by(),
            1_300 * MS,
            "the TTL after it was sent, less a quarter"
        );
        assert_eq!(keeper.poll(800 * MS, None), Some(KeeperOrder::Renew));
        let timeout = session_store::Error::Timeout { limit: ttl };
        assert!(matches!(
            keeper.on_renewal(810 * MS, Err(timeout)),
            Renewed::Retry(_)
        ));
        assert_eq!(
            keeper.wake(),
            Some(930 * MS),
            "retried a tenth of the TTL later"
        );
        assert_eq!(keeper.poll(930 * MS, None), Some(KeeperOrder::Renew));
        // Never answered.
        assert_eq!(keeper.poll(1_299 * MS, None), None);
        assert!(matches!(
            keeper.poll(1_300 * MS, None),
            Some(KeeperOrder::Lose(_))
        ));
        assert!(keeper.is_done());
        assert_eq!(keeper.poll(2_000 * MS, None), None);
    }

    #[test]
    fn saves_each_change_once_and_ends_with_a_final_save_and_the_release() {
        let mut keeper = Keeper::new(3_000 * MS, Duration::ZERO);
        let m = mark();
        assert_eq!(
            keeper.poll(MS, Some((m, false))),
            Some(KeeperOrder::Save(m))
        );
        assert_eq!(
            keeper.poll(2 * MS, Some((m, false))),
            None,
            "one save in flight"
        );
        let io = session_store::Error::Timeout { limit: MS };
        assert!(matches!(
            keeper.on_saved(Err(io)),
            SaveOutcome::Failed { warn: true, .. }
        ));
        assert_eq!(
            keeper.poll(3 * MS, Some((m, false))),
            None,
            "not retried unchanged"
        );
        assert_eq!(
            keeper.poll(1_000 * MS, Some((m, false))),
            Some(KeeperOrder::Renew)
        );
        assert!(matches!(
            keeper.on_renewal(1_001 * MS, Ok(())),
            Renewed::Kept
        ));
        assert_eq!(
            keeper.poll(1_002 * MS, Some((m, false))),
            Some(KeeperOrder::Save(m))
        );
        assert!(matches!(keeper.on_saved(Ok(())), SaveOutcome::Saved));
        assert_eq!(keeper.poll(1_003 * MS, Some((m, false))), None);
        // Finished: the final save, then the release whatever it said.
        assert_eq!(
            keeper.poll(1_004 * MS, Some((m, true))),
            Some(KeeperOrder::Save(m))
        );
        assert_eq!(keeper.wake(), None);
        let io = session_store::Error::Timeout { limit: MS };
        assert!(matches!(
            keeper.on_saved(Err(io)),
            SaveOutcome::Final(Err(_))
        ));
        assert_eq!(
            keeper.poll(1_005 * MS, Some((m, true))),
            Some(KeeperOrder::Release)
        );
        assert!(keeper.is_done());
    }
}
