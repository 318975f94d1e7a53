//! The session's event queue: bounded, and never shedding anything but model audio.
//!
//! Consecutive [`SessionEvent::AudioDropped`] reports the application has not read are merged
//! into one (their durations added), as drops of model audio are: the events the
//! application's own calls create do not grow with the calls.
//!
//! The session pushes events without waiting (it runs under the core's lock). When the
//! application reads slower than the server talks, the queue fills up to its capacity; from
//! there model audio is dropped instead of queued (and reported once per run of drops by a
//! [`SessionEvent::ModelAudioDropped`]) and every other event is still queued. At twice the
//! capacity (only events that are never shed get there) the session stops reading the
//! server's frames until the application has made room ([`is_full`] is what the reader waits
//! on), so TCP pushes back on the server and memory stays bounded. One frame adds a bounded
//! number of events past that point: its text is one event, and a `toolCall` frame of more
//! than [`MAX_TOOL_CALLS_PER_FRAME`](crate::MAX_TOOL_CALLS_PER_FRAME) calls is refused whole.
//!
//! [`is_full`]: EventQueue::is_full

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

use crate::SessionEvent;

/// A bounded single-consumer event queue.
#[derive(Debug)]
pub(crate) struct EventQueue {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Woken whenever the application takes an event out of a full queue.
    room: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<SessionEvent>,
    /// No more events will be pushed.
    ended: bool,
    /// The application's task waiting for an event.
    reader: Option<Waker>,
    /// Model audio shed so far.
    shed: Duration,
}

impl EventQueue {
    /// A queue that holds up to `capacity` events before it sheds model audio (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            room: Notify::new(),
        }
    }

    /// Model audio shed so far.
    pub(crate) fn shed(&self) -> Duration {
        self.lock().shed
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event`; model audio is dropped (and the drop reported) when the queue is full.
    pub(crate) fn push(&self, event: SessionEvent) {
        let waker = {
            let mut inner = self.lock();
            if inner.ended {
                return;
            }
            match event {
                SessionEvent::Audio { pcm, sample_rate } if inner.queue.len() >= self.capacity => {
                    let bytes_per_second = f64::from(sample_rate.max(1)) * 2.0;
                    let duration = Duration::from_secs_f64(pcm.len() as f64 / bytes_per_second);
                    inner.shed = inner.shed.saturating_add(duration);
                    crate::metrics::model_audio_shed(duration);
                    match inner.queue.back_mut() {
                        Some(SessionEvent::ModelAudioDropped { duration: total }) => {
                            *total += duration;
                        }
                        _ => inner
                            .queue
                            .push_back(SessionEvent::ModelAudioDropped { duration }),
                    }
                }
                // Microphone audio the session dropped (at a bound, or unconfirmed on a
                // connection that ended) is reported by the application's own pushes: a run of
                // such reports the application has not read yet is one event, so that pushing
                // into a full backlog with nobody reading adds no event after the first.
                SessionEvent::AudioDropped { duration } => match inner.queue.back_mut() {
                    Some(SessionEvent::AudioDropped { duration: total }) => *total += duration,
                    _ => inner
                        .queue
                        .push_back(SessionEvent::AudioDropped { duration }),
                },
                event => inner.queue.push_back(event),
            }
            inner.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// No more events: the reader sees the end once it has read what is queued.
    pub(crate) fn end(&self) {
        let waker = {
            let mut inner = self.lock();
            inner.ended = true;
            inner.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        self.room.notify_waiters();
    }

    /// Whether the queue holds twice its capacity or more: the session reads no server frame
    /// until the application makes room.
    pub(crate) fn is_full(&self) -> bool {
        let inner = self.lock();
        inner.queue.len() >= self.limit() && !inner.ended
    }

    /// Where reading stops: twice the capacity.
    fn limit(&self) -> usize {
        self.capacity.saturating_mul(2)
    }

    /// Waits until the queue is not full.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }

    /// How many events wait to be read.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// The next event, `Ready(None)` once the queue has ended and is empty.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        self.pop(Some(cx.waker()))
    }

    /// The next event, or `Pending` with `waker` to be woken by the next push (with `None`,
    /// a waker registered before is forgotten: the caller is about to look again itself).
    pub(crate) fn pop(&self, waker: Option<&Waker>) -> Poll<Option<SessionEvent>> {
        let (event, made_room) = {
            let mut inner = self.lock();
            let was_full = inner.queue.len() >= self.limit();
            match inner.queue.pop_front() {
                Some(event) => (event, was_full && inner.queue.len() < self.limit()),
                None if inner.ended => return Poll::Ready(None),
                None => {
                    match waker {
                        Some(waker) => match inner.reader.as_mut() {
                            Some(reader) => reader.clone_from(waker),
                            None => inner.reader = Some(waker.clone()),
                        },
                        None => inner.reader = None,
                    }
                    return Poll::Pending;
                }
            }
        };
        if made_room {
            self.room.notify_waiters();
        }
        Poll::Ready(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(bytes: usize) -> SessionEvent {
        SessionEvent::Audio {
            pcm: vec![0; bytes].into(),
            sample_rate: 24_000,
        }
    }

    fn next(queue: &EventQueue) -> Option<SessionEvent> {
        let mut cx = Context::from_waker(Waker::noop());
        match queue.poll_next(&mut cx) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }

    #[test]
    fn only_model_audio_is_shed_at_capacity_and_the_drop_is_reported_once_per_run() {
        let queue = EventQueue::new(2);
        queue.push(audio(480));
        queue.push(SessionEvent::TurnComplete);
        assert!(!queue.is_full());
        // 40 ms, then 20 ms more at 24 kHz: one report.
        queue.push(audio(1_920));
        queue.push(audio(960));
        // Never shed: queued past the capacity.
        queue.push(SessionEvent::Warning("kept".to_owned()));
        queue.push(audio(960));
        assert_eq!(queue.len(), 5);
        // Twice the capacity, with events that are never shed: the reader waits.
        assert!(queue.is_full());
        assert!(matches!(next(&queue), Some(SessionEvent::Audio { .. })));
        assert_eq!(next(&queue), Some(SessionEvent::TurnComplete));
        assert_eq!(
            next(&queue),
            Some(SessionEvent::ModelAudioDropped {
                duration: Duration::from_millis(60)
            })
        );
        assert_eq!(next(&queue), Some(SessionEvent::Warning("kept".to_owned())));
        assert_eq!(
            next(&queue),
            Some(SessionEvent::ModelAudioDropped {
                duration: Duration::from_millis(20)
            })
        );
        assert!(!queue.is_full());
        assert_eq!(next(&queue), None);
        queue.end();
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(queue.poll_next(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn consecutive_reports_of_dropped_microphone_audio_are_one_event() {
        let queue = EventQueue::new(2);
        let dropped = |ms| SessionEvent::AudioDropped {
            duration: Duration::from_millis(ms),
        };
        for _ in 0..10_000 {
            queue.push(dropped(20));
        }
        queue.push(SessionEvent::TurnComplete);
        queue.push(dropped(40));
        queue.push(dropped(60));
        assert_eq!(queue.len(), 3);
        assert_eq!(next(&queue), Some(dropped(200_000)));
        assert_eq!(next(&queue), Some(SessionEvent::TurnComplete));
        // Once read, a report is not added to: the next one is an event of its own.
        assert_eq!(next(&queue), Some(dropped(100)));
        queue.push(dropped(20));
        assert_eq!(next(&queue), Some(dropped(20)));
        assert_eq!(next(&queue), None);
    }
}
