//! A client's SQL-level statement names (`PREPARE`, `EXECUTE`, `DEALLOCATE` in simple
//! queries): given pgtide's names on the way in, and taking effect when PostgreSQL confirms the
//! statement ran.

use std::sync::Arc;

use pgtide_sql::{NameRef, StatementUse};
use pgtide_wire::status;

use super::{Backendward, ClientStatements};
use crate::session::prepared::inject::{
    make_room, reserved, too_many_statements_sql, Place, NOT_YOURS,
};
use crate::session::prepared::{
    has_session_effects, query_or_refusal, Preparation, SharedStatement,
};
use crate::upstream::conn::BackendConn;

/// A simple Query's SQL once pgtide's statement names are in.
#[derive(Debug, Default)]
pub(crate) struct RewrittenQuery {
    /// None when nothing in the SQL names a statement of this client.
    pub sql: Option<String>,
    /// The texts of EXECUTEd statements with session effects, for the caller to note.
    pub effects: Vec<String>,
}

/// A SQL PREPARE or DEALLOCATE of the running query, in statement order: each takes effect
/// when its CommandComplete confirms it ran (a failed statement stops the rest of the query).
#[derive(Debug)]
pub(super) enum SqlOp {
    Prepare(String, Arc<SharedStatement>),
    /// None: a name pgtide does not know, passed on for PostgreSQL to judge.
    Deallocate(Option<String>),
}

impl ClientStatements {
    /// Puts pgtide's statement names into a simple Query's SQL (PREPARE gets a fresh name,
    /// EXECUTE and DEALLOCATE the name of the client's statement), injecting in front of it
    /// whatever the backend lacks. Nothing changes in a failed transaction, where PostgreSQL
    /// rejects every statement anyway. `refs`: the statement names in `sql` (its analysis);
    /// `drops_at`: where its DEALLOCATE ALL / DISCARD ALL statements start
    /// ([`pgtide_sql::drop_all_starts`]; their drop lists were noted as they were observed).
    /// Names are resolved in statement order: a drop-all takes what the query prepared before
    /// it, and a name prepared after it is new even if the client had it before.
    pub(crate) fn rewrite_query(
        &mut self,
        sql: &str,
        refs: &[NameRef],
        drops_at: &[usize],
        status: u8,
        mut b: Backendward<'_>,
    ) -> RewrittenQuery {
        let mut result = RewrittenQuery::default();
        // A simple Query replaces the unnamed statement (PostgreSQL uses it internally).
        self.unnamed_parse = None;
        self.unnamed_on_backend = false;
        if status == status::FAILED {
            return result;
        }
        if refs.is_empty() {
            return result;
        }
        let mut out = String::with_capacity(sql.len() + 32);
        let mut copied = 0;
        let mut new_in_query: Vec<(String, Arc<SharedStatement>)> = Vec::new();
        // This query's entries in `drops_sent`: the last ones noted.
        let first_drop = self.drops_sent.len().saturating_sub(drops_at.len());
        let mut drops = drops_at.iter().enumerate().peekable();
        let mut dropped_all = false;
        for r in refs {
            while let Some((k, _)) = drops.next_if(|(_, at)| **at < r.statement.start) {
                self.dropped_with(first_drop + k, &new_in_query);
                new_in_query.clear();
                dropped_all = true;
            }
            let local = new_in_query
                .iter()
                .rev()
                .find(|(n, _)| *n == r.name)
                .map(|(_, s)| s.clone());
            // What the client had before this query, unless a drop-all in it came first.
            let earlier = (!dropped_all).then(|| self.resolve(&r.name)).flatten();
            let replacement = match r.kind {
                StatementUse::Prepare => match local.or(earlier) {
                    Some(existing) => {
                        // PostgreSQL says 42P05 (already exists): make sure the backend does.
                        if !self.ensure(&existing, &mut b, Place::BeforeQuery) {
                            continue;
                        }
                        existing.global_name.clone()
                    }
                    // Pinned with its own names on the backend: PostgreSQL checks them itself.
                    None if self.own_sql_names => continue,
                    None if !self.has_room_for(&r.name) => {
                        // PostgreSQL runs the statements before it, then fails here.
                        out.push_str(&sql[copied..r.statement.start]);
                        out.push_str(&too_many_statements_sql());
                        copied = r.statement.end;
                        continue;
                    }
                    None => {
                        self.serial += 1;
                        let global = format!("pgtide_q{}_{}", self.session_tag, self.serial);
                        let statement = &sql[r.statement.clone()];
                        let name_at = r.span.start - r.statement.start;
                        let prepare_sql = format!(
                            "{}{}{}",
                            &statement[..name_at],
                            global,
                            &statement[name_at + r.span.len()..]
                        );
                        let effects_sql = r
                            .body
                            .clone()
                            .map(|body| sql[body].to_string())
                            .filter(|body| has_session_effects(body));
                        // The backend has it once the query runs; on_ready forgets it if not.
                        make_room(
                            &global,
                            &mut *b.conn,
                            &mut *b.out,
                            b.replies,
                            Place::BeforeQuery,
                        );
                        let stmt = Arc::new(SharedStatement {
                            global_name: global.clone(),
                            prepare: Preparation::Sql(prepare_sql),
                            effects_sql,
                        });
                        new_in_query.push((r.name.clone(), stmt.clone()));
                        self.pending_sql
                            .push_back((self.batches_sent, SqlOp::Prepare(r.name.clone(), stmt)));
                        global
                    }
                },
                StatementUse::Execute => {
                    let stmt = match local {
                        Some(s) => Some(s),
                        None => earlier.filter(|s| self.ensure(s, &mut b, Place::BeforeQuery)),
                    };
                    match stmt {
                        Some(s) => {
                            result.effects.extend(s.effects_sql.clone());
                            s.global_name.clone()
                        }
                        None if reserved(&r.name) => NOT_YOURS.to_string(),
                        None => continue,
                    }
                }
                StatementUse::Deallocate => {
                    let known = local.is_some() || earlier.is_some();
                    new_in_query.retain(|(n, _)| *n != r.name);
                    // Forgotten when PostgreSQL confirms it (the query may fail before it).
                    let name = known.then(|| r.name.clone());
                    self.pending_sql
                        .push_back((self.batches_sent, SqlOp::Deallocate(name)));
                    if !known {
                        if reserved(&r.name) {
                            // Another client's statement on this backend: never theirs to drop.
                            out.push_str(&sql[copied..r.span.start]);
                            out.push_str(NOT_YOURS);
                            copied = r.span.end;
                        }
                        continue; // PostgreSQL reports the unknown name itself.
                    }
                    // Other clients may share the backend's statement: deallocate a stand-in
                    // made for the purpose, so the client still sees DEALLOCATE succeed.
                    self.serial += 1;
                    let stand_in = format!("pgtide_d{}_{}", self.session_tag, self.serial);
                    query_or_refusal(b.out, &format!("PREPARE {stand_in} AS SELECT 1"));
                    b.replies.expect_swallowed_query();
                    stand_in
                }
            };
            out.push_str(&sql[copied..r.span.start]);
            out.push_str(&replacement);
            copied = r.span.end;
        }
        for (k, _) in drops {
            self.dropped_with(first_drop + k, &new_in_query);
            new_in_query.clear();
        }
        out.push_str(&sql[copied..]);
        result.sql = Some(out);
        result
    }

