//! What the session notes as the client's messages go out: a batch sent (its ReadyForQuery
//! settles it), Syncs the backend turned out to ignore, the session effects of SQL about to
//! run, and the client's pins as SHOW CLIENTS shows them.

use super::*;

impl Session {
    /// A client batch (Query, Sync, FunctionCall) went to the backend: its ReadyForQuery
    /// settles what it changed.
    pub(super) fn batch_sent(&mut self) {
        self.state.batch_sent();
        self.statements.batch_sent();
    }

    /// Syncs the backend turned out to ignore (copy-in mode) were counted as batch ends: they
    /// are not, and end nothing. They are the oldest in flight (right behind the COPY), not the
    /// latest: the client may have pipelined more batches behind the copy's data.
    pub(super) fn forget_ignored_syncs(&mut self) {
        let syncs = self.replies.take_ignored_syncs();
        if syncs > 0 {
            self.state.merge_oldest_batches(syncs);
            self.statements.merge_oldest_batches(syncs as u64);
        }
    }

    /// Notes the session effects of SQL the client is about to run (from its analysis, or
    /// `pgtide_sql::all_session_effects`). `prepare_carried`: SQL
    /// PREPAREs in it were given pgtide names and follow the client (no pin needed).
    pub(super) fn observe(&mut self, effects: &[pgtide_sql::SessionEffect], prepare_carried: bool) {
        let pins_before = self.state.pins().len();
        let observed = self.state.observe_effects(effects, prepare_carried);
        for _ in 0..observed.drops_all {
            let backend = self
                .lease
                .as_ref()
                .map(|l| l.conn.prepared.names())
                .unwrap_or_default();
            self.statements.drop_all_sent(backend);
        }
        self.note_pins(pins_before, observed);
    }

    /// Shows a change of the client's pins in SHOW CLIENTS and counts a new one.
    pub(super) fn note_pins(
        &mut self,
        pins_before: usize,
        observed: crate::session::client_state::Observed,
    ) {
        show_pins(&self.state, &self.registered, pins_before, observed);
    }
}

/// Shows a change of the client's pins in SHOW CLIENTS and counts a new one.
pub(super) fn show_pins(
    state: &ClientState,
    registered: &crate::frontend::clients::Registered,
    pins_before: usize,
    observed: crate::session::client_state::Observed,
) {
    if observed.pinned.is_some() || state.pins().len() != pins_before {
        let pins: Vec<&'static str> = state.pins().iter().copied().collect();
        registered.info.update(|live| live.pins = pins);
    }
    if let Some(reason) = observed.pinned {
        tracing::debug!(reason, "client pinned to its backend");
        metrics::counter!(crate::metrics_names::PINNED_CLIENTS_TOTAL, "reason" => reason)
            .increment(1);
    }
}
