//! A client's SQL-level statement names (`PREPARE`, `EXECUTE`, `DEALLOCATE` in simple
//! queries): given pgtide's names on the way in, and taking effect when PostgreSQL confirms the
//! statement ran.

use std::sync::Arc;

use pgtide_sql::{statement_names, StatementUse};
use pgtide_wire::encode;

use super::{Backendward, ClientStatements};
use crate::backend::BackendConn;
use crate::statement_inject::{make_room, reserved, too_many_statements_sql, Place, NOT_YOURS};
use crate::statements::{has_session_effects, Preparation, SharedStatement};

/// A simple Query's SQL once pgtide's statement names are in.
#[derive(Debug, Default)]
pub struct RewrittenQuery {
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
    /// rejects every statement anyway.
    pub fn rewrite_query(
        &mut self,
        sql: &str,
        status: u8,
        mut b: Backendward<'_>,
    ) -> RewrittenQuery {
        let mut result = RewrittenQuery::default();
        // A simple Query replaces the unnamed statement (PostgreSQL uses it internally).
        self.unnamed_parse = None;
        self.unnamed_on_backend = false;
        if status == b'E' {
            return result;
        }
        let refs = statement_names(sql);
        if refs.is_empty() {
            return result;
        }
        let mut out = String::with_capacity(sql.len() + 32);
        let mut copied = 0;
        let mut new_in_query: Vec<(String, Arc<SharedStatement>)> = Vec::new();
        for r in refs {
            let local = new_in_query
                .iter()
                .rev()
                .find(|(n, _)| *n == r.name)
                .map(|(_, s)| s.clone());
            let replacement = match r.kind {
                StatementUse::Prepare => match local.or_else(|| self.resolve(&r.name)) {
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
                            .push_back(SqlOp::Prepare(r.name.clone(), stmt));
                        global
                    }
                },
                StatementUse::Execute => {
                    let stmt = match local {
                        Some(s) => Some(s),
                        None => self
                            .resolve(&r.name)
                            .filter(|s| self.ensure(s, &mut b, Place::BeforeQuery)),
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
                    let known = new_in_query.iter().any(|(n, _)| *n == r.name)
                        || self.resolve(&r.name).is_some();
                    new_in_query.retain(|(n, _)| *n != r.name);
                    // Forgotten when PostgreSQL confirms it (the query may fail before it).
                    let name = known.then(|| r.name.clone());
                    self.pending_sql.push_back(SqlOp::Deallocate(name));
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
                    encode::query(b.out, &format!("PREPARE {stand_in} AS SELECT 1"));
                    b.replies.expect_swallowed_query();
                    stand_in
                }
            };
            out.push_str(&sql[copied..r.span.start]);
            out.push_str(&replacement);
            copied = r.span.end;
        }
        out.push_str(&sql[copied..]);
        result.sql = Some(out);
        result
    }

    /// The client's statement names now (confirmed or about to be), for a DEALLOCATE ALL
    /// being sent: those are the ones it drops once it runs.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.named.keys().cloned().collect();
        for op in &self.pending_sql {
            if let SqlOp::Prepare(n, _) = op {
                names.push(n.clone());
            }
        }
        names
    }

    /// A DEALLOCATE ALL ran: the statements the client had when it was sent are gone.
    pub fn forget(&mut self, names: &[String]) {
        for n in names {
            self.named.remove(n);
        }
        self.own_sql_names = false;
    }

    /// The client's SQL PREPAREs keep their own names (and so pin it).
    pub fn own_sql_names(&self) -> bool {
        self.own_sql_names
    }

    pub fn has_pending_sql(&self) -> bool {
        !self.pending_sql.is_empty()
    }

    /// A CommandComplete of the client's query: "PREPARE" and "DEALLOCATE" confirm the oldest
    /// pending one.
    pub fn on_command_complete(&mut self, body: &[u8]) {
        if body != b"PREPARE\0" && body != b"DEALLOCATE\0" {
            return;
        }
        match self.pending_sql.pop_front() {
            Some(SqlOp::Prepare(name, stmt)) => {
                self.named.insert(name, stmt);
            }
            Some(SqlOp::Deallocate(Some(name))) => {
                self.named.remove(&name);
            }
            _ => {}
        }
    }

    /// The client's query ended: PREPAREs it did not confirm failed or never ran.
    pub fn on_ready(&mut self, conn: &mut BackendConn) {
        for op in self.pending_sql.drain(..) {
            if let SqlOp::Prepare(_, stmt) = op {
                conn.prepared.forget(&stmt.global_name);
            }
        }
    }
}