    /// The query's drop-all noted at `drops_sent[at]` also takes the statements the query
    /// prepared before it (`new`): they were not there when it was noted.
    fn dropped_with(&mut self, at: usize, new: &[(String, Arc<SharedStatement>)]) {
        if let Some((_, client, backend)) = self.drops_sent.get_mut(at) {
            for (name, stmt) in new {
                client.push(name.clone());
                backend.push(stmt.global_name.clone());
            }
        }
    }

    /// A DEALLOCATE ALL or DISCARD ALL is being sent in the current batch: it drops the
    /// client's statements as they are now (confirmed or about to be) and `backend`'s, not
    /// what is prepared after it in the same query or pipeline.
    pub(crate) fn drop_all_sent(&mut self, backend: Vec<String>) {
        let mut names: Vec<String> = self.named.keys().cloned().collect();
        for (_, op) in &self.pending_sql {
            if let SqlOp::Prepare(n, _) = op {
                names.push(n.clone());
            }
        }
        self.drops_sent
            .push_back((self.batches_sent, names, backend));
    }

    /// A DEALLOCATE ALL or DISCARD ALL of the client's ran: the statements it was sent over
    /// are gone, on the client's side and on the backend.
    pub(crate) fn on_drop_all(&mut self, conn: &mut BackendConn) {
        let Some((_, client, backend)) = self.drops_sent.pop_front() else {
            // Not seen when sent (pgtide could not read the query): everything is gone.
            conn.prepared.clear();
            self.named.clear();
            self.own_sql_names = false;
            return;
        };
        for n in &client {
            self.named.remove(n);
        }
        for n in &backend {
            conn.prepared.forget(n);
        }
        self.own_sql_names = false;
    }

