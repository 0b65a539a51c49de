//! Forwarding the client's messages to the leased backend: each one noted (statement names,
//! session effects, insights, writes) and owed its reply.

use super::*;

impl Session {
    /// Queues one client frame for the leased backend, noting the reply it is owed.
    /// [`forward`](Self::forward) of a frame whose text no one has read yet (a re-run's).
    pub(super) fn forward_unread(&mut self, frame: Frame) {
        let query = crate::session::analysis::query_frame(&frame);
        self.forward(frame, crate::session::analysis::query_sql(&query));
    }

    /// `sql`: a Query's text, read once by the caller (None for other messages, or a Query
    /// that is not UTF-8).
    pub(super) fn forward(&mut self, frame: Frame, sql: Option<&str>) {
        if self.replies.is_discarding() && frame.tag != ftag::SYNC {
            // The backend already failed this batch and ignores everything up to the Sync:
            // as if it never came (no statement created or closed, nothing owed).
            return;
        }
        self.cancel.running(true);
        self.replica_run.log(&frame);
        let transaction_mode = self.mode == PoolMode::Transaction;
        if transaction_mode {
            let batch_start = self.status == IDLE && !self.replies.awaits_ready();
            self.stale_plans.on_client_frame(&frame, batch_start);
        }
        match frame.tag {
            ftag::QUERY if transaction_mode => return self.forward_query(frame, sql),
            ftag::QUERY => {
                let analysis = self.query_analysis.take(
                    &frame,
                    sql,
                    &self.shared.classifier.load(),
                    pgtide_sql::ClassifyMode::No,
                );
                if let (Some(mut analysis), Some(sql)) = (analysis, sql) {
                    self.observe(&analysis.effects, false);
                    self.insights.on_query(
                        crate::session::analysis::text_bytes(&frame, sql),
                        std::mem::take(&mut analysis.fingerprint),
                        analysis.params_hash,
                        self.status != IDLE,
                    );
                }
                self.batch_sent();
                self.replies.expect(Completion::Ready)
            }
            ftag::FUNCTION_CALL => {
                // A fast-path call names its function by OID: pgtide cannot tell what it does.
                if transaction_mode {
                    let pins_before = self.state.pins().len();
                    let observed = self.state.unreadable();
                    self.note_pins(pins_before, observed);
                }
                self.router.note_write();
                self.batch_sent();
                self.replies.expect(Completion::Ready)
            }
            ftag::SYNC => {
                self.unsynced = false;
                self.batch_sent();
                self.replies.sync();
                self.forget_ignored_syncs();
            }
            ftag::COPY_DONE | ftag::COPY_FAIL => self.replies.copy_end(),
            // A Flush alone leaves nothing pending on the backend (messages before it do).
            ftag::FLUSH => {}
            ftag::PARSE if transaction_mode => return self.forward_parse(frame),
            ftag::BIND if transaction_mode => return self.forward_bind(frame),
            ftag::DESCRIBE | ftag::CLOSE if transaction_mode => {
                return self.forward_describe_or_close(frame)
            }
            ftag::PARSE => self.extended(Completion::Parse),
            ftag::BIND => self.extended(Completion::Bind),
            ftag::DESCRIBE => self.extended(Completion::Describe),
            ftag::CLOSE => self.extended(Completion::Close),
            ftag::EXECUTE => {
                self.insights.on_execute(self.status != IDLE);
                self.observe_execute(&frame);
                self.extended(Completion::Execute)
            }
            // CopyData / CopyDone / CopyFail belong to a statement already owed a reply.
            _ => {}
        }
        self.to_backend.extend_from_slice(&frame.raw);
    }

    /// An Execute of a portal whose statement changes session state: noted now.
    pub(super) fn observe_execute(&mut self, frame: &Frame) {
        if self.bound_effects.is_empty() {
            return;
        }
        let Ok(execute) = pgtide_wire::execute_message(frame.body()) else {
            return;
        };
        if let Some(i) = self
            .bound_effects
            .iter()
            .position(|(p, _)| p == execute.portal)
        {
            let (_, sql) = self.bound_effects.swap_remove(i);
            self.observe(&pgtide_sql::all_session_effects(&sql), false);
        }
    }

    pub(super) fn extended(&mut self, completion: Completion) {
        self.unsynced = true;
        self.replies.expect(completion);
    }

    pub(super) fn search_path(&self) -> Option<String> {
        self.state.settings().get("search_path").cloned()
    }

    /// DDL can change the row shape of statements prepared before it: new Parses get new names
    /// from now on, and again once it commits.
    pub(super) fn note_schema_change(&mut self, changes_schema: bool) {
        if changes_schema {
            self.shared.epochs.schema_changed();
            self.ddl_in_flight = true;
        }
    }

