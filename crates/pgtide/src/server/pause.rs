//! PAUSE / RESUME of a database (admin console): while paused, clients of that database wait
//! for a backend instead of getting one; transactions already running finish.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::upstream::pool::lock;

#[derive(Debug, Default)]
pub struct PauseGate {
    any: AtomicBool,
    paused: Mutex<HashSet<String>>,
    resumed: Notify,
}

impl PauseGate {
    pub fn pause(&self, database: &str) {
        lock(&self.paused).insert(database.to_string());
        self.any.store(true, Ordering::Release);
    }

    /// Resumes one database, or all of them (`None`).
    pub fn resume(&self, database: Option<&str>) {
        let mut paused = lock(&self.paused);
        match database {
            Some(db) => {
                paused.remove(db);
            }
            None => paused.clear(),
        }
        self.any.store(!paused.is_empty(), Ordering::Release);
        drop(paused);
        self.resumed.notify_waiters();
    }

    pub fn is_paused(&self, database: &str) -> bool {
        self.any.load(Ordering::Acquire) && lock(&self.paused).contains(database)
    }

    pub fn paused(&self) -> Vec<String> {
        let mut v: Vec<_> = lock(&self.paused).iter().cloned().collect();
        v.sort();
        v
    }

    /// Returns once `database` is not paused (at once when it is not).
    pub async fn wait(&self, database: &str) {
        loop {
            let resumed = self.resumed.notified();
            if !self.is_paused(database) {
                return;
            }
            resumed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_go_on_when_resumed() {
        let gate = Arc::new(PauseGate::default());
        gate.wait("app").await;
        gate.pause("app");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.wait("app").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        gate.wait("other").await;
        gate.resume(Some("app"));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("resumed")
            .expect("task");
    }
}
