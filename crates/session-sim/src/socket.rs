//! The network under one connection, as the simulator models it: both ends' state ([`Link`])
//! and the client's socket as the conduit writes to it ([`SimSocket`]).

use std::collections::VecDeque;
use std::ops::Range;
use std::task::Poll;

use agent_glue::conduit::{Frame, FrameSink, SinkFailed};
use gemini_transport::wire::ClientMessage;
use gemini_transport::{CloseInfo, CloseInitiator};

use crate::audio_trail::AudioTrail;
use crate::rng::Rng;

/// What the client's socket buffers take while the peer does not read, before writes block
/// (checked when a write starts).
pub(crate) const SOCKET_BUFFER: usize = 64 << 10;

/// A frame on its way to the server.
#[derive(Debug)]
pub(crate) enum Wire {
    /// A client message as JSON.
    Message(Vec<u8>),
    Ping,
    Close(u16, String),
}

/// Both ends of one connection.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) server: Option<gemini_fake::ConnectionId>,
    /// When the last client frame reaches the server (in-order delivery).
    pub(crate) c2s_at: u64,
    /// When the last server frame reaches the client.
    pub(crate) s2c_at: u64,
    pub(crate) server_open: bool,
    /// The client holds a socket for it (dialing, or open).
    pub(crate) client_open: bool,
    pub(crate) set_up: bool,
    pub(crate) after_go_away: bool,
    /// The server sent `goAway` (its end of lifetime may come as 1008).
    pub(crate) go_away_sent: bool,
    /// Server frames arriving after this are lost (a reset overtook them).
    pub(crate) reset_at: Option<u64>,
    /// The client wrote its close frame (the transport records the end as this side's close).
    pub(crate) close_written: bool,
    /// The socket would block until then (a slow write, a peer that stopped reading).
    pub(crate) writable_at: u64,
    /// The server reads nothing until then; what arrives meanwhile waits in `unread`, and the
    /// socket takes up to [`SOCKET_BUFFER`] bytes before it blocks.
    pub(crate) unread_until: u64,
    /// Bytes the socket took while the peer does not read.
    pub(crate) buffered: usize,
    pub(crate) unread: VecDeque<Wire>,
    /// How late the server answers pings (slow pongs).
    pub(crate) pong_delay: u64,
    /// Pongs the client received.
    pub(crate) pongs: u64,
    /// Its setup carried a handle (a resume).
    pub(crate) resume: bool,
    /// A fault closed it (its 1007/1008 is not the server refusing a payload).
    pub(crate) fault_closed: bool,
    /// When the client saw its `setupComplete`.
    pub(crate) set_up_at: Option<u64>,
    /// When it ended for the client: its close written, released, or the server's end seen.
    pub(crate) ended_at: Option<u64>,
}

/// The client's socket of one connection, as the conduit writes to it: it takes frames onto
/// the network, or would block while the link is slow or the peer stopped reading. A write
/// that carried audio is sometimes slow to flush (a socket buffer full: a stream of its own,
/// so the schedules stay what they were).
pub(crate) struct SimSocket<'a> {
    now: u64,
    link: &'a mut Link,
    rng: &'a mut Rng,
    trail: &'a AudioTrail,
    /// What the socket took, in order.
    took: Vec<Took>,
    audio: bool,
    rolled: bool,
}

impl<'a> SimSocket<'a> {
    /// The socket over `link` at `now`; `rng` draws slow writes, `trail` locates audio.
    pub(crate) fn new(
        now: u64,
        link: &'a mut Link,
        rng: &'a mut Rng,
        trail: &'a AudioTrail,
    ) -> Self {
        Self {
            now,
            link,
            rng,
            trail,
            took: Vec::new(),
            audio: false,
            rolled: false,
        }
    }

    /// What the socket took, in order, and until when it blocks.
    pub(crate) fn finish(self) -> (Vec<Took>, u64) {
        (self.took, self.link.writable_at)
    }
}

/// A frame the socket took.
pub(crate) enum Took {
    /// Which bytes of what was pushed (if it is a slice of them), and the frame.
    Audio(Result<Range<u64>, usize>, Vec<u8>),
    Message(Vec<u8>),
    Ping,
    Close(u16, String),
}

impl FrameSink for SimSocket<'_> {
    fn poll_ready(&mut self) -> Poll<Result<(), SinkFailed>> {
        if !self.link.client_open {
            return Poll::Ready(Err(SinkFailed));
        }
        if self.now < self.link.unread_until
            && self.link.buffered >= SOCKET_BUFFER
            && self.took.is_empty()
        {
            // The buffers are full: the socket blocks until the peer reads again. Checked when
            // a write starts: what one write hands over is taken whole. A run of audio cut
            // between two connections is not modelled here: its tail, when it is silence, is
            // taken by `CoverageTracker::on_spoken_turn` as the run the next spoken turn came
            // from (an open issue of the coverage tracker).
            self.link.writable_at = self.link.writable_at.max(self.link.unread_until);
        }
        if self.now < self.link.writable_at {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(&mut self, frame: Frame<'_>) -> Result<(), SinkFailed> {
        let took = match frame {
            Frame::Audio(pcm) => {
                self.audio = true;
                let mut buf = Vec::new();
                ClientMessage::write_audio_json(&mut buf, pcm, 16_000);
                Took::Audio(self.trail.locate(pcm).ok_or(pcm.len()), buf)
            }
            Frame::Message(message) => {
                let mut buf = Vec::new();
                message.write_json(&mut buf);
                Took::Message(buf)
            }
            Frame::Ping => Took::Ping,
            Frame::Close { code, reason } => Took::Close(code, reason.to_owned()),
            _ => return Err(SinkFailed),
        };
        if self.now < self.link.unread_until {
            self.link.buffered += match &took {
                Took::Audio(_, json) | Took::Message(json) => json.len(),
                Took::Ping | Took::Close(..) => 6,
            };
        }
        self.took.push(took);
        Ok(())
    }

    fn poll_flush(&mut self) -> Poll<Result<(), SinkFailed>> {
        if self.now < self.link.writable_at {
            return Poll::Pending;
        }
        if self.audio && !self.rolled {
            self.rolled = true;
            if self.rng.below(4) == 0 {
                self.link.writable_at = self.now + 1 + self.rng.below(2_500);
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The end of a connection as the client's transport records it: once this side wrote its
/// close frame, a close frame from the server is recorded as this side's close (with the
/// server's code and reason), and an end without one as a normal close with no reason.
pub(crate) fn as_transport_records(info: CloseInfo, close_written: bool) -> CloseInfo {
    if !close_written || info.initiator == CloseInitiator::Client {
        return info;
    }
    match info.initiator {
        CloseInitiator::Server => {
            CloseInfo::from_client(info.code, info.reason, info.after_go_away)
        }
        _ => CloseInfo::from_client(1000, "", info.after_go_away),
    }
}
