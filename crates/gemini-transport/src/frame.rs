//! RFC 6455 framing as a client speaks it: parsing the server's frame headers (section 5.2,
//! with the checks of 5.1–5.5 that fail the connection), building masked client frames (5.3),
//! and the read buffer that assembles messages from them.
//!
//! Kept apart from the socket: [`parse_head`], [`push_frame`] and [`apply_mask`] are pure;
//! [`FrameReader`] reads through any `AsyncRead`. What the connection needs of a WebSocket
//! library and nothing more:
//! - a frame is decoded where it lies in the read buffer (no copy, no allocation) unless it is a
//!   fragment of a longer message;
//! - the read buffer is filled in its spare capacity, never zero-filled first, and it is lent
//!   from a small per-thread pool ([`crate::spare`]) while bytes of a frame are pending;
//! - a client frame is encoded, masked in place, straight into the write buffer;
//! - masks come from the operating system's random source, 256 at a time per thread.

use std::{cell::RefCell, future::Future as _, io, ops::Range, task::Context, task::Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::spare;

/// Continuation frame.
pub(crate) const CONTINUATION: u8 = 0x0;
/// Text frame.
pub(crate) const TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const BINARY: u8 = 0x2;
/// Close frame.
pub(crate) const CLOSE: u8 = 0x8;
/// Ping frame.
pub(crate) const PING: u8 = 0x9;
/// Pong frame.
pub(crate) const PONG: u8 = 0xA;

/// Largest header a client frame takes: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_CLIENT_HEAD: usize = 14;

/// A frame's header, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    /// Bytes the header takes.
    pub(crate) head_len: usize,
    /// Bytes of payload after it.
    pub(crate) payload_len: usize,
}

/// Why the server's frames end the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A violation of RFC 6455 by the server (the connection fails, as with close code 1002).
    Protocol(&'static str),
    /// A frame or a message above the configured limit (close code 1009).
    TooLarge { size: usize, max: usize },
}

/// Parses the header at the start of `buf` from the server: `Ok(None)` while it is incomplete.
///
/// # Errors
/// [`FrameError::Protocol`] for reserved bits (no extension is negotiated), an unknown opcode,
/// a masked frame (a server never masks), a fragmented or longer-than-125-byte control frame,
/// or a 64-bit length with its top bit set; [`FrameError::TooLarge`] for a payload above
/// `max_frame`.
pub(crate) fn parse_head(buf: &[u8], max_frame: usize) -> Result<Option<Head>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol(
            "reserved bits set without a negotiated extension",
        ));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(FrameError::Protocol("unknown opcode"));
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Protocol("masked frame from the server"));
    }
    let (length, head_len) = match b1 & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let length = u64::from_be_bytes(be);
            if length >> 63 != 0 {
                return Err(FrameError::Protocol(
                    "64-bit frame length with its top bit set",
                ));
            }
            (length, 10)
        }
        short => (u64::from(short), 2),
    };
    if opcode >= CLOSE {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if length > 125 {
            return Err(FrameError::Protocol("control frame longer than 125 bytes"));
        }
    }
    let payload_len = match usize::try_from(length) {
        Ok(length) if length <= max_frame => length,
        _ => {
            return Err(FrameError::TooLarge {
                size: usize::try_from(length).unwrap_or(usize::MAX),
                max: max_frame,
            });
        }
    };
    Ok(Some(Head {
        fin,
        opcode,
        head_len,
        payload_len,
    }))
}

