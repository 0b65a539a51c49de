//! The end of a transaction and of a session: the backend goes back to its pool when nothing
//! is owed, the session closes on drain or shutdown, and at the end the backend is returned
//! clean (reset when pinned) or discarded.

use super::*;

impl Session {
    /// Nothing is owed and the backend is idle outside a transaction.
    pub(super) fn transaction_done(&self) -> bool {
        self.mode == PoolMode::Transaction
            && self.replies.is_empty()
            && !self.unsynced
            && self.status == IDLE
            && self.to_backend.is_empty()
            && !self.state.is_pinned()
    }

    pub(super) async fn release(&mut self) {
        if self.lease.is_some() {
            self.cancel.set_target(None).await;
        }
        if let Some(lease) = self.lease.take() {
            lease.pool.clone().release(lease);
            self.registered.info.update(|live| {
                live.state = "idle";
                live.backend = None;
            });
        }
        // Whatever ran on a replica is answered: nothing to run elsewhere any more.
        self.replica_run = ReplicaRun::Idle;
        if self.shared.phase() != Phase::Running {
            self.close_with(ProxyError::ShuttingDown);
        }
    }

    pub(super) async fn on_phase_change(&mut self) {
        let phase = self.shared.phase();
        match phase {
            Phase::Running => {}
            // Idle clients go now; a client in a transaction goes when it ends (see release).
            Phase::Draining if self.lease.is_none() || self.mode == PoolMode::Session => {
                if self.replies.is_empty() && self.status == IDLE {
                    self.close_with(ProxyError::ShuttingDown)
                }
            }
            Phase::Draining => {}
            Phase::Stopping => self.close_with(ProxyError::Stopped),
        }
    }

    pub(super) fn close_with(&mut self, e: ProxyError) {
        if self.intake != Intake::Closing {
            e.write_to(&mut self.to_client);
            self.intake = Intake::Closing;
        }
    }

    /// Ends the session: tells the client why (when it can still hear), then makes sure the
    /// backend goes back clean or not at all.
    pub(super) async fn finish(mut self, end: End) -> End {
        match &end {
            End::ClientLeft => {}
            End::Error(ProxyError::ClientIo(_)) => {}
            End::Error(ProxyError::BackendLost(_)) if self.backend_fatal => {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    crate::net::send_all(&mut self.client_w, &self.to_client),
                )
                .await;
            }
            End::Error(e) => {
                e.write_to(&mut self.to_client);
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    crate::net::send_all(&mut self.client_w, &self.to_client),
                )
                .await;
            }
        }
        if !self.to_client.is_empty() && matches!(end, End::ClientLeft) {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                crate::net::send_all(&mut self.client_w, &self.to_client),
            )
            .await;
        }
        // Bounded: closing TLS first writes what rustls holds, and the client may not read.
        let close = self.client_w.shutdown();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
        if let Some(lease) = self.lease.take() {
            self.cancel.set_target(None).await;
            let backend_broken = matches!(end, End::Error(ProxyError::BackendLost(_)));
            let clean = self.replies.is_empty() && !self.unsynced && self.to_backend.is_empty();
            // A pinned backend holds state no other client may inherit: reset it like session mode.
            let session_mode = self.mode == PoolMode::Session || self.state.is_pinned();
            let status = self.status;
            let pool = lease.pool.clone();
            if backend_broken {
                pool.discard(lease);
            } else {
                tokio::spawn(crate::upstream::pool::reset_and_return(
                    pool,
                    lease,
                    clean,
                    status,
                    session_mode,
                ));
            }
        }
        end
    }
}
