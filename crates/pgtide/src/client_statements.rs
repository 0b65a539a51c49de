//! One client's prepared statements in transaction mode. Its names — from an extended-protocol
//! Parse or a SQL `PREPARE` — map to pgtide-wide statements; whichever backend serves the client
//! gets a statement it lacks injected right in front of the message that needs it, in the same
//! write, with the reply swallowed. SQL `EXECUTE` and `DEALLOCATE` are rewritten to pgtide's
//! names, so drivers that mix both (Rails deallocates protocol statements with SQL) just work.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pgtide_sql::{statement_names, StatementUse};
use pgtide_wire::{encode, frontend as ftag, Frame};

use crate::backend::BackendConn;
use crate::pool::Pool;
use crate::relay::{Completion, ReplyQueue};
use crate::statement_inject::{
    close_complete, ensure, make_room, parse_complete, reserved, too_many_statements_sql, Place,
    MAX_CLIENT_STATEMENTS, NOT_YOURS,
};
use crate::statements::{
    bind_names, has_session_effects, rewrite_bind, run_in_batch, target_message, Preparation,
    SchemaEpochs, SharedStatement,
};

/// The leased backend as statement handling sees it: where injected and rewritten messages go,
/// and the replies they are owed.
pub struct Backendward<'a> {
    pub conn: &'a mut BackendConn,
    pub out: &'a mut BytesMut,
    pub replies: &'a mut ReplyQueue,
}

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
enum SqlOp {
    Prepare(String, Arc<SharedStatement>),
    /// None: a name pgtide does not know, passed on for PostgreSQL to judge.
    Deallocate(Option<String>),
}

#[derive(Debug)]
pub struct ClientStatements {
    epochs: Arc<SchemaEpochs>,
    named: HashMap<String, Arc<SharedStatement>>,
    /// The client's last unnamed Parse: PostgreSQL keeps the unnamed statement until the next
    /// unnamed Parse, across transactions, so a client may Bind it in a later one (sqlx does).
    unnamed_parse: Option<Bytes>,
    /// The leased backend's unnamed statement is this client's.
    unnamed_on_backend: bool,
    /// The session effects of the last unnamed Parse, noted when it is bound.
    unnamed_effects_sql: Option<String>,
    /// SQL PREPAREs of the running query, confirmed in order by CommandComplete "PREPARE".
    pending_sql: VecDeque<SqlOp>,
    /// Makes this client's SQL-prepared statement names unique across the process.
    session_tag: u64,
    /// SQL PREPARE ran through the extended protocol under the client's own name (pgtide does
    /// not rewrite statement texts): the client is pinned, and its later SQL PREPAREs keep
    /// their own names too, so the backend sees the names the client uses.
    own_sql_names: bool,
    serial: u64,
}

impl ClientStatements {
    pub fn new(session_tag: u64, epochs: Arc<SchemaEpochs>) -> Self {
        ClientStatements {
            epochs,
            named: HashMap::new(),
            unnamed_parse: None,
            unnamed_on_backend: false,
            unnamed_effects_sql: None,
            pending_sql: VecDeque::new(),
            session_tag,
            serial: 0,
            own_sql_names: false,
        }
    }

    /// A new backend serves the client: its unnamed statement is someone else's.
    pub fn on_attach(&mut self) {
        self.unnamed_on_backend = false;
    }

    /// Re-creates the client's unnamed statement on a backend that has another one.
    fn ensure_unnamed(&mut self, b: &mut Backendward<'_>) {
        if self.unnamed_on_backend {
            return;
        }
        if let Some(parse) = &self.unnamed_parse {
            b.out.extend_from_slice(parse);
            b.replies.expect_swallowed(Completion::Parse, None);
            self.unnamed_on_backend = true;
        }
    }

    /// Makes sure the backend has `stmt` (see [`ensure`]), noting when that took the
    /// backend's unnamed statement. False when it must not be prepared again (stale): the
    /// caller sends the client's own name, and PostgreSQL reports it missing.
    fn ensure(&mut self, stmt: &SharedStatement, b: &mut Backendward<'_>, place: Place) -> bool {
        if !b.conn.prepared.touch(&stmt.global_name) && self.epochs.is_stale(&stmt.global_name) {
            return false;
        }
        if ensure(stmt, &mut *b.conn, &mut *b.out, b.replies, place) {
            self.unnamed_on_backend = false;
        }
        true
    }

    /// The client's statements named `global` went stale and the client is about to learn
    /// their new row shape (its batch describes them): they become fresh statements of the
    /// current epoch. Returns whether any did.
    pub fn renew(&mut self, global: &str) -> bool {
        let mut renewed = false;
        for stmt in self.named.values_mut() {
            if stmt.global_name != global {
                continue;
            }
            if let Some(fresh) = stmt.renewed(&self.epochs) {
                *stmt = Arc::new(fresh);
                renewed = true;
            }
        }
        renewed
    }

