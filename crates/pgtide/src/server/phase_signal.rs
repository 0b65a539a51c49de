//! How a session hears that the server's phase changed (draining, stopping) without touching
//! anything shared on its hot path. A `watch::Receiver` per session registers in the channel's
//! one waiter list, under its one mutex, on every turn of every session's event loop; this
//! signal is per session and lock-free (an atomic flag and an `AtomicWaker`). The server sets
//! the flags of all registered sessions when the phase changes, which happens once or twice in
//! a process's life. The same signal carries the periodic request to give idle memory back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

const PHASE: u8 = 1;
const TRIM: u8 = 2;

#[derive(Debug, Default)]
pub struct PhaseSignal {
    /// PHASE and TRIM bits set since the session last looked (one atomic on its hot path).
    pending: AtomicU8,
    /// The session gave its idle memory back and has not been busy since: no trim is asked.
    trimmed: AtomicBool,
    waker: AtomicWaker,
}

/// What woke a session: the server's phase changed, a trim was asked, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    pub phase: bool,
    pub trim: bool,
}

impl PhaseSignal {
    /// The phase changed: the session wakes and reads it.
    pub fn notify(&self) {
        self.raise(PHASE);
    }

    /// The periodic trim (server/mod.rs): a session not trimmed since it was last busy wakes
    /// and gives back its buffers if it is idle. A trimmed one is not woken at all, so 10,000
    /// idle clients cost the trim a load each.
    pub fn request_trim(&self) {
        if !self.trimmed.load(Ordering::Relaxed) {
            self.raise(TRIM);
        }
    }

    /// The session says whether it holds idle memory (false: it became busy again).
    pub fn set_trimmed(&self, trimmed: bool) {
        self.trimmed.store(trimmed, Ordering::Relaxed);
    }

    pub fn is_trimmed(&self) -> bool {
        self.trimmed.load(Ordering::Relaxed)
    }

    fn raise(&self, bit: u8) {
        self.pending.fetch_or(bit, Ordering::Release);
        self.waker.wake();
    }

    fn take(&self) -> Option<Wake> {
        match self.pending.swap(0, Ordering::AcqRel) {
            0 => None,
            bits => Some(Wake {
                phase: bits & PHASE != 0,
                trim: bits & TRIM != 0,
            }),
        }
    }

    /// Resolves once after each `notify` or `request_trim` (at once if one came since the
    /// last time), saying which.
    pub fn changed(&self) -> impl Future<Output = Wake> + '_ {
        std::future::poll_fn(move |cx| {
            if let Some(wake) = self.take() {
                return Poll::Ready(wake);
            }
            self.waker.register(cx.waker());
            // A notify between the check and the registration would be lost otherwise.
            match self.take() {
                Some(wake) => Poll::Ready(wake),
                None => Poll::Pending,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_a_waiting_session_once_per_change() {
        let signal = std::sync::Arc::new(PhaseSignal::default());
        let waiter = {
            let signal = signal.clone();
            tokio::spawn(async move { signal.changed().await })
        };
        tokio::task::yield_now().await;
        signal.notify();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        // Consumed: a second wait pends until the next change.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), signal.changed());
        assert!(pending.await.is_err());
        signal.notify();
        signal.changed().await;
    }

    #[tokio::test]
    async fn a_trim_wakes_only_a_session_not_trimmed_since_it_was_busy() {
        let signal = PhaseSignal::default();
        signal.request_trim();
        let wake = signal.changed().await;
        assert_eq!(
            wake,
            Wake {
                phase: false,
                trim: true
            }
        );
        signal.set_trimmed(true);
        signal.request_trim();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(20), signal.changed());
        assert!(quiet.await.is_err(), "a trimmed session is left alone");
        signal.set_trimmed(false);
        signal.request_trim();
        signal.notify();
        let wake = signal.changed().await;
        assert_eq!(
            wake,
            Wake {
                phase: true,
                trim: true
            }
        );
    }
}