/// XORs `data` with `mask` (RFC 6455 section 5.3), eight bytes at a time.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The rest starts at a multiple of eight, so the mask starts again at its first byte.
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// Appends one final (FIN) client frame of `opcode` to `out`: its payload written by `write`
/// straight into `out`, then the header put before it and the payload masked in place with
/// `mask`. Returns the payload's length.
pub(crate) fn push_frame(
    out: &mut Vec<u8>,
    opcode: u8,
    mask: [u8; 4],
    write: impl FnOnce(&mut Vec<u8>),
) -> usize {
    let at = out.len();
    out.resize(at + MAX_CLIENT_HEAD, 0);
    write(out);
    let payload_len = out.len() - at - MAX_CLIENT_HEAD;
    let mut head = [0u8; MAX_CLIENT_HEAD];
    head[0] = 0x80 | opcode;
    let head_len = if payload_len < 126 {
        // Below 126, so the cast keeps every bit.
        head[1] = 0x80 | (payload_len as u8);
        2
    } else if let Ok(short) = u16::try_from(payload_len) {
        head[1] = 0x80 | 126;
        head[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        head[1] = 0x80 | 127;
        head[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    head[head_len..head_len + 4].copy_from_slice(&mask);
    let head_len = head_len + 4;
    if head_len < MAX_CLIENT_HEAD {
        out.copy_within(at + MAX_CLIENT_HEAD.., at + head_len);
        out.truncate(at + head_len + payload_len);
    }
    out[at..at + head_len].copy_from_slice(&head[..head_len]);
    apply_mask(&mut out[at + head_len..], mask);
    payload_len
}

/// Masks drawn from the OS random source in one call per 256 frames, per thread (RFC 6455
/// section 5.3 asks for unpredictable masks from a strong source of entropy).
struct MaskPool {
    bytes: [u8; 1024],
    used: usize,
}

thread_local! {
    static MASKS: RefCell<MaskPool> = const {
        RefCell::new(MaskPool { bytes: [0; 1024], used: 1024 })
    };
}

/// A fresh mask for one client frame.
pub(crate) fn next_mask() -> [u8; 4] {
    MASKS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + 4 > pool.bytes.len() {
            if getrandom::fill(&mut pool.bytes).is_err() {
                // The OS source failing is not expected on any supported platform; the masks
                // then come from std's per-process random hash keys, not from zeros.
                refill_fallback(&mut pool.bytes);
            }
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += 4;
        [
            pool.bytes[at],
            pool.bytes[at + 1],
            pool.bytes[at + 2],
            pool.bytes[at + 3],
        ]
    })
}

fn refill_fallback(bytes: &mut [u8]) {
    use std::hash::{BuildHasher as _, Hasher as _};
    let state = std::collections::hash_map::RandomState::new();
    for (index, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(index);
        let word = hasher.finish().to_ne_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// What [`FrameReader::poll_next`] found: a whole message, or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text (`text`) or binary message; its bytes are [`FrameReader::payload`].
    Data { text: bool, at: Payload },
    /// A ping with its payload.
    Ping(Payload),
    /// A pong.
    Pong,
    /// A close frame with its payload (empty, or a code and a reason).
    Close(Payload),
}

/// Where a payload lies: in the read buffer, or in the assembled fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Buffer(Range<usize>),
    Assembled,
}

/// Reads frames from the server into one buffer and yields messages.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// Bytes read; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    /// Where the last yielded frame ends: consumed at the next call.
    pending_consume: usize,
    /// The configured buffer size, which the buffer returns to after a larger frame.
    size: usize,
    max_frame: usize,
    max_message: usize,
    /// The first frame's opcode and the bytes so far of a fragmented message.
    fragments: Option<(u8, Vec<u8>)>,
    /// A fragmented message just completed (yielded as [`Payload::Assembled`]).
    assembled: Vec<u8>,
}

impl FrameReader {
    /// A reader whose buffer holds `size` bytes, starting with `leftover` (bytes read past the
    /// upgrade response).
    pub(crate) fn new(size: usize, max_frame: usize, max_message: usize, leftover: &[u8]) -> Self {
        // No buffer until the first read needs one, unless bytes came with the upgrade.
        let buf = if leftover.is_empty() {
            Vec::new()
        } else {
            let mut buf = Vec::with_capacity(size.max(leftover.len()).max(16));
            buf.extend_from_slice(leftover);
            buf
        };
        Self {
            buf,
            start: 0,
            pending_consume: 0,
            size: size.max(16),
            max_frame,
            max_message,
            fragments: None,
            assembled: Vec::new(),
        }
    }

    /// The bytes of a payload [`poll_next`](Self::poll_next) yielded, until the next call.
    pub(crate) fn payload(&self, at: &Payload) -> &[u8] {
        match at {
            Payload::Buffer(range) => &self.buf[range.clone()],
            Payload::Assembled => &self.assembled,
        }
    }

    /// The next message or control frame, reading from `io` as needed. `Ready(Ok(None))` is
    /// the end of the stream (between frames or within one).
    pub(crate) fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Incoming>, ReadError>> {
        self.start = self.pending_consume.max(self.start);
        // A message assembled from fragments lives until the next call.
        self.assembled = Vec::new();
        loop {
            let available = &self.buf[self.start..];
            let head = match parse_head(available, self.max_frame) {
                Ok(head) => head,
                Err(error) => return Poll::Ready(Err(ReadError::Frame(error))),
            };
            let needed = match head {
                Some(head) if available.len() >= head.head_len.saturating_add(head.payload_len) => {
                    let payload =
                        self.start + head.head_len..self.start + head.head_len + head.payload_len;
                    self.pending_consume = payload.end;
                    match self.frame(head, payload) {
                        Ok(Some(incoming)) => return Poll::Ready(Ok(Some(incoming))),
                        Ok(None) => {
                            self.start = self.pending_consume;
                            continue;
                        }
                        Err(error) => return Poll::Ready(Err(ReadError::Frame(error))),
                    }
                }
                Some(head) => head.head_len.saturating_add(head.payload_len),
                None => available.len() + 1,
            };
            match std::task::ready!(self.poll_fill(io, cx, needed)) {
                Ok(0) => return Poll::Ready(Ok(None)),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Handles one whole frame: a message or control frame to yield, or `None` for a fragment
    /// kept for later.
    fn frame(&mut self, head: Head, payload: Range<usize>) -> Result<Option<Incoming>, FrameError> {
        match head.opcode {
            TEXT | BINARY => {
                if self.fragments.is_some() {
                    return Err(FrameError::Protocol(
                        "a new message began before the fragmented one ended",
                    ));
                }
                if payload.len() > self.max_message {
                    return Err(FrameError::TooLarge {
                        size: payload.len(),
                        max: self.max_message,
                    });
                }
                if head.fin {
                    Ok(Some(Incoming::Data {
                        text: head.opcode == TEXT,
                        at: Payload::Buffer(payload),
                    }))
                } else {
                    self.fragments = Some((head.opcode, self.buf[payload].to_vec()));
                    Ok(None)
                }
            }
            CONTINUATION => {
                let Some((opcode, bytes)) = self.fragments.as_mut() else {
                    return Err(FrameError::Protocol(
                        "a continuation frame with no message begun",
                    ));
                };
                let size = bytes.len().saturating_add(payload.len());
                if size > self.max_message {
                    return Err(FrameError::TooLarge {
                        size,
                        max: self.max_message,
                    });
                }
                bytes.extend_from_slice(&self.buf[payload]);
                if !head.fin {
                    return Ok(None);
                }
                let text = *opcode == TEXT;
                if let Some((_, bytes)) = self.fragments.take() {
                    self.assembled = bytes;
                }
                Ok(Some(Incoming::Data {
                    text,
                    at: Payload::Assembled,
                }))
            }
            PING => Ok(Some(Incoming::Ping(Payload::Buffer(payload)))),
            PONG => Ok(Some(Incoming::Pong)),
            _ => Ok(Some(Incoming::Close(Payload::Buffer(payload)))),
        }
    }

    /// Reads once so that the buffer may hold `needed` bytes from `start`: moves the unread
    /// bytes to the front or grows the buffer only when they would not fit.
    fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        needed: usize,
    ) -> Poll<Result<usize, ReadError>> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.pending_consume = 0;
            if self.buf.capacity() > self.size {
                // Back to the configured size after a frame that needed more.
                self.buf = Vec::new();
            }
            if self.buf.capacity() == 0 {
                self.buf = spare::READ.take(self.size);
            }
        } else if self.start.saturating_add(needed) > self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
            self.pending_consume = 0;
        }
        if needed > self.buf.capacity() - self.start {
            // A frame the limits allow but memory does not is refused, not a panic.
            let more = needed - (self.buf.len() - self.start);
            if self.buf.try_reserve(more).is_err() {
                return Poll::Ready(Err(ReadError::Frame(FrameError::TooLarge {
                    size: needed,
                    max: self.buf.capacity(),
                })));
            }
        }
        let read = std::pin::pin!(io.read_buf(&mut self.buf));
        let polled = read.poll(cx).map_err(ReadError::Io);
        if self.buf.is_empty() && !matches!(polled, Poll::Ready(Ok(1..))) {
            // Nothing held between reads: the buffer goes back to this thread's pool.
            spare::READ.give(std::mem::take(&mut self.buf), self.size);
        }
        polled
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        spare::READ.give(std::mem::take(&mut self.buf), self.size);
    }
}