    /// The query text of the client's statement `name` ("" for the unnamed one).
    pub fn text_of(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            let parse = self.unnamed_parse.as_ref()?;
            return pgtide_wire::parse_message(parse.get(5..)?)
                .ok()
                .map(|v| v.query.to_string());
        }
        match &self.resolve(name)?.prepare {
            Preparation::Parse(parse) => pgtide_wire::parse_message(parse.get(5..)?)
                .ok()
                .map(|v| v.query.to_string()),
            Preparation::Sql(sql) => Some(sql.clone()),
        }
    }

    /// The parameter types of the client's statement `name` (empty for an SQL PREPARE, whose
    /// text carries them), for the result cache's key.
    pub fn param_types_of(&self, name: &str) -> Option<Vec<u32>> {
        let parse = if name.is_empty() {
            self.unnamed_parse.clone()?
        } else {
            match &self.resolve(name)?.prepare {
                Preparation::Parse(parse) => parse.clone(),
                Preparation::Sql(_) => return Some(Vec::new()),
            }
        };
        pgtide_wire::parse_message(parse.get(5..)?)
            .ok()
            .map(|v| v.param_types)
    }

    /// DISCARD ALL / DEALLOCATE ALL: the client has no statements any more.
    pub fn clear(&mut self) {
        self.named.clear();
        self.pending_sql.clear();
        self.own_sql_names = false;
    }

    /// Whether the client may have a statement named `name` (see [`MAX_CLIENT_STATEMENTS`]).
    fn has_room_for(&self, name: &str) -> bool {
        self.named.len() + self.pending_sql.len() < MAX_CLIENT_STATEMENTS
            || self.named.contains_key(name)
    }

    fn resolve(&self, name: &str) -> Option<Arc<SharedStatement>> {
        for op in self.pending_sql.iter().rev() {
            match op {
                SqlOp::Prepare(n, s) if n == name => return Some(s.clone()),
                SqlOp::Deallocate(Some(n)) if n == name => return None,
                _ => {}
            }
        }
        self.named.get(name).cloned()
    }

    fn remove(&mut self, name: &str) -> bool {
        let pending = self.pending_sql.len();
        self.pending_sql
            .retain(|op| !matches!(op, SqlOp::Prepare(n, _) if n == name));
        self.named.remove(name).is_some() || pending != self.pending_sql.len()
    }

    /// A named statement, built from a client Parse. None for the unnamed statement (which
    /// lives only inside the client's own batch) and for bodies the backend should reject.
    fn statement_of_parse(
        &self,
        frame: &Frame,
        search_path: Option<&str>,
    ) -> Option<(String, Arc<SharedStatement>)> {
        let view = pgtide_wire::parse_message(frame.body()).ok()?;
        if view.statement.is_empty() {
            return None;
        }
        let name_len = view.statement.len();
        let stmt = SharedStatement::from_parse(frame.body(), name_len, search_path, &self.epochs);
        Some((view.statement.to_string(), Arc::new(stmt)))
    }

    /// A Parse while no backend is leased: answered by pgtide when a backend of the pool has
    /// already accepted the same statement. Its Parse then follows the client to the backend
    /// of its next Bind or Describe.
    pub fn parse_without_backend(
        &mut self,
        frame: &Frame,
        search_path: Option<&str>,
        pool: &Pool,
        replies: &mut ReplyQueue,
    ) -> bool {
        match self.statement_of_parse(frame, search_path) {
            Some((name, stmt))
                if pool.statement_known(&stmt.global_name) && self.has_room_for(&name) =>
            {
                self.named.insert(name, stmt);
                replies.synthetic(parse_complete());
                true
            }
            _ => false,
        }
    }

    /// A Parse answered by pgtide from the result cache: the client has the statement now (its
    /// Parse follows it to the backend of its next Bind or Describe).
    pub fn register_parse(&mut self, frame: &Frame, search_path: Option<&str>) {
        match self.statement_of_parse(frame, search_path) {
            Some((name, stmt)) => {
                if self.has_room_for(&name) {
                    self.named.insert(name, stmt);
                }
            }
            None => {
                self.unnamed_parse = Some(frame.raw.clone());
                self.unnamed_on_backend = false;
                self.unnamed_effects_sql = None;
            }
        }
    }

    /// A Close while no backend is leased: statements are the client's names only, and portals
    /// do not outlive the transaction that made them, so pgtide answers it.
    pub fn close_without_backend(&mut self, frame: &Frame, replies: &mut ReplyQueue) -> bool {
        let Ok(target) = pgtide_wire::close_or_describe(frame.body()) else {
            return false;
        };
        if target.kind == b'S' && !target.name.is_empty() {
            let name = target.name.to_string();
            self.remove(&name);
        }
        replies.synthetic(close_complete());
        true
    }

    /// `failed_transaction`: PostgreSQL refuses the Parse (25P02) and keeps nothing, so it goes
    /// to the backend as it is and the client's name stays unknown.
    pub fn parse(
        &mut self,
        frame: &Frame,
        search_path: Option<&str>,
        failed_transaction: bool,
        b: Backendward<'_>,
    ) {
        let named = self
            .statement_of_parse(frame, search_path)
            .filter(|_| !failed_transaction);
        let Some((name, stmt)) = named else {
            // The unnamed statement, or a malformed body for the backend to reject itself.
            let view = pgtide_wire::parse_message(frame.body()).ok();
            if view.as_ref().is_some_and(|v| v.statement.is_empty()) {
                self.unnamed_parse = Some(frame.raw.clone());
                self.unnamed_on_backend = true;
            }
            if view.as_ref().is_none_or(|v| v.statement.is_empty()) {
                self.unnamed_effects_sql = view
                    .map(|v| v.query)
                    .filter(|q| has_session_effects(q))
                    .map(str::to_string);
            }
            b.replies.expect(Completion::Parse);
            b.out.extend_from_slice(&frame.raw);
            return;
        };
        if !self.has_room_for(&name) {
            // The backend raises the error itself, so the batch fails as PostgreSQL's would.
            run_in_batch(b.out, &too_many_statements_sql());
            b.replies.expect_swallowed(Completion::Parse, None);
            b.replies.expect_swallowed(Completion::Bind, None);
            b.replies.expect(Completion::Parse);
            self.unnamed_on_backend = false;
            return;
        }
        self.named.insert(name, stmt.clone());
        if b.conn.prepared.touch(&stmt.global_name) {
            b.replies.synthetic(parse_complete());
            return;
        }
        let Preparation::Parse(parse) = &stmt.prepare else {
            return;
        };
        make_room(
            &stmt.global_name,
            &mut *b.conn,
            &mut *b.out,
            b.replies,
            Place::InBatch,
        );
        b.out.extend_from_slice(parse);
        b.replies.expect_parse(stmt.global_name.clone());
    }

    /// Returns the text of the bound statement when it has session effects to note.
    pub fn bind(&mut self, frame: &Frame, mut b: Backendward<'_>) -> Option<String> {
        // Only the two names at the front matter here; PostgreSQL validates the rest (and
        // reports a malformed body itself, under the statement name it knows).
        let names = bind_names(frame.body()).map(|(portal, stmt)| (portal.len(), stmt.to_string()));
        let (effects, msg, global) = match names {
            Some((_, stmt)) if stmt.is_empty() => {
                self.ensure_unnamed(&mut b);
                (self.unnamed_effects_sql.clone(), None, None)
            }
            Some((portal_len, client_name)) => match self.resolve(&client_name) {
                Some(stmt) if self.ensure(&stmt, &mut b, Place::InBatch) => {
                    let msg = rewrite_bind(
                        frame.body(),
                        portal_len,
                        client_name.len(),
                        &stmt.global_name,
                    );
                    let global = Some(stmt.global_name.clone());
                    (stmt.effects_sql.clone(), Some(msg), global)
                }
                _ if reserved(&client_name) => {
                    let msg = rewrite_bind(frame.body(), portal_len, client_name.len(), NOT_YOURS);
                    (None, Some(msg), None)
                }
                _ => (None, None, None),
            },
            None => (None, None, None),
        };
        let prepares = |q: &str| {
            statement_names(q)
                .iter()
                .any(|r| r.kind == StatementUse::Prepare)
        };
        if effects.as_deref().is_some_and(prepares) {
            self.own_sql_names = true;
        }
        match global {
            Some(name) => b.replies.expect_on_statement(Completion::Bind, name),
            None => b.replies.expect(Completion::Bind),
        }
        b.out
            .extend_from_slice(msg.as_deref().unwrap_or(&frame.raw));
        effects
    }

    pub fn describe_or_close(&mut self, frame: &Frame, mut b: Backendward<'_>) {
        let close = frame.tag == ftag::CLOSE;
        let completion = if close {
            Completion::Close
        } else {
            Completion::Describe
        };
        let target = pgtide_wire::close_or_describe(frame.body())
            .ok()
            .filter(|t| t.kind == b'S')
            .map(|t| t.name.to_string());
        if target.as_deref() == Some("") && !close {
            self.ensure_unnamed(&mut b);
        }
        if let Some(name) = target.filter(|n| !n.is_empty()) {
            if close {
                // The backend keeps the statement for other clients; only this client's name goes.
                self.remove(&name);
                b.replies.synthetic(close_complete());
                return;
            }
            if let Some(stmt) = self
                .resolve(&name)
                .filter(|stmt| self.ensure(stmt, &mut b, Place::InBatch))
            {
                b.replies
                    .expect_on_statement(completion, stmt.global_name.clone());
                b.out
                    .extend_from_slice(&target_message(ftag::DESCRIBE, b'S', &stmt.global_name));
                return;
            }
            if reserved(&name) && !close {
                b.replies.expect(completion);
                b.out
                    .extend_from_slice(&target_message(ftag::DESCRIBE, b'S', NOT_YOURS));
                return;
            }
        }
        b.replies.expect(completion);
        b.out.extend_from_slice(&frame.raw);
    }

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
