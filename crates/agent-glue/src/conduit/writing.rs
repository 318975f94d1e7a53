//! The write path: what is queued goes to a connection's socket ([`Conduit::write`]), and
//! the microphone's path is wired to the write queue and to the reports of lost audio.

use std::collections::VecDeque;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use resume_policy::{ConnectionId, Millis};

use super::outgoing::Outgoing;
use super::{AudioLoss, Conduit, FrameSink, SinkFailed};
use crate::SessionEvent;
use crate::audio_path::{AudioOut, AudioPath};
use crate::core::SessionCore;

/// Where the audio path's output goes: frames onto the write queue, drops to the events.
pub(super) struct Staging<'a> {
    out: &'a mut Outgoing,
    pub(super) losses: Losses<'a>,
}

/// The reports of lost audio.
pub(super) struct Losses<'a> {
    events: &'a mut VecDeque<SessionEvent>,
    audit: &'a mut Option<VecDeque<AudioLoss>>,
    bytes_per_second: u64,
}

impl Losses<'_> {
    pub(super) fn report(&mut self, bytes: u64, loss: impl FnOnce() -> AudioLoss) {
        if bytes == 0 {
            return;
        }
        let duration = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        self.events
            .push_back(SessionEvent::AudioDropped { duration });
        if let Some(audit) = self.audit.as_mut() {
            audit.push_back(loss());
        }
    }
}

impl AudioOut for Staging<'_> {
    fn audio(&mut self, connection: ConnectionId, pcm: Bytes, frame_len: usize) {
        self.out.audio(connection, pcm, frame_len);
    }

    fn dropped(&mut self, chunks: Vec<Bytes>) {
        let bytes = chunks.iter().map(|c| c.len() as u64).sum();
        self.losses.report(bytes, || AudioLoss::Dropped(chunks));
    }
}

impl Conduit {
    /// Writes what is queued for `connection` to its socket, as far as the socket takes it:
    /// `Ready` once everything is written and flushed (what waited is then handed over and
    /// written too), or nothing can be written (the connection failed or is not the current
    /// one); `Pending` when the socket cannot take more now ([`writer_blocked`]).
    ///
    /// [`writer_blocked`]: Self::writer_blocked
    pub fn write(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        sink: &mut impl FrameSink,
    ) -> Poll<()> {
        let poll = self.write_queued(now, connection, sink);
        if self
            .line
            .as_ref()
            .is_some_and(|l| l.id == connection && l.failed)
        {
            // The connection is gone (its end comes from its reader or the write deadline):
            // its audio waits for the next one, its messages are lost with it.
            let audio = self.out.purge(connection);
            self.unwritten(audio, false);
        }
        poll
    }

    fn write_queued(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        sink: &mut impl FrameSink,
    ) -> Poll<()> {
        let bursting = self.producer.bursting(now);
        loop {
            if let Some(front) = self.out.front_connection().filter(|&c| c != connection) {
                // Entries of a connection that is gone.
                let audio = self.out.purge(front);
                self.unwritten(audio, false);
                continue;
            }
            let Some(line) = self
                .line
                .as_mut()
                .filter(|l| l.id == connection && !l.failed)
            else {
                return Poll::Ready(());
            };
            if !self.out.is_empty() {
                match sink.poll_ready() {
                    Poll::Pending => {
                        line.block();
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(SinkFailed)) => {
                        line.fail();
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => {}
                }
                match self.out.write_front(sink) {
                    Some(Ok(took)) => line.took(now, took),
                    Some(Err(SinkFailed)) => {
                        line.fail();
                        return Poll::Ready(());
                    }
                    None => {}
                }
                continue;
            }
            if line.receipt_due(now) {
                line.ping_queued(now);
                self.out.ping(connection);
                continue;
            }
            if line.unflushed() && bursting && line.may_hold(now) {
                // A burst: its frames wait in the socket's buffer for the rest of it (the
                // timer flushes them at the latest `BURST_WINDOW` after the first).
                line.hold();
            } else if line.unflushed() {
                match sink.poll_flush() {
                    Poll::Pending => {
                        line.block();
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(SinkFailed)) => {
                        line.fail();
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => line.flushed(now),
                }
            }
            line.blocked = false;
            // The writer is idle again: what waited goes out.
            if !line.healthy() || self.audio.is_empty() {
                return Poll::Ready(());
            }
            self.flush_waiting();
            if self.out.is_empty() {
                return Poll::Ready(());
            }
        }
    }

    /// The audio path with its output wired to the write queue and the reports.
    pub(super) fn audio_parts(&mut self) -> (&mut AudioPath, &mut SessionCore, Staging<'_>) {
        (
            &mut self.audio,
            &mut self.core,
            Staging {
                out: &mut self.out,
                losses: Losses {
                    events: &mut self.events,
                    audit: &mut self.audit,
                    bytes_per_second: self.bytes_per_second,
                },
            },
        )
    }

    /// Hands what waits (the gap, then the backlog) to the connection that takes audio, if its
    /// socket is healthy (behind a busy writer too: the frames queue after the write under way).
    pub(super) fn flush_waiting(&mut self) {
        let target = self.core.audio_target();
        if self
            .line
            .as_ref()
            .is_some_and(|l| l.healthy() && Some(l.id) == target)
        {
            let (audio, core, mut staging) = self.audio_parts();
            audio.flush(core, &mut staging);
        }
    }

    /// Audio framed for a connection that did not write it goes back to the gap buffer, in
    /// order, and with it the backlog when the connection `ended`.
    pub(super) fn unwritten(&mut self, audio: Vec<Bytes>, ended: bool) {
        let (path, _, mut staging) = self.audio_parts();
        path.unwritten(audio, ended, &mut staging);
    }
}
