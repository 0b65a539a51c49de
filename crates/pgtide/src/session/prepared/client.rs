//! One client's prepared statements in transaction mode. Its names — from an extended-protocol
//! Parse or a SQL `PREPARE` — map to pgtide-wide statements; whichever backend serves the client
//! gets a statement it lacks injected right in front of the message that needs it, in the same
//! write, with the reply swallowed. SQL `EXECUTE` and `DEALLOCATE` are rewritten to pgtide's
//! names, so drivers that mix both (Rails deallocates protocol statements with SQL) just work.

use pgtide_wire::ParseView;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pgtide_sql::{statement_names, StatementUse};
use pgtide_wire::{frontend as ftag, target, Frame, WireError};

use crate::session::prepared::inject::{
    close_complete, ensure, make_room, parse_complete, reserved, too_many_statements_sql, Place,
    MAX_CLIENT_STATEMENTS, NOT_YOURS,
};
use crate::session::prepared::{
    bind_names, fail_in_batch, parse_of, refuse_in_batch, rewrite_bind, target_message,
    Preparation, SchemaEpochs, SharedStatement,
};
use crate::session::replies::{Completion, ReplyQueue};
use crate::upstream::conn::BackendConn;
use crate::upstream::pool::Pool;

/// The leased backend as statement handling sees it: where injected and rewritten messages go,
/// and the replies they are owed.
pub(crate) struct Backendward<'a> {
    pub conn: &'a mut BackendConn,
    pub out: &'a mut BytesMut,
    pub replies: &'a mut ReplyQueue,
}

/// A client's statement name and pgtide's statement for it, or why it cannot be encoded.
type Named = Result<(String, Arc<SharedStatement>), WireError>;

#[path = "client_sql.rs"]
mod sql;
use sql::SqlOp;

#[derive(Debug)]
pub(crate) struct ClientStatements {
    epochs: Arc<SchemaEpochs>,
    named: HashMap<String, Arc<SharedStatement>>,
    /// The client's last unnamed Parse: PostgreSQL keeps the unnamed statement until the next
    /// unnamed Parse, across transactions, so a client may Bind it in a later one (sqlx does).
    unnamed_parse: Option<Bytes>,
    /// The leased backend's unnamed statement is this client's.
    unnamed_on_backend: bool,
    /// The session effects of the last unnamed Parse, noted when it is bound.
    unnamed_effects_sql: Option<String>,
    /// SQL PREPAREs and DEALLOCATEs sent, each with the client batch it is in, confirmed in
    /// order by their CommandComplete.
    pending_sql: VecDeque<(u64, SqlOp)>,
    /// DEALLOCATE ALL / DISCARD ALL sent, with their batch and what existed when each was sent
    /// (the client's names, the backend's names): what each drops once it runs.
    drops_sent: VecDeque<(u64, Vec<String>, Vec<String>)>,
    /// Client batches (Query, Sync, FunctionCall) sent and answered by ReadyForQuery: a
    /// pipelining client has later batches in flight when an earlier one ends.
    batches_sent: u64,
    batches_ended: u64,
    /// Makes this client's SQL-prepared statement names unique across the process.
    session_tag: u64,
    /// SQL PREPARE ran through the extended protocol under the client's own name (pgtide does
    /// not rewrite statement texts): the client is pinned, and its later SQL PREPAREs keep
    /// their own names too, so the backend sees the names the client uses.
    own_sql_names: bool,
    /// The client's next Query waits for the batches in flight (see `waits_for_outcome`).
    held: bool,
    serial: u64,
}

impl ClientStatements {
    pub(crate) fn new(session_tag: u64, epochs: Arc<SchemaEpochs>) -> Self {
        ClientStatements {
            epochs,
            named: HashMap::new(),
            unnamed_parse: None,
            unnamed_on_backend: false,
            unnamed_effects_sql: None,
            pending_sql: VecDeque::new(),
            drops_sent: VecDeque::new(),
            batches_sent: 0,
            batches_ended: 0,
            session_tag,
            serial: 0,
            own_sql_names: false,
            held: false,
        }
    }