/// Why reading failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    Frame(FrameError),
    Io(io::Error),
}

/// A close frame's payload: the code (1005 when absent) and the reason.
///
/// # Errors
/// A one-byte payload, a code not allowed on the wire (RFC 6455 section 7.4), or a reason
/// that is not UTF-8.
pub(crate) fn parse_close(payload: &[u8]) -> Result<(u16, &str), FrameError> {
    match payload {
        [] => Ok((crate::close::NO_STATUS, "")),
        [_] => Err(FrameError::Protocol("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(FrameError::Protocol("close frame with a code not allowed"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| FrameError::Protocol("close reason is not UTF-8"))?;
            Ok((code, reason))
        }
    }
}

/// A close frame's payload for `code` and `reason`, the reason cut (at a character boundary)
/// to the 123 bytes a control frame leaves it.
pub(crate) fn close_payload(out: &mut Vec<u8>, code: u16, reason: &str) {
    out.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else if payload.len() <= 0xFFFF {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// Unmasks a client frame: (fin, opcode, payload).
    fn client_frame(bytes: &[u8]) -> (bool, u8, Vec<u8>, usize) {
        assert_eq!(bytes[1] & 0x80, 0x80, "a client frame is masked");
        let (len, mut at) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        at += 4;
        let payload = bytes[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        (bytes[0] & 0x80 != 0, bytes[0] & 0x0F, payload, at + len)
    }

    #[test]
    fn client_frames_of_each_length_form_unmask_to_their_payload() {
        for len in [0usize, 1, 7, 8, 9, 125, 126, 127, 65_535, 65_536, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = b"before".to_vec();
            let written = push_frame(&mut out, TEXT, [0xA1, 0x02, 0xF3, 0x44], |out| {
                out.extend_from_slice(&payload);
            });
            assert_eq!(written, len);
            assert_eq!(&out[..6], b"before");
            let (fin, opcode, unmasked, end) = client_frame(&out[6..]);
            assert!(fin);
            assert_eq!(opcode, TEXT);
            assert_eq!(unmasked, payload, "length {len}");
            assert_eq!(end, out.len() - 6, "no bytes past the frame, length {len}");
        }
    }

    #[test]
    fn the_wide_mask_equals_the_bytewise_rule_at_every_length() {
        let mask = [1, 2, 3, 250];
        for len in 0..40 {
            let mut data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            apply_mask(&mut data, mask);
            let expected: Vec<u8> = (0..len).map(|i| (i as u8) ^ mask[i % 4]).collect();
            assert_eq!(data, expected);
        }
    }

    #[test]
    fn server_heads_are_parsed_and_violations_refused() {
        let frame = server_frame(true, BINARY, &[7; 300]);
        assert_eq!(
            parse_head(&frame, 1 << 20),
            Ok(Some(Head {
                fin: true,
                opcode: BINARY,
                head_len: 4,
                payload_len: 300
            }))
        );
        assert_eq!(parse_head(&frame[..3], 1 << 20), Ok(None));
        assert_eq!(
            parse_head(&frame, 299),
            Err(FrameError::TooLarge {
                size: 300,
                max: 299
            })
        );
        let refused =
            |bytes: &[u8]| matches!(parse_head(bytes, 1 << 20), Err(FrameError::Protocol(_)));
        assert!(refused(&[0x80 | 0x40 | TEXT, 0]), "RSV1");
        assert!(refused(&[0x80 | 0x3, 0]), "opcode 3");
        assert!(refused(&[0x80 | 0xB, 0]), "opcode 11");
        assert!(refused(&[0x80 | TEXT, 0x80, 1, 2, 3, 4]), "masked");
        assert!(refused(&[PING, 0]), "fragmented ping");
        assert!(refused(&[0x80 | PING, 126, 0, 126]), "long ping");
        assert!(
            refused(&[0x80 | BINARY, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            "top bit"
        );
    }

    /// Reads every message from `bytes` with a reader of `size` bytes.
    fn read_all(bytes: &[u8], size: usize) -> Vec<Result<(u8, Vec<u8>), String>> {
        let mut reader = FrameReader::new(size, 1 << 20, 1 << 20, &[]);
        let mut io = bytes;
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        loop {
            match reader.poll_next(&mut io, &mut cx) {
                Poll::Ready(Ok(Some(Incoming::Data { text, at }))) => {
                    let kind = if text { TEXT } else { BINARY };
                    out.push(Ok((kind, reader.payload(&at).to_vec())));
                }
                Poll::Ready(Ok(Some(Incoming::Ping(at)))) => {
                    out.push(Ok((PING, reader.payload(&at).to_vec())));
                }
                Poll::Ready(Ok(Some(Incoming::Pong))) => out.push(Ok((PONG, Vec::new()))),
                Poll::Ready(Ok(Some(Incoming::Close(at)))) => {
                    out.push(Ok((CLOSE, reader.payload(&at).to_vec())));
                }
                Poll::Ready(Ok(None)) => return out,
                Poll::Ready(Err(error)) => {
                    out.push(Err(format!("{error:?}")));
                    return out;
                }
                Poll::Pending => panic!("a slice never waits"),
            }
        }
    }

    #[test]
    fn fragments_around_a_ping_make_one_message_whatever_the_buffer_size() {
        let mut bytes = server_frame(false, TEXT, b"hel");
        bytes.extend(server_frame(true, PING, b"p1"));
        bytes.extend(server_frame(false, CONTINUATION, b"lo "));
        bytes.extend(server_frame(true, CONTINUATION, b"world"));
        bytes.extend(server_frame(true, BINARY, &[9; 5000]));
        bytes.extend(server_frame(true, PONG, b""));
        for size in [16, 64, 4096, 16 << 10] {
            let got = read_all(&bytes, size);
            assert_eq!(
                got,
                vec![
                    Ok((PING, b"p1".to_vec())),
                    Ok((TEXT, b"hello world".to_vec())),
                    Ok((BINARY, vec![9; 5000])),
                    Ok((PONG, Vec::new())),
                ],
                "buffer of {size}"
            );
        }
    }

    #[test]
    fn fragment_order_violations_and_large_messages_are_refused() {
        let mut bytes = server_frame(true, CONTINUATION, b"x");
        let got = read_all(&bytes, 64);
        assert!(
            matches!(&got[..], [Err(e)] if e.contains("continuation")),
            "{got:?}"
        );
        bytes = server_frame(false, TEXT, b"a");
        bytes.extend(server_frame(true, TEXT, b"b"));
        let got = read_all(&bytes, 64);
        assert!(
            matches!(&got[..], [Err(e)] if e.contains("new message")),
            "{got:?}"
        );
        let mut reader = FrameReader::new(64, 100, 150, &[]);
        let mut bytes = server_frame(false, BINARY, &[1; 100]);
        bytes.extend(server_frame(true, CONTINUATION, &[1; 100]));
        let mut io = &bytes[..];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            reader.poll_next(&mut io, &mut cx),
            Poll::Ready(Err(ReadError::Frame(FrameError::TooLarge {
                size: 200,
                max: 150
            })))
        ));
    }

    #[test]
    fn a_declared_length_beyond_memory_is_refused_without_a_panic() {
        let mut reader = FrameReader::new(64, usize::MAX, usize::MAX, &[]);
        let mut head = vec![0x80 | BINARY, 127];
        head.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        let mut io = &head[..];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            reader.poll_next(&mut io, &mut cx),
            Poll::Ready(Err(ReadError::Frame(FrameError::TooLarge { .. })))
        ));
    }

    /// Writes `bytes` to the peer of a duplex stream (it has room for them).
    fn feed(peer: &mut tokio::io::DuplexStream, bytes: &[u8]) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let wrote = tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(peer), &mut cx, bytes);
        assert!(matches!(wrote, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    /// The next message's bytes, or `None` while the reader waits.
    fn next_data(reader: &mut FrameReader, io: &mut tokio::io::DuplexStream) -> Option<Vec<u8>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match reader.poll_next(io, &mut cx) {
            Poll::Ready(Ok(Some(Incoming::Data { at, .. }))) => Some(reader.payload(&at).to_vec()),
            Poll::Pending => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn between_frames_a_reader_holds_no_buffer_and_readers_on_a_thread_share_one() {
        let (mut a, mut a_peer) = tokio::io::duplex(1 << 16);
        let (mut b, mut b_peer) = tokio::io::duplex(1 << 16);
        let mut first = FrameReader::new(4096, 1 << 20, 1 << 20, &[]);
        let mut second = FrameReader::new(4096, 1 << 20, 1 << 20, &[]);
        assert_eq!(first.buf.capacity(), 0, "no buffer before the first read");

        feed(&mut a_peer, &server_frame(true, BINARY, b"one"));
        assert_eq!(next_data(&mut first, &mut a).as_deref(), Some(&b"one"[..]));
        let lent = first.buf.as_ptr();
        assert_eq!(next_data(&mut first, &mut a), None);
        assert_eq!(first.buf.capacity(), 0, "given back when the read waits");
        assert_eq!(spare::READ.kept(), [4096]);

        // The second reader reads into the buffer the first one just gave back.
        feed(&mut b_peer, &server_frame(true, TEXT, b"two"));
        assert_eq!(next_data(&mut second, &mut b).as_deref(), Some(&b"two"[..]));
        assert_eq!(second.buf.as_ptr(), lent);
        assert!(spare::READ.kept().is_empty());
        drop(second);
        assert_eq!(
            spare::READ.kept(),
            [4096],
            "a dropped reader gives its buffer back"
        );
    }

    #[test]
    fn a_frame_split_across_reads_keeps_its_bytes_while_the_reader_waits() {
        let (mut io, mut peer) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(4096, 1 << 20, 1 << 20, &[]);
        let frame = server_frame(true, BINARY, &[7; 300]);
        feed(&mut peer, &frame[..100]);
        assert_eq!(next_data(&mut reader, &mut io), None);
        assert_eq!(reader.buf.len(), 100, "the part read stays with its reader");
        assert!(spare::READ.kept().is_empty());
        feed(&mut peer, &frame[100..]);
        assert_eq!(next_data(&mut reader, &mut io), Some(vec![7; 300]));
    }

    #[test]
    fn a_buffer_grown_for_a_large_frame_is_freed_not_kept() {
        let (mut io, mut peer) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(64, 1 << 20, 1 << 20, &[]);
        feed(&mut peer, &server_frame(true, BINARY, &[1; 5000]));
        assert_eq!(next_data(&mut reader, &mut io), Some(vec![1; 5000]));
        assert_eq!(next_data(&mut reader, &mut io), None);
        assert_eq!(
            spare::READ.kept(),
            [64],
            "only a buffer of the configured size is kept"
        );
        // The next frame reads into a buffer of the configured size again.
        feed(&mut peer, &server_frame(true, BINARY, b"small"));
        assert_eq!(
            next_data(&mut reader, &mut io).as_deref(),
            Some(&b"small"[..])
        );
        assert_eq!(reader.buf.capacity(), 64);
    }

    #[test]
    fn close_payloads_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_close(&[]), Ok((1005, "")));
        assert_eq!(parse_close(&[0x03, 0xF3, b'h', b'i']), Ok((1011, "hi")));
        assert!(parse_close(&[0x03]).is_err());
        assert!(parse_close(&[0x03, 0xED]).is_err(), "1005 is never sent");
        assert!(
            parse_close(&[0x03, 0xE8, 0xFF]).is_err(),
            "reason not UTF-8"
        );
        let mut out = Vec::new();
        close_payload(&mut out, 1000, &"é".repeat(100));
        assert_eq!(out.len(), 2 + 122, "cut at a character boundary");
        assert!(parse_close(&out).is_ok());
    }

    #[test]
    fn masks_vary() {
        let masks: std::collections::HashSet<[u8; 4]> = (0..200).map(|_| next_mask()).collect();
        assert!(masks.len() > 190, "{} distinct of 200", masks.len());
    }
}
