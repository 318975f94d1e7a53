//! Resumption handles as snapshots of a session's model state.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::ModelState;
use crate::session::SessionId;

/// A stored handle: the snapshot it stands for and when it was issued.
#[derive(Debug, Clone)]
struct HandleEntry {
    session: SessionId,
    snapshot: ModelState,
    issued_at: Instant,
}

/// Why a handle cannot be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleRefusal {
    /// Never issued by this server (or forgotten by `expire_all_handles`).
    Unknown,
    /// Past its expiry.
    Expired,
}

/// Every handle the server issued, by token.
#[derive(Debug, Default)]
pub(crate) struct HandleBook {
    entries: HashMap<String, HandleEntry>,
    issued: u64,
}

impl HandleBook {
    /// Stores a snapshot and returns its new opaque token.
    pub(crate) fn issue(
        &mut self,
        session: SessionId,
        snapshot: ModelState,
        now: Instant,
    ) -> String {
        self.issued += 1;
        let token = format!("fake-handle-{session}-{}", self.issued);
        self.entries.insert(
            token.clone(),
            HandleEntry {
                session,
                snapshot,
                issued_at: now,
            },
        );
        token
    }

    /// Looks a token up. A handle is valid while its session has an open connection, and for
    /// `expiry` after the later of its issuance and the end of the session's last connection.
    pub(crate) fn resume(
        &self,
        token: &str,
        now: Instant,
        expiry: Duration,
        session_state: impl Fn(SessionId) -> (bool, Option<Instant>),
    ) -> Result<(SessionId, ModelState), HandleRefusal> {
        let entry = self.entries.get(token).ok_or(HandleRefusal::Unknown)?;
        let (open, last_ended) = session_state(entry.session);
        let since = last_ended.map_or(entry.issued_at, |ended| ended.max(entry.issued_at));
        if !open && now.saturating_duration_since(since) >= expiry {
            return Err(HandleRefusal::Expired);
        }
        Ok((entry.session, entry.snapshot.clone()))
    }

    /// Forgets every handle (a fault: all later resumes are refused).
    pub(crate) fn expire_all(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Turn;

    #[tokio::test(start_paused = true)]
    async fn snapshots_are_kept_apart_and_expire() {
        let mut book = HandleBook::default();
        let start = Instant::now();
        let mut state = ModelState::default();
        state.context.push(Turn::user_text("one"));
        let h1 = book.issue(SessionId(1), state.clone(), start);
        state.context.push(Turn::user_text("two"));
        let h2 = book.issue(SessionId(1), state.clone(), start);
        assert_ne!(h1, h2);
        let expiry = Duration::from_secs(60);
        let closed_at = |ended| move |_| (false, Some(ended));
        let (session, restored) = book.resume(&h1, start, expiry, closed_at(start)).unwrap();
        assert_eq!(session, SessionId(1));
        assert_eq!(restored.context.len(), 1);
        let later = start + Duration::from_secs(61);
        assert_eq!(
            book.resume(&h2, later, expiry, closed_at(start))
                .unwrap_err(),
            HandleRefusal::Expired
        );
        assert!(book.resume(&h2, later, expiry, |_| (true, None)).is_ok());
        book.expire_all();
        assert_eq!(
            book.resume(&h2, start, expiry, closed_at(start))
                .unwrap_err(),
            HandleRefusal::Unknown
        );
    }
}
