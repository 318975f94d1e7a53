//! Byte buffers lent to connections while they hold bytes, a few per thread and per direction.
//!
//! A connection's read buffer is needed only while bytes of a frame are pending, and its write
//! buffer only while frames wait for the socket. Between frames each goes back to its thread's
//! pool, and the next connection served on that thread takes it: among hundreds of connections
//! a thread reads and encodes into the same few buffers, so the kernel's copies and the encoder
//! touch cache lines this thread just used (at 300 sessions a buffer of each connection's own
//! is cold every time), and an idle connection holds neither buffer.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Buffers a pool keeps per thread at most.
const KEPT: usize = 4;

type Buffers = RefCell<Vec<Vec<u8>>>;

thread_local! {
    static READ_BUFFERS: Buffers = const { RefCell::new(Vec::new()) };
    static WRITE_BUFFERS: Buffers = const { RefCell::new(Vec::new()) };
}

/// One direction's buffers, per thread.
pub(crate) struct Pool(&'static LocalKey<Buffers>);

/// Read buffers ([`crate::frame::FrameReader`]).
pub(crate) static READ: Pool = Pool(&READ_BUFFERS);
/// Write buffers (the connection's writer).
pub(crate) static WRITE: Pool = Pool(&WRITE_BUFFERS);

impl Pool {
    /// An empty buffer with room for at least `size` bytes, from this thread's pool when it
    /// has one.
    pub(crate) fn take(&self, size: usize) -> Vec<u8> {
        self.0
            .try_with(|pool| {
                let mut pool = pool.try_borrow_mut().ok()?;
                let at = pool.iter().rposition(|buf| buf.capacity() >= size)?;
                Some(pool.swap_remove(at))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// Gives `buf` back, emptied: kept unless the pool is full or `buf` holds more than `max`
    /// bytes of capacity (a buffer grown for a large frame is freed).
    pub(crate) fn give(&self, mut buf: Vec<u8>, max: usize) {
        if buf.capacity() == 0 || buf.capacity() > max {
            return;
        }
        buf.clear();
        // At thread exit the pool may be gone: the buffer is then freed.
        let _ = self.0.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut()
                && pool.len() < KEPT
            {
                pool.push(buf);
            }
        });
    }

    /// The capacities of the buffers this thread keeps.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Vec<usize> {
        self.0
            .with(|pool| pool.borrow().iter().map(Vec::capacity).collect())
    }

    /// Where the buffers this thread keeps start.
    #[cfg(test)]
    pub(crate) fn kept_at(&self) -> Vec<*const u8> {
        self.0
            .with(|pool| pool.borrow().iter().map(Vec::as_ptr).collect())
    }
}
