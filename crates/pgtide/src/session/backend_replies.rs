//! The backend's side of the session loop, in phases per message: read the frame and note what
//! the connection itself reports (status, parameters), judge it (forward, swallow, or act on it:
//! a stale plan's re-run, a replica's refusal or loss), deliver it, let the observers see what
//! the client saw, and release the backend when its transaction is over.

use super::*;

/// What to do after a backend message, besides forwarding or swallowing it.
#[derive(Default)]
struct Judgement {
    verdict: Option<Verdict>,
    /// Client messages of a stale plan's re-run, to send now.
    rerun: Option<Vec<Frame>>,
    /// The replica refused the read: it runs on the primary once its reply has ended.
    reroute: bool,
    /// The replica went away mid-read and the read was moved to the primary.
    moved: bool,
}

impl Session {
    /// Handles every complete frame the backend sent, then returns the backend if the
    /// transaction is over.
    pub(super) async fn on_backend_data(&mut self) -> Result<()> {
        buffer::make_room(&mut self.to_client);
        let decoder = FrameDecoder::new(BACKEND_MAX_MESSAGE);
        let mut forgotten = Vec::new();
        while let Some(lease) = self.lease.as_mut() {
            let frame = match decoder.decode(&mut lease.conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(ProxyError::BackendLost(
                        format!("bad message from server: {e}").into(),
                    ))
                }
            };
            let prior_parameter = self.note_connection_report(&frame)?;
            self.flush_synthetic();
            let own_exchange = self.replies.front_is_standalone();
            if own_exchange && frame.tag == btag::ERROR_RESPONSE {
                self.own_exchange_failed();
            }
            let verdict = self.replies.on_backend_message(frame.tag, &mut forgotten);
            self.forget_ignored_syncs();
            let judgement = self.judge(&frame, own_exchange).await;
            if judgement.moved {
                continue;
            }
            let verdict = judgement.verdict.unwrap_or(verdict);
            if verdict == Verdict::Forward {
                self.deliver(&frame);
                if !own_exchange {
                    self.stale_plans.on_forwarded(frame.tag);
                }
            }
            if let Some(lease) = self.lease.as_mut() {
                for name in forgotten.drain(..) {
                    lease.conn.prepared.forget(&name);
                }
                for name in self.replies.take_prepared() {
                    self.pool.note_statement(&name);
                }
                if !own_exchange && verdict == Verdict::Forward {
                    self.observe_reply(&frame, prior_parameter.as_deref());
                }
            }
            for frame in judgement.rerun.into_iter().flatten() {
                self.forward_unread(frame);
            }
            if judgement.reroute {
                Box::pin(self.reroute_to_primary(false)).await?;
                continue;
            }
            if frame.tag == btag::READY_FOR_QUERY {
                self.after_ready().await;
            }
        }
        if self.statements.take_held() | self.router.take_held() {
            // The batch it waited for may be over: the held one goes on (or is held again).
            Box::pin(self.on_client_data()).await?;
        }
        Ok(())
    }

    /// What the backend reports about its own connection: the transaction status of a
    /// ReadyForQuery, a changed parameter. Returns the parameter's value before the change.
    fn note_connection_report(&mut self, frame: &Frame) -> Result<Option<String>> {
        let Some(lease) = self.lease.as_mut() else {
            return Ok(None);
        };
        match frame.tag {
            btag::READY_FOR_QUERY => {
                self.status = pgtide_wire::ready_for_query_status(frame.body())
                    .map_err(|e| ProxyError::BackendLost(e.into()))?;
                Ok(None)
            }
            btag::PARAMETER_STATUS => {
                let prior = pgtide_wire::parameter_status(frame.body())
                    .ok()
                    .and_then(|(name, _)| lease.conn.params.get(&name).cloned());
                lease.conn.note_parameter(frame.body());
                Ok(prior)
            }
            _ => Ok(None),
        }
    }

    /// One of pgtide's own exchanges failed (a settings replay, say, whose later SETs
    /// PostgreSQL then skipped): the backend is not in the state pgtide recorded. It stays with
    /// this client, is given all its settings again, and is reset before anyone else gets it.
    fn own_exchange_failed(&mut self) {
        if self.mode != PoolMode::Transaction {
            return;
        }
        let pins_before = self.state.pins().len();
        let observed = self.state.unreadable();
        show_pins(&self.state, &self.registered, pins_before, observed);
        if let Some(lease) = self.lease.as_mut() {
            lease.conn.settings.clear();
        }
    }

    /// Decides what a backend message means beyond the reply queue's verdict: replica
    /// failures, stale plans, the end of pgtide's own exchanges.
    async fn judge(&mut self, frame: &Frame, own_exchange: bool) -> Judgement {
        let mut j = Judgement::default();
        match frame.tag {
            btag::ERROR_RESPONSE
                if self.router.on_replica()
                    && is_fatal(frame.body())
                    && self.replica_run.replayable() =>
            {
                // The replica is going away (shutdown, crash) before answering: the same as
                // a lost connection.
                j.moved = Box::pin(self.reroute_after_loss()).await;
            }
            btag::ERROR_RESPONSE if !own_exchange && self.refused_by_replica(frame.body()) => {
                j.verdict = Some(Verdict::Swallow);
            }
            btag::ERROR_RESPONSE => {
                if let Some((global, completion)) = self.replies.take_failed_statement() {
                    if self.stale_plans.on_error(
                        frame.body(),
                        &global,
                        completion,
                        &self.shared.epochs,
                        &mut self.statements,
                        &mut self.replies,
                    ) {
                        // The client never sees this run fail, but PostgreSQL did fail it.
                        self.state.on_error();
                        j.verdict = Some(Verdict::Swallow);
                    }
                }
            }
            btag::PARAMETER_DESCRIPTION
                if !own_exchange && self.stale_plans.drop_parameter_description() =>
            {
                j.verdict = Some(Verdict::Swallow);
            }
            btag::READY_FOR_QUERY if own_exchange => {
                j.rerun = self.stale_plans.take_rerun();
                if j.rerun.is_some() {
                    // The failed run was a client batch the client will not see end: it ends
                    // here, and its re-run is a batch of its own.
                    self.settle_batch();
                }
                j.reroute = matches!(self.replica_run, ReplicaRun::Refused(_));
                if self.router.capturing_lsn() {
                    self.router.wal_position_done();
                }
            }
            btag::DATA_ROW if own_exchange && self.router.capturing_lsn() => {
                self.router.on_wal_position(frame.body());
            }
            _ => {}
        }
        j
    }

    /// Passes a backend message on to the client (and to a cache miss's capture).
    fn deliver(&mut self, frame: &Frame) {
        if frame.tag == btag::ERROR_RESPONSE && is_fatal(frame.body()) {
            self.backend_fatal = true;
        }
        if let Some(capture) = &mut self.cache_capture {
            capture.on_message(frame.tag, &frame.raw);
        }
        self.emit(&frame.raw);
    }

    /// After a ReadyForQuery reached the client: pgtide's own replies that were waiting for it
    /// go out, and the backend is returned if the transaction is over.
    async fn after_ready(&mut self) {
        self.flush_synthetic();
        if self.replies.is_empty() && !self.unsynced && self.to_backend.is_empty() {
            self.cancel.running(false);
        }
        if self.transaction_done() {
            self.release().await;
        } else if self.mode == PoolMode::Session
            && self.shared.phase() != Phase::Running
            && self.replies.is_empty()
            && self.status == IDLE
        {
            self.close_with(ProxyError::ShuttingDown);
        }
    }
}
