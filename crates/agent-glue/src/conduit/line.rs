//! One connection with a socket, as the conduit judges it: its writer (blocked, failed, the
//! last progress), its receipts (which of the audio written on it the server has proven to
//! have read), its keepalive, and its closing handshake.
//!
//! **Receipts.** TCP gives no receipt: audio the socket took may still be lost with the
//! connection (in the socket buffers, on the wire, in a peer that stopped reading). A
//! WebSocket pong is one: the server answers a ping once it has read everything written
//! before it. So a ping goes out behind audio at most every [`RECEIPT_INTERVAL`] (and as the
//! keepalive asks), one at a time, and the audio written before an answered ping is confirmed.
//! The answer to this side's close frame confirms everything. Whatever else was written is
//! *unconfirmed*, and reported when the connection ends.

use std::time::Duration;

use gemini_transport::{CloseInfo, CloseInitiator};
use resume_policy::{ConnectionId, Millis};

use super::outgoing::{BURST_FRAMES, BURST_WINDOW, Took};
use crate::Keepalive;

/// At most this long between receipts while audio is written: a ping goes out behind audio
/// when no ping is outstanding and the last one is this old. So, on a healthy connection,
/// audio is confirmed within this long plus a round trip, and that is what a connection that
/// breaks reports unconfirmed.
pub const RECEIPT_INTERVAL: Duration = Duration::from_secs(1);

/// The longest the close frame of a closing connection may wait for the socket to take it.
pub const CLOSE_FRAME_BUDGET: Duration = Duration::from_millis(250);

/// The conduit's timing, from the session's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) write_timeout: Duration,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) close_timeout: Duration,
    /// The longest a dial may take from its order to `setupComplete` (the connect
    /// configuration's setup timeout): past it the dial is given up as a setup timeout.
    pub(crate) setup_timeout: Duration,
}

/// A ping on its way: queued, then written, then answered.
#[derive(Debug, Clone, Copy)]
struct Ping {
    /// When it was queued (or reading resumed since): its verdict is due a keepalive timeout
    /// later.
    since: Millis,
    /// Pongs received before it was written.
    pongs_before: u64,
    /// Audio bytes written before it, once it is written.
    mark: Option<u64>,
}

/// This side is closing the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closing {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    /// When the close frame was queued.
    since: Millis,
    /// The socket took the close frame.
    sent: bool,
    /// When the socket finished writing it.
    written_at: Option<Millis>,
    /// The server's answer is not awaited, nor a socket that does not take the close frame:
    /// the socket is dropped at the next timer, with the close frame if the socket took it by
    /// then (a session whose lease is lost: its socket must be gone before the lease can pass
    /// on, whatever the server and the socket do).
    hurry: bool,
}

/// What the time asks of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    /// Queue a keepalive ping.
    Ping,
    /// The connection is lost (1006), for this reason.
    Lost(String),
    /// Give the closing handshake up: drop the socket.
    Abandon,
}

/// One connection with a socket.
#[derive(Debug)]
pub(crate) struct Line {
    pub(crate) id: ConnectionId,
    pub(crate) closing: Option<Closing>,
    /// Frames handed to the socket and not flushed yet.
    unflushed: bool,
    /// What was taken since the last flush: how many frames, since when, and whether all of
    /// them were audio.
    unflushed_frames: usize,
    unflushed_since: Millis,
    unflushed_audio_only: bool,
    /// The flush of a burst's audio is held ([`may_hold`](Self::may_hold)).
    holding: bool,
    /// The socket would not take more: it says when it can.
    pub(crate) blocked: bool,
    /// A write failed: the connection is gone (its reader, or the write deadline, says so).
    pub(crate) failed: bool,
    /// The last time the socket took a frame or finished a flush.
    progress: Millis,
    /// Audio bytes the socket took.
    written: u64,
    /// Audio bytes written before the newest answered ping.
    confirmed: u64,
    /// Pongs received so far.
    pongs: u64,
    ping: Option<Ping>,
    last_ping: Millis,
    /// The last time anything came from the server on the connection (a frame or a pong):
    /// proof that it is alive, whatever a ping waits for.
    last_inbound: Millis,
}

