//! What one client's statements need on the leased backend: statements injected in front of
//! the message that needs them, LRU evictions, and the names and limits that keep one client's
//! statements its own.

use bytes::{Bytes, BytesMut};
use pgtide_wire::{encode, frontend as ftag, target};

use crate::session::prepared::{run_in_batch, target_message, Preparation, SharedStatement};
use crate::session::replies::{Completion, ReplyQueue};
use crate::upstream::conn::BackendConn;

/// Where an injected statement goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Inside the client's extended-protocol batch, before the message that needs it.
    InBatch,
    /// On its own, ended by its own Sync, before the client's simple Query.
    BeforeQuery,
}

/// Makes sure the backend has `stmt`, injecting it at `place` when it does not. Returns true
/// when the injection used (and so replaced) the backend's unnamed statement.
pub(crate) fn ensure(
    stmt: &SharedStatement,
    conn: &mut BackendConn,
    out: &mut BytesMut,
    replies: &mut ReplyQueue,
    place: Place,
) -> bool {
    if conn.prepared.touch(&stmt.global_name) {
        return false;
    }
    make_room(&stmt.global_name, conn, out, replies, place);
    let name = Some(stmt.global_name.clone());
    let expect = |replies: &mut ReplyQueue, completion, prepares| match place {
        Place::InBatch => replies.expect_swallowed(completion, prepares),
        Place::BeforeQuery => replies.expect_standalone(completion, prepares),
    };
    let used_unnamed = match &stmt.prepare {
        Preparation::Parse(parse) => {
            out.extend_from_slice(parse);
            expect(replies, Completion::Parse, name);
            false
        }
        Preparation::Sql(sql) => {
            run_in_batch(out, sql);
            expect(replies, Completion::Parse, None);
            expect(replies, Completion::Bind, None);
            expect(replies, Completion::Execute, name);
            true
        }
    };
    if place == Place::BeforeQuery {
        encode::sync(out);
        replies.expect_swallowed_query();
    }
    used_unnamed
}

/// Records `name` in the backend's LRU before it is prepared, closing the least recently used
/// statement first when the LRU is full.
pub(crate) fn make_room(
    name: &str,
    conn: &mut BackendConn,
    out: &mut BytesMut,
    replies: &mut ReplyQueue,
    place: Place,
) {
    let evicted = conn.prepared.insert(name);
    close_statement(evicted, out, replies, place);
}

fn close_statement(
    name: Option<String>,
    out: &mut BytesMut,
    replies: &mut ReplyQueue,
    place: Place,
) {
    let Some(name) = name else { return };
    match target_message(ftag::CLOSE, target::STATEMENT, &name) {
        Ok(close) => out.extend_from_slice(&close),
        Err(e) => {
            // Unreachable: the names pgtide gives statements are under 100 bytes.
            tracing::error!(error = %e, "could not encode a Close");
            return;
        }
    }
    match place {
        Place::InBatch => replies.expect_swallowed(Completion::Close, None),
        Place::BeforeQuery => {
            replies.expect_standalone(Completion::Close, None);
            encode::sync(out);
            replies.expect_swallowed_query();
        }
    }
}

/// Names of pgtide's own statements on a backend (shared by its clients, visible in
/// pg_prepared_statements). A client that names one it does not have gets PostgreSQL's
/// "does not exist" (26000) for a stand-in name instead of reaching another client's.
pub(crate) fn reserved(name: &str) -> bool {
    name.len() >= 7 && name.as_bytes()[..7].eq_ignore_ascii_case(b"pgtide_")
}

/// Named prepared statements one client may hold through pgtide, so that a client preparing
/// without end cannot grow pgtide's memory without end (drivers keep 100 to 1,000).
pub(crate) const MAX_CLIENT_STATEMENTS: usize = 10_000;

/// SQL that fails with `54000` (program_limit_exceeded) when run, in place of a Parse or
/// PREPARE past [`MAX_CLIENT_STATEMENTS`].
pub(crate) fn too_many_statements_sql() -> String {
    format!(
        "DO $pgtide$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = \
         'too many prepared statements: pgtide keeps at most {MAX_CLIENT_STATEMENTS} per client; \
         DEALLOCATE or Close some first'; END$pgtide$",
        crate::sqlstate::PROGRAM_LIMIT_EXCEEDED
    )
}

/// A statement name pgtide never prepares.
pub(crate) const NOT_YOURS: &str = "pgtide_not_prepared_by_this_client";

pub(crate) fn parse_complete() -> Bytes {
    Bytes::from_static(encode::PARSE_COMPLETE_MESSAGE)
}

pub(crate) fn close_complete() -> Bytes {
    Bytes::from_static(encode::CLOSE_COMPLETE_MESSAGE)
}