    /// A new backend serves the client: its unnamed statement is someone else's.
    pub(crate) fn on_attach(&mut self) {
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
    pub(crate) fn renew(&mut self, global: &str) -> bool {
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
    pub(crate) fn text_of(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            let parse = self.unnamed_parse.as_ref()?;
            return parse_of(parse).map(|v| v.query.to_string());
        }
        match &self.resolve(name)?.prepare {
            Preparation::Parse(parse) => parse_of(parse).map(|v| v.query.to_string()),
            Preparation::Sql(sql) => Some(sql.clone()),
        }
    }

    /// The parameter types of the client's statement `name` (empty for an SQL PREPARE, whose
    /// text carries them), for the result cache's key.
    pub(crate) fn param_types_of(&self, name: &str) -> Option<Vec<u32>> {
        let parse = if name.is_empty() {
            self.unnamed_parse.clone()?
        } else {
            match &self.resolve(name)?.prepare {
                Preparation::Parse(parse) => parse.clone(),
                Preparation::Sql(_) => return Some(Vec::new()),
            }
        };
        parse_of(&parse).map(|v| v.param_types)
    }

    /// Whether the client may have a statement named `name` (see [`MAX_CLIENT_STATEMENTS`]).
    fn has_room_for(&self, name: &str) -> bool {
        self.named.len() + self.pending_sql.len() < MAX_CLIENT_STATEMENTS
            || self.named.contains_key(name)
    }

    fn resolve(&self, name: &str) -> Option<Arc<SharedStatement>> {
        for (_, op) in self.pending_sql.iter().rev() {
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
            .retain(|(_, op)| !matches!(op, SqlOp::Prepare(n, _) if n == name));
        self.named.remove(name).is_some() || pending != self.pending_sql.len()
    }

    /// A named statement, built from a client Parse. None for the unnamed statement (which
    /// lives only inside the client's own batch) and for bodies the backend should reject; an
    /// error when its Parse under pgtide's name would be too long.
    fn statement_of_parse(&self, frame: &Frame, search_path: Option<&str>) -> Option<Named> {
        if pgtide_wire::parse_statement_name(frame.body())
            .ok()?
            .is_empty()
        {
            // The unnamed statement: its text is not read here.
            return None;
        }
        let view = pgtide_wire::parse_message(frame.body()).ok()?;
        self.statement_of_view(&view, search_path)
    }

    /// [`statement_of_parse`](Self::statement_of_parse) of a Parse already read.
    fn statement_of_view(&self, view: &ParseView<'_>, search_path: Option<&str>) -> Option<Named> {
        if view.statement.is_empty() {
            return None;
        }
        let stmt = SharedStatement::from_parse(view, search_path, &self.epochs);
        Some(stmt.map(|stmt| (view.statement.to_string(), Arc::new(stmt))))
    }

    /// A Parse while no backend is leased: answered by pgtide when a backend of the pool has
    /// already accepted the same statement. Its Parse then follows the client to the backend
    /// of its next Bind or Describe.
    pub(crate) fn parse_without_backend(
        &mut self,
        frame: &Frame,
        search_path: Option<&str>,
        pool: &Pool,
        replies: &mut ReplyQueue,
    ) -> bool {
        match self.statement_of_parse(frame, search_path) {
            Some(Ok((name, stmt)))
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
    /// Keeps the unnamed statement's Parse as a copy of its own: a slice of the read buffer
    /// would keep that whole buffer from going back to the spare list (net/buffer.rs) for as
    /// long as the statement is kept. Drivers send the same Parse again for every execution:
    /// an equal one is not copied again.
    fn keep_unnamed_parse(&mut self, raw: &Bytes) {
        if self.unnamed_parse.as_deref() != Some(&raw[..]) {
            self.unnamed_parse = Some(Bytes::copy_from_slice(raw));
        }
    }

    pub(crate) fn register_parse(&mut self, frame: &Frame, search_path: Option<&str>) {
        match self.statement_of_parse(frame, search_path) {
            Some(Ok((name, stmt))) => {
                if self.has_room_for(&name) {
                    self.named.insert(name, stmt);
                }
            }
            // Too long under pgtide's name: unknown, so a later Bind of it fails in PostgreSQL.
            Some(Err(_)) => {}
            None => {
                self.keep_unnamed_parse(&frame.raw);
                self.unnamed_on_backend = false;
                self.unnamed_effects_sql = None;
            }
        }
    }

    /// A Close while no backend is leased: statements are the client's names only, and portals
    /// do not outlive the transaction that made them, so pgtide answers it.
    pub(crate) fn close_without_backend(
        &mut self,
        frame: &Frame,
        replies: &mut ReplyQueue,
    ) -> bool {
        let Ok(target) = pgtide_wire::close_or_describe(frame.body()) else {
            return false;
        };
        if target.kind == target::STATEMENT && !target.name.is_empty() {
            let name = target.name.to_string();
            self.remove(&name);
        }
        replies.synthetic(close_complete());
        true
    }

    /// `failed_transaction`: PostgreSQL refuses the Parse (25P02) and keeps nothing, so it goes
    /// to the backend as it is and the client's name stays unknown.
    /// `view`: the frame read (None: malformed); `session_effects`: whether its text has any.
    pub(crate) fn parse(
        &mut self,
        frame: &Frame,
        view: Option<&ParseView<'_>>,
        search_path: Option<&str>,
        failed_transaction: bool,
        session_effects: bool,
        mut b: Backendward<'_>,
    ) {
        let named = view
            .and_then(|view| self.statement_of_view(view, search_path))
            .filter(|_| !failed_transaction);
        let (name, stmt) = match named {
            Some(Ok(named)) => named,
            Some(Err(e)) => {
                refuse_in_batch(&mut b, Completion::Parse, &e);
                self.unnamed_on_backend = false;
                return;
            }
            None => {
                // The unnamed statement, or a malformed body for the backend to reject itself.
                if view.is_some_and(|v| v.statement.is_empty()) {
                    self.keep_unnamed_parse(&frame.raw);
                    self.unnamed_on_backend = true;
                }
                if view.is_none_or(|v| v.statement.is_empty()) {
                    self.unnamed_effects_sql = view
                        .map(|v| v.query)
                        .filter(|_| session_effects)
                        .map(str::to_string);
                }
                b.replies.expect(Completion::Parse);
                b.out.extend_from_slice(&frame.raw);
                return;
            }
        };
        if !self.has_room_for(&name) {
            fail_in_batch(&mut b, Completion::Parse, &too_many_statements_sql());
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
    pub(crate) fn bind(&mut self, frame: &Frame, mut b: Backendward<'_>) -> Option<String> {
        // Only the two names at the front matter here; PostgreSQL validates the rest (and
        // reports a malformed body itself, under the statement name it knows).
        let names = bind_names(frame.body()).map(|(_, stmt)| stmt.to_string());
        let (effects, msg, global) = match names {
            Some(stmt) if stmt.is_empty() => {
                self.ensure_unnamed(&mut b);
                (self.unnamed_effects_sql.clone(), None, None)
            }
            Some(client_name) => match self.resolve(&client_name) {
                Some(stmt) if self.ensure(&stmt, &mut b, Place::InBatch) => {
                    let msg = rewrite_bind(frame.body(), &stmt.global_name);
                    let global = Some(stmt.global_name.clone());
                    (stmt.effects_sql.clone(), Some(msg), global)
                }
                _ if reserved(&client_name) => {
                    (None, Some(rewrite_bind(frame.body(), NOT_YOURS)), None)
                }
                _ => (None, None, None),
            },
            None => (None, None, None),
        };
        let msg = match msg.transpose() {
            Ok(msg) => msg,
            Err(e) => {
                refuse_in_batch(&mut b, Completion::Bind, &e);
                self.unnamed_on_backend = false;
                return None;
            }
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

    pub(crate) fn describe_or_close(&mut self, frame: &Frame, mut b: Backendward<'_>) {
        let close = frame.tag == ftag::CLOSE;
        let completion = if close {
            Completion::Close
        } else {
            Completion::Describe
        };
        let target = pgtide_wire::close_or_describe(frame.body())
            .ok()
            .filter(|t| t.kind == target::STATEMENT)
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
                match target_message(ftag::DESCRIBE, target::STATEMENT, &stmt.global_name) {
                    Ok(msg) => {
                        b.replies
                            .expect_on_statement(completion, stmt.global_name.clone());
                        b.out.extend_from_slice(&msg);
                    }
                    Err(e) => {
                        refuse_in_batch(&mut b, completion, &e);
                        self.unnamed_on_backend = false;
                    }
                }
                return;
            }
            if reserved(&name) && !close {
                match target_message(ftag::DESCRIBE, target::STATEMENT, NOT_YOURS) {
                    Ok(msg) => {
                        b.replies.expect(completion);
                        b.out.extend_from_slice(&msg);
                    }
                    Err(e) => {
                        refuse_in_batch(&mut b, completion, &e);
                        self.unnamed_on_backend = false;
                    }
                }
                return;
            }
        }
        b.replies.expect(completion);
        b.out.extend_from_slice(&frame.raw);
    }
}