impl Line {
    /// A connection whose setup completed at `now`.
    pub(crate) fn new(id: ConnectionId, now: Millis) -> Self {
        Self {
            id,
            closing: None,
            unflushed: false,
            unflushed_frames: 0,
            unflushed_since: now,
            unflushed_audio_only: true,
            holding: false,
            blocked: false,
            failed: false,
            progress: now,
            written: 0,
            confirmed: 0,
            pongs: 0,
            ping: None,
            last_ping: now,
            last_inbound: now,
        }
    }

    /// A frame came from the server at `now`: the connection is alive.
    pub(crate) fn inbound(&mut self, now: Millis) {
        self.last_inbound = self.last_inbound.max(now);
    }

    /// Since when the connection has shown no sign of life while `ping` waits for its pong.
    fn silent_since(&self, ping: Ping) -> Millis {
        ping.since.max(self.last_inbound)
    }

    /// Open (not closing) and writing normally.
    pub(crate) fn healthy(&self) -> bool {
        self.closing.is_none() && !self.failed
    }

    /// Healthy, and the socket can take a frame now with nothing unflushed before it (or only
    /// the audio of a burst whose flush is held).
    pub(crate) fn idle(&self) -> bool {
        self.healthy() && !self.blocked && (!self.unflushed || self.holding)
    }

    /// Whether the flush owed may be held at `now` for a burst: only audio was taken since the
    /// last flush, fewer than [`BURST_FRAMES`] frames, the first of them less than
    /// [`BURST_WINDOW`] ago.
    pub(crate) fn may_hold(&self, now: Millis) -> bool {
        self.healthy()
            && self.unflushed_audio_only
            && self.unflushed_frames < BURST_FRAMES
            && now < self.unflushed_since.after(BURST_WINDOW)
    }

    /// The flush owed is held for a burst.
    pub(crate) fn hold(&mut self) {
        self.holding = true;
    }

    /// Whether a flush is owed.
    pub(crate) fn unflushed(&self) -> bool {
        self.unflushed
    }

    /// The socket took a frame at `now`.
    pub(crate) fn took(&mut self, now: Millis, took: Took) {
        self.progress = now;
        if !self.unflushed {
            self.unflushed_frames = 0;
            self.unflushed_since = now;
            self.unflushed_audio_only = true;
        }
        self.unflushed = true;
        self.holding = false;
        self.unflushed_frames += 1;
        if !matches!(took, Took::Audio(_)) {
            self.unflushed_audio_only = false;
        }
        match took {
            Took::Audio(bytes) => self.written += bytes as u64,
            Took::Ping => {
                if let Some(ping) = self.ping.as_mut() {
                    ping.mark = Some(self.written);
                    ping.pongs_before = self.pongs;
                }
            }
            Took::Close => {
                if let Some(closing) = self.closing.as_mut() {
                    closing.sent = true;
                }
            }
            Took::Message => {}
        }
    }

    /// The socket finished writing what it took.
    pub(crate) fn flushed(&mut self, now: Millis) {
        self.progress = now;
        self.unflushed = false;
        self.holding = false;
        self.blocked = false;
        if let Some(closing) = self.closing.as_mut().filter(|c| c.sent) {
            closing.written_at.get_or_insert(now);
        }
    }

    /// The socket would not take more now.
    pub(crate) fn block(&mut self) {
        self.blocked = true;
        // The flush owed waits for the socket now, not for the rest of a burst.
        self.holding = false;
    }

