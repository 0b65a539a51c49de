//! Everything pgtide needs from a simple-Query string, from one pass of the lexer: session
//! effects, statement-name references, whether it changes the schema, the classification for
//! routing and the result cache, and the fingerprint for insights.
//!
//! Each result equals what the function of its own computes ([`crate::all_session_effects`],
//! [`crate::statement_names`], [`crate::changes_schema`], [`crate::classify_uncached`] /
//! [`crate::Classifier::classify`], [`crate::fingerprint_with_params`]); `analysis_tests` checks
//! that on the test corpora and on random statements. The classification is decided from the
//! same tokens when the lexical layer can (most OLTP statements); otherwise, and only then, it
//! comes from the [`Classifier`](crate::Classifier)'s cache or sqlparser.

use std::sync::Arc;

use crate::classify::hints::in_comment;
use crate::classify::statement::{classify_tokens, unusual_escape};
use crate::classify::{Classification, Combined, Part, StatementKind};
use crate::fingerprint::{fingerprint_tokens, Fingerprint};
use crate::lexer::{Lexer, Token, TokenKind};
use crate::prepared::{names_in, NameRef};
use crate::session::{effects_in, SessionEffect};
use crate::split::{split_code, Segment};

/// What a simple-Query string means for pgtide (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The session effects of every statement, in order (as `all_session_effects`).
    pub effects: Vec<SessionEffect>,
    /// PREPARE / EXECUTE / DEALLOCATE names (as `statement_names`).
    pub names: Vec<NameRef>,
    /// A statement is CREATE / ALTER / DROP (as `changes_schema`).
    pub changes_schema: bool,
    /// As `Classifier::classify`; None when it was not asked for.
    pub classification: Option<Arc<Classification>>,
    /// As `fingerprint_with_params(..).0`.
    pub fingerprint: Fingerprint,
    /// The hash of the literals (as `params_hash`).
    pub params_hash: u64,
    /// One complete SELECT made of names, literals, built-in operators and parentheses that
    /// follow no name (no function call, INTO, FOR, Unicode escape or other operator): it
    /// writes nothing and changes no session state, whatever it reads, or PostgreSQL rejects
    /// it. Write bookkeeping needs no classification for it (as far as the lexer's reading
    /// goes: see `standard_conforming_strings`).
    pub plain_read: bool,
}

/// When [`Classifier::analyze_with`](crate::Classifier::analyze_with) classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifyMode {
    No,
    Yes,
    /// Unless the text is a [`Analysis::plain_read`] (all write bookkeeping needs to know).
    UnlessPlainRead,
}

/// [`Analysis`] of `sql`, classified without a cache and without configured write functions.
pub fn analyze(sql: &str) -> Analysis {
    analyze_with(sql, &[], ClassifyMode::Yes, |s| {
        Arc::new(crate::classify_uncached(s, &[]))
    })
}

/// [`Analysis`] of `sql`, classified as `classify` says; `undecided` classifies the whole text
/// when the lexical layer alone cannot (sqlparser is needed).
pub(crate) fn analyze_with(
    sql: &str,
    extra: &[String],
    classify: ClassifyMode,
    undecided: impl FnOnce(&str) -> Arc<Classification>,
) -> Analysis {
    let mut code: Vec<Token<'_>> = Vec::with_capacity(sql.len() / 5 + 4);
    let mut hint = None;
    // Where an unterminated comment starts: the statement holding it is rejected.
    let mut open_comment = None;
    for t in Lexer::new(sql) {
        if t.kind != TokenKind::Comment {
            code.push(t);
            continue;
        }
        if hint.is_none() {
            hint = in_comment(t.text);
        }
        if !t.complete {
            open_comment = Some(t.start);
        }
    }
    let mut segments: Vec<Segment> = Vec::new();
    split_code(sql, &code, &mut segments);

    let mut effects = Vec::new();
    let mut names = Vec::new();
    let mut changes_schema = false;
    let plain_read = segments.len() == 1
        && open_comment.is_none()
        && code.first().is_some_and(|t| t.is_kw("select"))
        && code.iter().all(plain_token)
        && !code.windows(2).any(|w| {
            matches!(w[0].kind, TokenKind::Ident | TokenKind::QuotedIdent)
                && w[1].kind == TokenKind::LParen
                && !w[0].is_any_kw(NOT_CALLS)
        });
    let classify = match classify {
        ClassifyMode::No => false,
        ClassifyMode::Yes => true,
        ClassifyMode::UnlessPlainRead => !plain_read,
    };
    let mut combined = classify.then(Combined::default);
    let mut decided = true;
    let mut rebased: Vec<Token<'_>> = Vec::new();
    for seg in &segments {
        let stmt = sql.get(seg.text.clone()).unwrap_or("");
        let own = code.get(seg.code.clone()).unwrap_or_default();
        let offset = seg.text.start;
        // The statement functions read offsets relative to the statement.
        let toks = if offset == 0 {
            own
        } else {
            rebased.clear();
            rebased.extend(own.iter().map(|t| Token {
                start: t.start - offset,
                ..*t
            }));
            &rebased[..]
        };
        changes_schema |= toks
            .first()
            .is_some_and(|t| t.is_kw("create") || t.is_kw("alter") || t.is_kw("drop"));
        let found = effects_in(stmt, Some(toks));
        if effects.is_empty() {
            effects = found;
        } else {
            effects.extend(found);
        }
        names_in(stmt, offset, toks, &mut names);
        if let Some(c) = &mut combined {
            let part = if open_comment.is_some_and(|at| seg.text.contains(&at)) {
                Some(Part::of(StatementKind::Write))
            } else {
                classify_tokens(stmt, toks, extra, false, false)
            };
            match part {
                Some(p) => c.add(p),
                None => {
                    combined = None;
                    decided = false;
                }
            }
        }
    }
    let classification = match combined {
        Some(c) => {
            crate::counts::classified();
            Some(Arc::new(c.finish(hint)))
        }
        None if !decided => Some(undecided(sql)),
        None => None,
    };
    let mut text = String::new();
    let (id, params_hash) = fingerprint_tokens(sql.len(), &code, &mut text);
    Analysis {
        effects,
        names,
        changes_schema,
        classification,
        fingerprint: Fingerprint { id, text },
        params_hash,
        plain_read,
    }
}

/// Words a `(` may follow without a call: PostgreSQL reserves them (or, EXISTS, keeps them
/// from naming a function), so `in (1, 2)` or `exists (SELECT ..)` calls nothing.
const NOT_CALLS: &[&str] = &[
    "in", "exists", "and", "or", "not", "on", "where", "when", "then", "else", "case", "from",
    "select", "having", "any", "all", "some", "values",
];

/// A token a [`Analysis::plain_read`] may hold: complete, no INTO / FOR, no Unicode escape
/// (`U&"set\0005Fconfig" UESCAPE ..` spells a call the lexer cannot see), and only the
/// built-in comparison and arithmetic operators (another operator may run any function).
fn plain_token(t: &Token<'_>) -> bool {
    use TokenKind as K;
    t.complete
        && !unusual_escape(t)
        && match t.kind {
            K::Ident => !t.is_any_kw(&["into", "for"]),
            K::Operator => matches!(
                t.text,
                "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "+" | "-" | "*" | "/" | "%" | "||"
            ),
            K::Comment | K::Other | K::Colon => false,
            _ => true,
        }
}