    pub(super) fn forward_parse(&mut self, frame: Frame) {
        self.unsynced = true;
        let mut session_effects = false;
        // Read once here, for the statement bookkeeping below as well.
        let view = pgtide_wire::parse_message(frame.body()).ok();
        let query = view.as_ref().map(|v| v.query);
        match query {
            Some(query) => {
                let facts = self.parse_facts.of(query);
                let changes_schema = facts.changes_schema;
                session_effects = facts.session_effects;
                self.note_schema_change(changes_schema);
            }
            None => {
                let pins_before = self.state.pins().len();
                let observed = self.state.unreadable();
                self.note_pins(pins_before, observed);
            }
        }
        let search_path = self.search_path();
        // Only when the backend surely is in a failed transaction: nothing sent since its
        // ReadyForQuery said so (a pipelined ROLLBACK may be on its way).
        let failed_transaction = self.status == FAILED
            && self.replies.is_empty()
            && !query.is_some_and(|q| {
                // PostgreSQL accepts a COMMIT / ROLLBACK even in a failed transaction.
                pgtide_sql::all_session_effects(q)
                    .iter()
                    .any(|e| matches!(e, pgtide_sql::SessionEffect::TransactionControl(_)))
            });
        let b = backendward(&mut self.lease, &mut self.to_backend, &mut self.replies);
        self.statements.parse(
            &frame,
            view.as_ref(),
            search_path.as_deref(),
            failed_transaction,
            session_effects,
            b,
        );
    }

    pub(super) fn forward_bind(&mut self, frame: Frame) {
        self.unsynced = true;
        let routing = self.router.active() && !self.router.on_replica();
        if routing || self.shared.cache.tracks_writes() || self.insights.enabled() {
            let text = crate::session::prepared::bind_names(frame.body())
                .and_then(|(_, name)| self.statements.text_of(name));
            if let Some(sql) = &text {
                self.note_if_write(sql, None);
            }
            let params = crate::session::insights::bind_params_hash(frame.body());
            self.insights.on_bind(text, params);
        }
        let b = backendward(&mut self.lease, &mut self.to_backend, &mut self.replies);
        if let Some(sql) = self.statements.bind(&frame, b) {
            // Its effects count when a portal of it is executed (a Bind alone runs nothing).
            let portal = crate::session::prepared::bind_names(frame.body())
                .map(|(portal, _)| portal.to_string())
                .unwrap_or_default();
            self.bound_effects.retain(|(p, _)| *p != portal);
            self.bound_effects.push((portal, sql));
        }
    }

    pub(super) fn forward_describe_or_close(&mut self, frame: Frame) {
        self.unsynced = true;
        let b = backendward(&mut self.lease, &mut self.to_backend, &mut self.replies);
        self.statements.describe_or_close(&frame, b);
    }

    /// A simple Query in transaction mode: its statement names become pgtide's.
    pub(super) fn forward_query(&mut self, frame: Frame, sql: Option<&str>) {
        let Some(sql) = sql else {
            // Not UTF-8 (a client_encoding such as LATIN1): pgtide cannot read what it does.
            let pins_before = self.state.pins().len();
            let observed = self.state.unreadable();
            self.note_pins(pins_before, observed);
            self.batch_sent();
            self.replies.expect(Completion::Ready);
            self.to_backend.extend_from_slice(&frame.raw);
            return;
        };
        let status = self.status;
        let mut analysis = {
            // Routing and cache lookups read the classification; write tracking only for what
            // may write.
            let classify = if self.router.active() || self.shared.cache.in_use() {
                pgtide_sql::ClassifyMode::Yes
            } else if self.shared.cache.tracks_writes() {
                pgtide_sql::ClassifyMode::UnlessPlainRead
            } else {
                pgtide_sql::ClassifyMode::No
            };
            let classifier = self.shared.classifier.load();
            let made = self
                .query_analysis
                .take(&frame, Some(sql), &classifier, classify);
            made.unwrap_or_else(|| classifier.analyze_with(sql, classify))
        };
        // Observed before its statement names are rewritten: a DEALLOCATE ALL in it drops
        // what exists now, and of what the rewrite prepares only what comes before it.
        let prepare_carried = !self.statements.own_sql_names();
        self.observe(&analysis.effects, prepare_carried);
        let drops_at = if analysis
            .effects
            .iter()
            .any(crate::session::prepared::drops_all)
        {
            pgtide_sql::drop_all_starts(sql)
        } else {
            Vec::new()
        };
        let b = backendward(&mut self.lease, &mut self.to_backend, &mut self.replies);
        let rewritten = self
            .statements
            .rewrite_query(sql, &analysis.names, &drops_at, status, b);
        self.insights.on_query(
            crate::session::analysis::text_bytes(&frame, sql),
            std::mem::take(&mut analysis.fingerprint),
            analysis.params_hash,
            status != IDLE,
        );
        self.note_schema_change(analysis.changes_schema);
        self.note_if_write(sql, Some(&analysis));
        for effects in &rewritten.effects {
            self.observe(&pgtide_sql::all_session_effects(effects), false);
        }
        self.batch_sent();
        self.replies.expect(Completion::Ready);
        match rewritten.sql {
            Some(sql) => crate::session::prepared::query_or_refusal(&mut self.to_backend, &sql),
            None => self.to_backend.extend_from_slice(&frame.raw),
        }
    }
}

/// The leased backend, its outgoing bytes and its reply queue, for statement handling (taken
/// field by field so the client's statements can be borrowed beside them).
fn backendward<'a>(
    lease: &'a mut Option<Lease>,
    out: &'a mut BytesMut,
    replies: &'a mut ReplyQueue,
) -> Backendward<'a> {
    let lease = lease
        .as_mut()
        .expect("forwarding only happens with a leased backend");
    Backendward {
        conn: &mut lease.conn,
        out,
        replies,
    }
}
