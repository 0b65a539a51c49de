//! How a session hears that the server's phase changed (draining, stopping) without touching
//! anything shared on its hot path. A `watch::Receiver` per session registers in the channel's
//! one waiter list, under its one mutex, on every turn of every session's event loop; this
//! signal is per session and lock-free (an atomic flag and an `AtomicWaker`). The server sets
//! the flags of all registered sessions when the phase changes, which happens once or twice in
//! a process's life.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Debug, Default)]
pub struct PhaseSignal {
    changed: AtomicBool,
    waker: AtomicWaker,
}

impl PhaseSignal {
    /// The phase changed: the session wakes and reads it.
    pub fn notify(&self) {
        self.changed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once after each `notify` (at once if one came since the last time).
    pub fn changed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.changed.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A notify between the check and the registration would be lost otherwise.
            if self.changed.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
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
}
