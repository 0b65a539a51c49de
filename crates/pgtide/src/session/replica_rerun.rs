//! A read the replica refused or lost before any row reached the client runs again on the
//! primary, with the replies the client already has dropped from the re-run.

use super::*;

/// A read on a replica, from its lease to its answer or its re-run on the primary.
#[derive(Default)]
pub(super) enum ReplicaRun {
    /// No read on a replica that could still run elsewhere.
    #[default]
    Idle,
    /// On a replica: what the client sent is kept, and what reached it counted, for a re-run.
    Reading(ReplicaReplay),
    /// The replica refused it as a write: it runs on the primary once the refusal has ended.
    Refused(ReplicaReplay),
    /// Running again on the primary: this many replies the client already has are dropped.
    Replaying { drop: usize },
}

impl ReplicaRun {
    /// Still runnable elsewhere: nothing but headers reached the client (a refused read too,
    /// should the replica go away before its refusal has ended).
    pub(super) fn replayable(&self) -> bool {
        matches!(self, ReplicaRun::Reading(r) | ReplicaRun::Refused(r) if r.replayable())
    }

    /// A client message sent to the replica.
    pub(super) fn log(&mut self, frame: &Frame) {
        if let ReplicaRun::Reading(r) = self {
            r.log(frame);
        }
    }

    /// A reply is about to reach the client: false when a re-run drops it (the client has it).
    pub(super) fn reaches_client(&mut self, tag: Option<u8>) -> bool {
        match self {
            ReplicaRun::Replaying { drop } if *drop > 0 => {
                *drop -= 1;
                if *drop == 0 {
                    *self = ReplicaRun::Idle;
                }
                false
            }
            ReplicaRun::Reading(r) => {
                if let Some(tag) = tag {
                    r.sent(tag);
                }
                true
            }
            _ => true,
        }
    }
}

impl Session {
    /// The replica refused the client's read as a write (25006): if nothing of it reached the
    /// client yet, its error and ReadyForQuery are swallowed and it runs on the primary.
    pub(super) fn refused_by_replica(&mut self, body: &[u8]) -> bool {
        let replayable = self.replica_run.replayable();
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
        self.replica_run = match std::mem::take(&mut self.replica_run) {
            ReplicaRun::Reading(replay) => ReplicaRun::Refused(replay),
            other => other,
        };
        true
    }

    /// Runs what the replica was given on the primary instead, dropping the replies the client
    /// already has. `lost`: the replica's connection broke (it is discarded, not returned).
    pub(super) async fn reroute_to_primary(&mut self, lost: bool) -> Result<()> {
        let (ReplicaRun::Reading(replay) | ReplicaRun::Refused(replay)) =
            std::mem::take(&mut self.replica_run)
        else {
            return Ok(());
        };
        let taken_back = self
            .statements
            .abandon_in_flight(self.lease.as_mut().map(|l| &mut *l.conn));
        self.state.abandon_batches(taken_back);
        if let Some(lease) = self.lease.take() {
            self.cancel.set_target(None).await;
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
        self.lease = Some(lease);
        self.attach().await?;
        if self.router.take_refused_write() {
            // It wrote after all: read-your-writes and the cache treat it as a write.
            self.router.note_write();
            if self.shared.cache.tracks_writes() {
                self.cache_writes
                    .note("", &intent::unknown_write(), &self.shared.cache);
            }
        }
        let (frames, sent) = replay.take();
        if sent > 0 {
            self.replica_run = ReplicaRun::Replaying { drop: sent };
        }
        for frame in frames {
            self.forward_unread(frame);
        }
        Ok(())
    }

    /// The backend connection broke. A read on a replica with no row sent yet runs on the
    /// primary (true); anything else ends the session (false).
    pub(super) async fn reroute_after_loss(&mut self) -> bool {
        if !self.router.on_replica() || !self.replica_run.replayable() {
            return false;
        }
        tracing::warn!("replica connection lost mid-read: running it on the primary");
        metrics::counter!(crate::metrics_names::REPLICA_RETRIES_TOTAL).increment(1);
        self.reroute_to_primary(true).await.is_ok()
    }
}