    /// A write failed.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.blocked = false;
        self.holding = false;
    }

    /// `count` pongs have been received on the connection: an answered ping confirms the audio
    /// written before it.
    pub(crate) fn pongs(&mut self, count: u64) {
        if count <= self.pongs {
            return;
        }
        self.pongs = count;
        if let Some(ping) = self.ping {
            if let Some(mark) = ping.mark.filter(|_| count > ping.pongs_before) {
                self.confirmed = self.confirmed.max(mark);
                self.ping = None;
            }
        }
    }

    /// Whether a receipt is due behind the audio just written: audio no ping covers, no ping
    /// outstanding, the last one [`RECEIPT_INTERVAL`] old.
    pub(crate) fn receipt_due(&self, now: Millis) -> bool {
        self.healthy()
            && self.ping.is_none()
            && self.written > self.confirmed
            && now >= self.last_ping.after(RECEIPT_INTERVAL)
    }

    /// A ping was queued at `now`.
    pub(crate) fn ping_queued(&mut self, now: Millis) {
        self.ping = Some(Ping {
            since: now,
            pongs_before: self.pongs,
            mark: None,
        });
        self.last_ping = now;
    }

    /// Reading resumed at `now`: a ping outstanding is judged from now on (its pong may have
    /// waited, unread, behind frames the application had no room for).
    pub(crate) fn reading_resumed(&mut self, now: Millis) {
        if let Some(ping) = self.ping.as_mut() {
            ping.since = now;
        }
    }

    /// Audio bytes written and not proven received.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.written - self.confirmed
    }

    /// Starts closing at `now` (the close frame is queued).
    pub(crate) fn close(&mut self, now: Millis, code: u16, reason: &'static str) {
        self.closing = Some(Closing {
            code,
            reason,
            since: now,
            sent: false,
            written_at: None,
            hurry: false,
        });
    }

    /// The closing handshake is not awaited (see [`Closing::hurry`]).
    pub(crate) fn hurry(&mut self) {
        if let Some(closing) = self.closing.as_mut() {
            closing.hurry = true;
        }
    }

    /// Whether the close frame is still waiting for the socket.
    pub(crate) fn close_frame_pending(&self) -> bool {
        self.closing.is_some_and(|c| c.written_at.is_none())
    }

    /// Whether `info`, the end of this connection, is the server's answer to this side's close
    /// frame: then the server read everything written before it. A close frame the server
    /// sent of its own (even one crossing ours) or a connection that ended without a close
    /// frame proves nothing. The transport records the server's close frame as this side's
    /// close once ours was written ([`CloseInitiator::Client`]); an answer echoes our code and
    /// reason (RFC 6455 section 5.5.1; tungstenite and the fake server do), a close of the
    /// server's own carries its own reason, and a reset while closing carries none.
    pub(crate) fn answered(&self, info: &CloseInfo) -> bool {
        self.closing.is_some_and(|c| {
            c.sent
                && info.initiator == CloseInitiator::Client
                && info.code == c.code
                && info.reason == c.reason
        })
    }

    /// When [`due`](Self::due) has something to say, if ever.
    pub(crate) fn deadline(&self, timing: &Timing, reading_paused: bool) -> Option<Millis> {
        if let Some(closing) = &self.closing {
            return Some(match closing.written_at {
                None if closing.hurry => closing.since,
                None => closing.since.after(CLOSE_FRAME_BUDGET),
                Some(at) if closing.hurry => at,
                Some(at) => at.after(timing.close_timeout),
            });
        }
        let write =
            (self.blocked || self.failed).then(|| self.progress.after(timing.write_timeout));
        let held = (self.holding && !self.blocked && !self.failed)
            .then(|| self.unflushed_since.after(BURST_WINDOW));
        let keepalive = match (timing.keepalive, self.ping) {
            (Some(_), _) if self.failed => None,
            (Some(_), Some(_)) if reading_paused => None,
            (Some(k), Some(ping)) => Some(self.silent_since(ping).after(k.timeout)),
            (Some(k), None) => Some(self.last_ping.after(k.interval)),
            (None, _) => None,
        };
        super::earliest(super::earliest(write, keepalive), held)
    }

    /// What the time asks at `now`.
    pub(crate) fn due(&self, now: Millis, timing: &Timing, reading_paused: bool) -> Option<Due> {
        if let Some(closing) = &self.closing {
            let limit = match closing.written_at {
                None if closing.hurry => closing.since,
                None => closing.since.after(CLOSE_FRAME_BUDGET),
                Some(at) if closing.hurry => at,
                Some(at) => at.after(timing.close_timeout),
            };
            return (now >= limit).then_some(Due::Abandon);
        }
        if (self.blocked || self.failed) && now >= self.progress.after(timing.write_timeout) {
            return Some(Due::Lost(format!(
                "the socket took no write for {:?}",
                timing.write_timeout
            )));
        }
        let keepalive = timing.keepalive.filter(|_| !self.failed)?;
        match self.ping {
            Some(_) if reading_paused => None,
            Some(ping) if now >= self.silent_since(ping).after(keepalive.timeout) => {
                Some(Due::Lost(format!(
                    "no pong and no frame within {:?}: the server stopped reading",
                    keepalive.timeout
                )))
            }
            Some(_) => None,
            None if now >= self.last_ping.after(keepalive.interval) => Some(Due::Ping),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            write_timeout: Duration::from_secs(5),
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(10),
            }),
            close_timeout: Duration::from_secs(2),
            setup_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn an_answered_ping_confirms_the_audio_written_before_it() {
        let mut line = Line::new(ConnectionId(1), Millis(0));
        line.took(Millis(10), Took::Audio(640));
        assert!(!line.receipt_due(Millis(10)), "the last ping is too recent");
        assert!(line.receipt_due(Millis(1_000)));
        line.ping_queued(Millis(1_000));
        line.took(Millis(1_000), Took::Ping);
        line.took(Millis(1_010), Took::Audio(640));
        assert_eq!(line.unconfirmed(), 1_280);
        line.pongs(1);
        assert_eq!(
            line.unconfirmed(),
            640,
            "the audio after the ping is not confirmed"
        );
        // A pong that came before the ping was written proves nothing about it.
        line.ping_queued(Millis(2_000));
        line.pongs(2);
        line.took(Millis(2_000), Took::Ping);
        assert_eq!(line.unconfirmed(), 640);
        line.pongs(3);
        assert_eq!(line.unconfirmed(), 0);
    }

    #[test]
    fn a_ping_unanswered_past_the_timeout_loses_the_connection_unless_reading_is_paused() {
        let t = timing();
        let mut line = Line::new(ConnectionId(1), Millis(0));
        assert_eq!(line.due(Millis(10_000), &t, false), Some(Due::Ping));
        line.ping_queued(Millis(10_000));
        assert_eq!(line.due(Millis(19_999), &t, false), None);
        assert_eq!(line.due(Millis(20_000), &t, true), None);
        line.reading_resumed(Millis(25_000));
        assert_eq!(line.deadline(&t, false), Some(Millis(35_000)));
        assert!(matches!(
            line.due(Millis(35_000), &t, false),
            Some(Due::Lost(_))
        ));
    }

    /// Any frame from the server proves the connection alive: a late pong on a connection that
    /// carries data is no reason to give it up.
    #[test]
    fn a_frame_from_the_server_postpones_the_pong_verdict() {
        let t = timing();
        let mut line = Line::new(ConnectionId(1), Millis(0));
        line.ping_queued(Millis(10_000));
        line.inbound(Millis(18_000));
        assert_eq!(line.due(Millis(20_000), &t, false), None);
        assert_eq!(line.deadline(&t, false), Some(Millis(28_000)));
        line.inbound(Millis(27_000));
        assert_eq!(line.due(Millis(28_000), &t, false), None);
        assert!(matches!(
            line.due(Millis(37_000), &t, false),
            Some(Due::Lost(_))
        ));
    }

    #[test]
    fn only_the_servers_answer_to_our_close_confirms() {
        let mut line = Line::new(ConnectionId(1), Millis(0));
        line.close(Millis(0), 1000, "rotating");
        let echo = CloseInfo::from_client(1000, "rotating", false);
        assert!(!line.answered(&echo), "the close frame was not written");
        line.took(Millis(1), Took::Close);
        assert!(line.answered(&echo));
        assert!(!line.answered(&CloseInfo::from_client(1000, "", false)));
        assert!(!line.answered(&CloseInfo::from_server(1000, "rotating", false)));
        assert!(!line.answered(&CloseInfo::abnormal("reset", false)));
    }
}
