//! A read the replica refused or lost before any row reached the client runs again on the
//! primary, with the replies the client already has dropped from the re-run.

use super::*;

impl Session {
    /// The replica refused the client's read as a write (25006): if nothing of it reached the
    /// client yet, its error and ReadyForQuery are swallowed and it runs on the primary.
    pub(super) fn refused_by_replica(&mut self, body: &[u8]) -> bool {
        let replayable = self
            .replica_replay
            .as_ref()
            .is_some_and(ReplicaReplay::replayable);
        let refusal = replica_refusal(body);
        if !self.router.on_replica()
            || !replayable
            || refusal.is_none()
            || self.replies.len() != 1
            || !self.replies.swallow_next_ready()
        {
            return false;
        }
        if refusal == Some(Refusal::Write) {
            metrics::counter!(crate::metrics_names::REPLICA_WRITE_MISSES_TOTAL).increment(1);
            tracing::info!("a read the replica refused as a write runs on the primary");
            self.router.refused_as_write();
        }
        self.rerouting = true;
        true
    }

    /// Runs what the replica was given on the primary instead, dropping the replies the client
    /// already has. `lost`: the replica's connection broke (it is discarded, not returned).
    pub(super) async fn reroute_to_primary(&mut self, lost: bool) -> Result<()> {
        self.rerouting = false;
        let Some(replay) = self.replica_replay.take() else {
            return Ok(());
        };
        let taken_back = self
            .statements
            .abandon_in_flight(self.lease.as_mut().map(|l| &mut l.conn));
        self.state.abandon_batches(taken_back);
        if let Some(lease) = self.lease.take() {
            *self.cancel.slot.lock().await = None;
            let pool = lease.pool.clone();
            if lost {
                pool.discard(lease);
            } else {
                pool.release(lease);
            }
        }
        self.replies.clear();
        self.to_backend.clear();
        self.unsynced = false;
        self.insights.forget_pending();
        let lease = self.router.lease_primary(&self.shared).await?;
        self.attach(lease).await?;
        if self.router.take_refused_write() {
            // It wrote after all: read-your-writes and the cache treat it as a write.
            self.router.note_write();
            if self.shared.cache.in_use() {
                self.cache_writes
                    .note("", &intent::unknown_write(), &self.shared.cache);
            }
        }
        let (frames, sent) = replay.take();
        self.replay_drop = sent;
        for frame in frames {
            self.forward(frame);
        }
        Ok(())
    }

    /// The backend connection broke. A read on a replica with no row sent yet runs on the
    /// primary (true); anything else ends the session (false).
    pub(super) async fn reroute_after_loss(&mut self) -> bool {
        let replayable = self
            .replica_replay
            .as_ref()
            .is_some_and(ReplicaReplay::replayable);
        if !self.router.on_replica() || !replayable {
            return false;
        }
        tracing::warn!("replica connection lost mid-read: running it on the primary");
        metrics::counter!(crate::metrics_names::REPLICA_RETRIES_TOTAL).increment(1);
        self.reroute_to_primary(true).await.is_ok()
    }
}