    /// Whether the client's next message must wait unread for the batches in flight to end:
    /// a SQL PREPARE, DEALLOCATE or drop-all of an earlier batch has not been answered, and
    /// the message is a Query naming statements or an extended-protocol message (which may
    /// name one). On a direct connection it runs after the earlier batch and sees whether that
    /// failed; pgtide resolves names when it forwards, so it must know the outcome first (a
    /// DEALLOCATE behind a PREPARE that fails answers 26000, not success). Never while the
    /// backend waits for the client's COPY data: the earlier batch cannot end without it.
    #[inline]
    pub(crate) fn waits_for_outcome(&mut self, next: &[u8], copy_data_owed: bool) -> bool {
        if self.pending_sql.is_empty() && self.drops_sent.is_empty() {
            // Nothing unanswered (every message but a few around SQL PREPARE): no cost.
            self.held = false;
            return false;
        }
        self.held = self.outcome_pending_for(next, copy_data_owed);
        self.held
    }

    fn outcome_pending_for(&self, next: &[u8], copy_data_owed: bool) -> bool {
        use pgtide_wire::frontend as ftag;
        // Only batches already ended by their Query or Sync: a drop-all earlier in the batch
        // still being sent is answered only at its Sync, which comes after this message.
        let earlier = |b: &u64| *b < self.batches_sent;
        let unanswered = self.pending_sql.iter().any(|(b, _)| earlier(b))
            || self.drops_sent.iter().any(|(b, ..)| earlier(b));
        unanswered
            && !copy_data_owed
            && match pgtide_wire::Frames::new(next).next() {
                Some((ftag::QUERY, body)) => pgtide_wire::query_text(body)
                    .is_ok_and(|sql| !pgtide_sql::statement_names(sql).is_empty()),
                Some((tag, _)) => {
                    matches!(tag, ftag::PARSE | ftag::BIND | ftag::DESCRIBE | ftag::CLOSE)
                }
                None => false,
            }
    }

    /// Whether a client Query waits for the batches in flight.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// Backend messages arrived: a held Query is looked at again (true when one was held).
    pub(crate) fn take_held(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }

    /// The client's SQL PREPAREs keep their own names (and so pin it).
    pub(crate) fn own_sql_names(&self) -> bool {
        self.own_sql_names
    }

    /// A client batch (Query, Sync, FunctionCall) went to the backend.
    pub(crate) fn batch_sent(&mut self) {
        self.batches_sent += 1;
    }

    /// The oldest `syncs` batches in flight end with no ReadyForQuery of their own (Syncs the
    /// backend ignored in copy-in mode, right behind the COPY): they are one batch with the
    /// one after them, and the batches pipelined later move down by `syncs`.
    pub(crate) fn merge_oldest_batches(&mut self, syncs: u64) {
        let oldest = self.batches_ended;
        let renumber = |b: &mut u64| {
            if *b >= oldest {
                *b = b.saturating_sub(syncs).max(oldest);
            }
        };
        self.pending_sql.iter_mut().for_each(|(b, _)| renumber(b));
        self.drops_sent.iter_mut().for_each(|(b, ..)| renumber(b));
        self.batches_sent = self.batches_sent.saturating_sub(syncs).max(oldest);
    }

    /// A CommandComplete of the client's query: "PREPARE" and "DEALLOCATE" confirm the oldest
    /// pending one.
    pub(crate) fn on_command_complete(&mut self, tag: &str) {
        if !matches!(tag, "PREPARE" | "DEALLOCATE") {
            return;
        }
        match self.pending_sql.pop_front() {
            Some((_, SqlOp::Prepare(name, stmt))) => {
                self.named.insert(name, stmt);
            }
            Some((_, SqlOp::Deallocate(Some(name)))) => {
                self.named.remove(&name);
            }
            _ => {}
        }
    }

    /// The client's oldest batch in flight ended: what it did not confirm failed or never
    /// ran. Later batches of a pipeline keep theirs.
    pub(crate) fn on_ready(&mut self, conn: &mut BackendConn) {
        let ended = self.batches_ended;
        while self.pending_sql.front().is_some_and(|(b, _)| *b <= ended) {
            if let Some((_, SqlOp::Prepare(_, stmt))) = self.pending_sql.pop_front() {
                conn.prepared.forget(&stmt.global_name);
            }
        }
        while self.drops_sent.front().is_some_and(|(b, ..)| *b <= ended) {
            self.drops_sent.pop_front();
        }
        self.batches_ended = (ended + 1).min(self.batches_sent);
    }

    /// The batches in flight were taken back unanswered (a read the replica refused runs
    /// again on the primary): what they would have done is forgotten, and sent again. Returns
    /// how many batches were taken back.
    pub(crate) fn abandon_in_flight(&mut self, conn: Option<&mut BackendConn>) -> u64 {
        let mut conn = conn;
        for (_, op) in self.pending_sql.drain(..) {
            if let (SqlOp::Prepare(_, stmt), Some(c)) = (op, conn.as_deref_mut()) {
                c.prepared.forget(&stmt.global_name);
            }
        }
        self.drops_sent.clear();
        let taken_back = self.batches_sent - self.batches_ended;
        self.batches_sent = self.batches_ended;
        taken_back
    }
}
