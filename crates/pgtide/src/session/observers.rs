//! The observers of the client's replies: each sees a backend message the client received
//! (never pgtide's own exchanges) and keeps its record true. In order: insights (latency, rows,
//! errors), the client's session state (settings and pins settle on COMMIT / ROLLBACK /
//! ReadyForQuery), its prepared statements, stale plans, the cache capture, write bookkeeping
//! (cache invalidation and read-your-writes at commit) and the schema epoch after DDL.

use super::*;

impl Session {
    /// A backend message the client received, as its observers see it. Called with a backend
    /// leased.
    pub(super) fn observe_reply(&mut self, frame: &Frame, prior_parameter: Option<&str>) {
        if self.insights.enabled() {
            self.observe_for_insights(frame.tag);
        }
        match frame.tag {
            btag::ERROR_RESPONSE => self.state.on_error(),
            btag::COMMAND_COMPLETE => self.on_command_complete(frame.body()),
            btag::PARAMETER_STATUS => {
                if let Ok((name, value)) = pgtide_wire::parameter_status(frame.body()) {
                    let pins_before = self.state.pins().len();
                    let observed = self
                        .state
                        .on_parameter_status(&name, prior_parameter, &value);
                    self.note_pins(pins_before, observed);
                }
            }
            btag::READY_FOR_QUERY => self.on_client_ready(),
            _ => {}
        }
    }

    fn observe_for_insights(&mut self, tag: u8) {
        if tag == btag::DATA_ROW {
            self.insights.on_row();
            return;
        }
        if !matches!(
            tag,
            btag::COMMAND_COMPLETE
                | btag::EMPTY_QUERY_RESPONSE
                | btag::PORTAL_SUSPENDED
                | btag::ERROR_RESPONSE
                | btag::READY_FOR_QUERY
        ) {
            return;
        }
        let Some(lease) = self.lease.as_ref() else {
            return;
        };
        let route = if self.router.on_replica() {
            crate::insights::Route::Replica
        } else {
            crate::insights::Route::Primary
        };
        let cx = crate::session::insights::Context {
            insights: &self.shared.insights,
            route,
            backend: &lease.pool.label,
            database: &self.pool.database,
            user: &self.pool.user,
            application_name: &self.registered.info.application_name,
        };
        match tag {
            btag::ERROR_RESPONSE => self.insights.on_error(&cx),
            btag::READY_FOR_QUERY => self.insights.on_ready(self.status, &cx),
            _ => self.insights.on_execute_done(&cx),
        }
    }

    /// A statement of the client's completed: transaction ends settle its session state, and
    /// SQL PREPARE / DEALLOCATE (ALL) / DISCARD ALL change its statements.
    fn on_command_complete(&mut self, body: &[u8]) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        // Read once for every observer below.
        let Ok(tag) = pgtide_wire::command_complete_tag(body) else {
            return;
        };
        self.state
            .on_command_complete(&mut lease.conn.settings, tag);
        if drops_prepared(tag) {
            self.statements.on_drop_all(&mut lease.conn);
        }
        self.statements.on_command_complete(tag);
    }

    /// A client batch ended, seen by the client or not (a stale plan's failed run, answered by
    /// its re-run, ends unseen): what it changed settles as PostgreSQL settled it.
    pub(super) fn settle_batch(&mut self) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        let pins_before = self.state.pins().len();
        let observed = self.state.on_ready(self.status, &mut lease.conn.settings);
        show_pins(&self.state, &self.registered, pins_before, observed);
        self.statements.on_ready(&mut lease.conn);
    }

    /// A client batch ended (its ReadyForQuery reached the client).
    fn on_client_ready(&mut self) {
        if self.lease.is_none() {
            return;
        }
        self.settle_batch();
        self.stale_plans.on_client_ready();
        if let Some(capture) = self.cache_capture.take() {
            capture.finish();
        }
        if self.status != IDLE {
            return;
        }
        // Portals end with their transaction.
        self.bound_effects.clear();
        self.cache_writes.commit(&self.shared.cache);
        let ryw = self.shared.config.load().routing.read_your_writes;
        // Only between the client's batches: behind part of a pipeline it would run inside the
        // client's batch, or be skipped with it after an error and take the client's
        // ReadyForQuery. Else at the ReadyForQuery that ends the pipeline.
        let between = self.replies.is_empty() && !self.unsynced;
        if let Some(sql) = between
            .then(|| self.router.after_transaction(ryw))
            .flatten()
        {
            // Asked before the backend goes back; the client does not wait.
            crate::session::prepared::query_or_refusal(&mut self.to_backend, sql);
            self.replies.expect_swallowed_query();
        }
        if self.ddl_in_flight {
            self.ddl_in_flight = false;
            self.shared.epochs.schema_changed();
        }
    }
}
