//! Late pongs for the socket server ([`Faults::delay_pongs`](crate::Faults::delay_pongs)).
//!
//! tungstenite answers a ping as soon as it reads one, so the delay is made on the read side:
//! the stream below the WebSocket hands tungstenite the client's frames whole, in order, except
//! that a ping arriving while data flows is held back for the delay and handed over later, at a
//! frame boundary (a control frame may come between any two frames, RFC 6455 section 5.4).
//! Everything else the client sends goes on at once.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::link::DataFlow;
use crate::shared::Shared;

/// The ping opcode.
const PING: u8 = 0x9;

/// A stream with the TCP socket under it (for the zero-linger reset of a dropped connection).
pub(crate) trait OnTcp {
    /// The TCP socket.
    fn tcp(&self) -> &TcpStream;
}

impl OnTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl OnTcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

impl<S: OnTcp> OnTcp for LatePongs<S> {
    fn tcp(&self) -> &TcpStream {
        self.inner.tcp()
    }
}

/// The read side of a client's stream, frame by frame, with pings held back while data flows.
pub(crate) struct LatePongs<S> {
    inner: S,
    shared: Arc<Shared>,
    flow: Arc<DataFlow>,
    /// Bytes read and not yet cut into whole frames.
    incoming: Vec<u8>,
    /// A whole frame being handed over, and how much of it was.
    ready: Vec<u8>,
    handed: usize,
    /// Held pings and when each is due.
    held: VecDeque<(Instant, Vec<u8>)>,
    timer: Option<Pin<Box<Sleep>>>,
    eof: bool,
    /// Frames are cut only after the HTTP upgrade; until then bytes pass through.
    framing: bool,
}

impl<S> LatePongs<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, flow: Arc<DataFlow>) -> Self {
        LatePongs {
            inner,
            shared,
            flow,
            incoming: Vec::new(),
            ready: Vec::new(),
            handed: 0,
            held: VecDeque::new(),
            timer: None,
            eof: false,
            framing: false,
        }
    }

    /// The HTTP upgrade is over: from now on the client sends WebSocket frames. (A client sends
    /// none before the server's 101, so nothing read so far was a frame.)
    pub(crate) fn start_framing(&mut self) {
        self.framing = true;
    }
}

/// The length of the whole frame at the start of `bytes`, if it is all there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let second = *bytes.get(1)?;
    let masked = second & 0x80 != 0;
    let (header, payload) = match second & 0x7f {
        126 => (
            4,
            u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
        ),
        127 => {
            let raw: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            (10, u64::from_be_bytes(raw))
        }
        short => (2, u64::from(short)),
    };
    let len = usize::try_from(payload)
        .ok()?
        .checked_add(header + if masked { 4 } else { 0 })?;
    (bytes.len() >= len).then_some(len)
}

impl<S: AsyncRead + Unpin> AsyncRead for LatePongs<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.framing {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            if this.handed < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.handed);
                buf.put_slice(&this.ready[this.handed..this.handed + n]);
                this.handed += n;
                return Poll::Ready(Ok(()));
            }
            let now = this.shared.now();
            if this.held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, ping)) = this.held.pop_front() {
                    this.ready = ping;
                    this.handed = 0;
                    this.timer = None;
                }
                continue;
            }
            if let Some(len) = frame_len(&this.incoming) {
                let frame: Vec<u8> = this.incoming.drain(..len).collect();
                let ping = frame.first().is_some_and(|b| b & 0x0f == PING);
                // Only a ping asks how late it may be answered (the fault's state is shared).
                let delay = if ping {
                    this.flow.pong_delay(&this.shared)
                } else {
                    std::time::Duration::ZERO
                };
                if ping && (!delay.is_zero() || !this.held.is_empty()) {
                    // Pings keep their order among themselves.
                    let due = this
                        .held
                        .back()
                        .map_or(now + delay, |(at, _)| (*at).max(now + delay));
                    this.held.push_back((due, frame));
                } else {
                    this.ready = frame;
                    this.handed = 0;
                }
                continue;
            }
            if this.eof {
                // What is left is not a whole frame: hand it over as it is, then the end.
                if this.incoming.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = std::mem::take(&mut this.incoming);
                this.handed = 0;
                continue;
            }
            let mut chunk = [0u8; 8 << 10];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.incoming.extend_from_slice(read.filled());
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    let Some((due, _)) = this.held.front() else {
                        return Poll::Pending;
                    };
                    let due = *due;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    if timer.deadline() != due {
                        timer.as_mut().reset(due);
                    }
                    ready!(timer.as_mut().poll(cx));
                    this.timer = None;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LatePongs<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_with_every_length_form() {
        assert_eq!(frame_len(&[0x89]), None);
        // A masked ping with a 3-byte payload.
        assert_eq!(
            frame_len(&[0x89, 0x83, 1, 2, 3, 4, b'a', b'b', b'c']),
            Some(9)
        );
        assert_eq!(frame_len(&[0x89, 0x83, 1, 2, 3, 4, b'a']), None);
        let mut medium = vec![0x82, 0xfe, 0x01, 0x00, 0, 0, 0, 0];
        medium.resize(8 + 256, 0);
        assert_eq!(frame_len(&medium), Some(264));
        let long = [0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(frame_len(&long), Some(11));
    }
}
