//! What a statement means for routing and caching: read / write / transaction control /
//! session command, the relations it reads and writes, whether it calls volatile functions,
//! and a routing hint from a comment.
//!
//! Primary is the answer to anything uncertain: a statement is [`StatementKind::Read`] only
//! when it is certainly a read without side effects. The pipeline per statement:
//!
//! 1. head keyword (lexer): transaction control, session commands, SHOW, EXPLAIN, COPY,
//!    PREPARE and the statements that can only be writes are decided here;
//! 2. one lexical scan ([`scan`]): side-effect and volatile function calls, row-locking
//!    clauses, and limits before sqlparser sees the text;
//! 3. the fast path ([`fast`]) names the relations of simple SELECT / INSERT / UPDATE / DELETE
//!    without a parser;
//! 4. otherwise sqlparser ([`ast`]), with a recursion limit; a parse failure is a write.
//!
//! [`Classifier`] caches results by text. Not seen: side effects inside user-defined functions
//! (list them in `[routing] write_functions`), operators or casts backed by such functions,
//! triggers, and rules.

mod ast;
mod cache;
mod fast;
mod functions;
pub(crate) mod hints;
mod names;
mod scan;
pub(crate) mod statement;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod standby_tests;
#[cfg(test)]
mod statements_tests;
#[cfg(test)]
mod tests;

pub use cache::Classifier;

use crate::lexer::{split_statements, tokens, trim_ws};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub kind: StatementKind,
    /// `/* pgtide:primary */` or `/* pgtide:replica */` in a comment anywhere in the text (first
    /// one wins).
    pub hint: Option<RouteHint>,
    /// Relations read, as written in the SQL (see the `names` module: unquoted parts
    /// lower-cased, quoted parts kept and re-quoted only when needed, schema-qualified when
    /// written so), deduplicated, in order of appearance. FROM/JOIN relations, subqueries, CTE
    /// bodies (not CTE names), COPY ... TO sources.
    pub reads: Vec<String>,
    /// Relations written: INSERT/UPDATE/DELETE/MERGE targets (writable CTEs too), TRUNCATE,
    /// COPY FROM, SELECT INTO, REFRESH MATERIALIZED VIEW, objects of CREATE/ALTER/DROP. Empty
    /// for a write whose targets are unknown (DO, CALL, EXECUTE, side-effect functions,
    /// statements sqlparser cannot parse).
    pub writes: Vec<String>,
    /// Calls a volatile function (now(), current_timestamp, random(), nextval, ...): the
    /// result cache must not keep it.
    pub volatile: bool,
    /// Number of statements in the text.
    pub statements: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// Certainly a read without side effects: may run on a replica.
    Read,
    /// May write, lock, have side effects, or was not understood: primary only.
    Write,
    /// Transaction control.
    Transaction(TransactionStatement),
    /// SET / RESET / SET LOCAL / DISCARD / DEALLOCATE (and SET SESSION CHARACTERISTICS):
    /// routing-neutral.
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatement {
    /// BEGIN / START TRANSACTION; `read_only` when it says READ ONLY.
    Begin { read_only: bool },
    /// BEGIN / START TRANSACTION ISOLATION LEVEL SERIALIZABLE (READ ONLY or not): a standby
    /// refuses serializable transactions (0A000), so primary only, and never deferred.
    BeginSerializable,
    /// SET TRANSACTION ... READ ONLY (`true`) / READ WRITE or no access mode (`false`).
    SetReadOnly(bool),
    /// COMMIT / END (also AND CHAIN).
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT / RELEASE / ROLLBACK TO: inside a transaction, no routing effect.
    Savepoint,
    /// PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED: primary.
    TwoPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteHint {
    Primary,
    Replica,
}

/// The classification of one statement, before statements are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub kind: StatementKind,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    pub volatile: bool,
}

impl Part {
    pub(crate) fn of(kind: StatementKind) -> Part {
        Part {
            kind,
            reads: Vec::new(),
            writes: Vec::new(),
            volatile: false,
        }
    }
}

/// Classifies a simple-Query string (possibly several statements) or one Parse's query text,
/// without a cache. `extra_write_functions`: names from `[routing] write_functions`, optionally
/// schema-qualified, compared ignoring ASCII case.
pub fn classify_uncached(sql: &str, extra_write_functions: &[String]) -> Classification {
    let hint = hints::find(sql);
    let single;
    let statements: &[&str] = if sql.contains(';') {
        single = split_statements(sql);
        &single
    } else if tokens(sql).next().is_some() {
        single = vec![trim_ws(sql)];
        &single
    } else {
        &[]
    };
    crate::counts::classified();
    let mut combined = Combined::default();
    for s in statements {
        combined.add(statement::classify(s, extra_write_functions, false));
    }
    combined.finish(hint)
}

/// The classification of a string from those of its statements, added in order.
#[derive(Default)]
pub(crate) struct Combined {
    acc: Option<Part>,
    statements: usize,
}

impl Combined {
    pub(crate) fn add(&mut self, p: Part) {
        self.statements += 1;
        let Some(acc) = &mut self.acc else {
            self.acc = Some(p);
            return;
        };
        acc.kind = match (acc.kind, p.kind) {
            (StatementKind::Write | StatementKind::Transaction(_), _)
            | (_, StatementKind::Write | StatementKind::Transaction(_)) => StatementKind::Write,
            (StatementKind::Read, _) | (_, StatementKind::Read) => StatementKind::Read,
            (StatementKind::Session, StatementKind::Session) => StatementKind::Session,
        };
        names::extend_unique(&mut acc.reads, p.reads);
        names::extend_unique(&mut acc.writes, p.writes);
        acc.volatile |= p.volatile;
    }

    pub(crate) fn finish(self, hint: Option<RouteHint>) -> Classification {
        let acc = self.acc.unwrap_or_else(|| Part::of(StatementKind::Write));
        Classification {
            kind: acc.kind,
            hint,
            reads: acc.reads,
            writes: acc.writes,
            volatile: acc.volatile,
            statements: self.statements,
        }
    }
}
