//! Cancel requests. Each client gets a (process id, secret key) of pgtide's own (in session mode
//! the process id is its backend's real one, the key still pgtide's); while it runs a
//! query the session records which backend serves it, so a CancelRequest reaches that backend and
//! nothing else. The per-session slot is an async mutex: releasing a backend waits for a cancel
//! in flight, so a late cancel can never hit the next client of that backend. A cancel while the
//! client has nothing running (even on a backend it keeps: session mode, an open transaction) is
//! not forwarded: PostgreSQL would act on it late, against the client's next statement, when the
//! signal reaches a busy backend after that statement arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng;

use crate::upstream::conn::CancelTarget;
use crate::upstream::pool::lock;

pub(crate) type CancelSlot = Arc<tokio::sync::Mutex<Option<CancelTarget>>>;

struct Entry {
    slot: CancelSlot,
    running: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct CancelRegistry {
    /// By (process id, secret key): real backend pids of different servers may be equal.
    entries: Mutex<HashMap<(i32, i32), Entry>>,
}

/// Removes the client's entry when its session ends.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pub process_id: i32,
    pub secret_key: i32,
    pub slot: CancelSlot,
    /// Set while the client waits for a reply from its backend; see [`Registration::running`].
    running: Arc<AtomicBool>,
}

impl Registration {
    /// The client sent its backend something to answer (true), or has been answered in full
    /// (false): only while true is a cancel forwarded.
    pub fn running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    /// Records the backend a cancel would reach (None: none). Waits while a cancel is being
    /// sent to the previous one; the wait's future is boxed, since it is rarely needed and a
    /// session's handlers would otherwise all carry room for it.
    pub async fn set_target(&self, target: Option<CancelTarget>) {
        match self.slot.try_lock() {
            Ok(mut slot) => *slot = target,
            Err(_) => *Box::pin(self.slot.lock()).await = target,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.entries).remove(&(self.process_id, self.secret_key));
    }
}

impl CancelRegistry {
    /// A registration under a process id of pgtide's own.
    pub fn register(self: &Arc<Self>) -> Registration {
        // Positive ids look like PostgreSQL pids to clients that print them.
        let process_id = rand::rng().random_range(1..i32::MAX);
        self.register_as(process_id)
    }

    /// A registration under `process_id` (a backend's real pid) with a secret key of pgtide's.
    pub fn register_as(self: &Arc<Self>, process_id: i32) -> Registration {
        let mut rng = rand::rng();
        let slot: CancelSlot = Arc::default();
        let running: Arc<AtomicBool> = Arc::default();
        let mut entries = lock(&self.entries);
        loop {
            let secret_key = rng.random::<i32>();
            if entries.contains_key(&(process_id, secret_key)) {
                continue;
            }
            entries.insert(
                (process_id, secret_key),
                Entry {
                    slot: slot.clone(),
                    running: running.clone(),
                },
            );
            return Registration {
                registry: self.clone(),
                process_id,
                secret_key,
                slot,
                running,
            };
        }
    }

    /// Forwards a client's CancelRequest; a wrong key or an idle client is silently ignored,
    /// exactly as PostgreSQL does.
    pub async fn cancel(&self, process_id: i32, secret_key: i32) {
        let (slot, running) = match lock(&self.entries).get(&(process_id, secret_key)) {
            Some(e) => (e.slot.clone(), e.running.clone()),
            None => {
                tracing::debug!(process_id, "cancel request for an unknown key ignored");
                return;
            }
        };
        let guard = slot.lock().await;
        if !running.load(Ordering::Acquire) {
            tracing::debug!(process_id, "cancel request for an idle client ignored");
            return;
        }
        if let Some(target) = guard.as_ref() {
            if let Err(e) = target.send().await {
                tracing::warn!(backend = %target.target.label(), error = %e, "forwarding cancel failed");
            }
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
