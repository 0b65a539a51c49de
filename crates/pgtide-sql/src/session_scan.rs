//! The parts of a statement that change session state wherever they stand: function calls
//! (advisory locks, set_config), objects created in the temporary schema, DO block bodies, and
//! what pgtide cannot read with certainty. Used by [`crate::session::session_effects`].

use crate::lexer::{tokens, Token, TokenKind};
use crate::session::{is_fn, kw, mentions, push_once, SessionEffect};
use crate::set::set_config_call;

const ADVISORY_LOCKS: &[&str] = &[
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// A statement pgtide cannot read reliably: a Unicode escape with its own `UESCAPE` character
/// (not decoded here), a name or string whose escapes do not decode, or an unterminated quote.
/// Such a statement may hide any session change.
pub(crate) fn opaque(toks: &[Token<'_>]) -> Option<SessionEffect> {
    let unreadable = toks.iter().enumerate().any(|(i, t)| {
        let unicode = t.text.len() > 2 && t.text.as_bytes()[..2].eq_ignore_ascii_case(b"u&");
        match t.kind {
            TokenKind::QuotedIdent => !t.complete || (unicode && t.ident().is_none()),
            TokenKind::String(_) if unicode => !t.complete || t.string_value().is_none(),
            TokenKind::Ident => t.is_kw("uescape") && i > 0,
            _ => false,
        }
    });
    unreadable.then_some(SessionEffect::UntrackedSet)
}

/// The statement an EXPLAIN runs: what follows `EXPLAIN`, its parenthesised options or its
/// ANALYZE / VERBOSE keywords. Without ANALYZE it is only planned; taking its effects anyway
/// can only pin a client needlessly.
pub(crate) fn explained<'s>(statement: &'s str, toks: &[Token<'_>]) -> Option<&'s str> {
    let mut i = 1;
    if toks.get(i)?.kind == TokenKind::LParen {
        let mut depth = 0i32;
        while let Some(t) = toks.get(i) {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth -= 1,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                break;
            }
        }
    } else {
        while ["analyze", "analyse", "verbose"]
            .iter()
            .any(|k| kw(toks, i, k))
        {
            i += 1;
        }
    }
    statement.get(toks.get(i)?.start..)
}

/// Advisory lock and set_config calls anywhere in the statement. `plain_select` enables the
/// "runs exactly once" shape check for set_config.
pub(crate) fn scan_calls(toks: &[Token<'_>], plain_select: bool, out: &mut Vec<SessionEffect>) {
    // A FROM-less SELECT without clauses that could skip or repeat its target list.
    let once = plain_select && {
        let mut depth = 0i32;
        toks.iter().all(|t| {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth -= 1,
                _ => {}
            }
            depth != 0
                || ![
                    "from",
                    "where",
                    "having",
                    "group",
                    "limit",
                    "offset",
                    "fetch",
                    "union",
                    "intersect",
                    "except",
                    "into",
                    "window",
                ]
                .iter()
                .any(|k| t.is_kw(k))
        })
    };
    let mut i = 0;
    let mut depth = 0i32;
    while i < toks.len() {
        let t = &toks[i];
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth -= 1,
            _ => {}
        }
        if toks.get(i + 1).map(|n| n.kind) != Some(TokenKind::LParen) {
            i += 1;
            continue;
        }
        if ADVISORY_LOCKS.iter().any(|f| is_fn(t, f)) {
            push_once(out, SessionEffect::AdvisoryLock);
        } else if is_fn(t, "pg_advisory_unlock_all") {
            // Counted only where it surely runs (`SELECT pg_advisory_unlock_all()`, not
            // `... WHERE false`): an unlock that may not have run keeps the pin.
            let first_item = i == 1
                || (i == 3 && is_fn(&toks[1], "pg_catalog") && toks[2].kind == TokenKind::Dot);
            if once && depth == 0 && first_item && toks[0].is_kw("select") {
                push_once(out, SessionEffect::AdvisoryUnlockAll);
            }
        } else if is_fn(t, "set_config") {
            // Top level item: right after SELECT or a comma (or `pg_catalog.` just before).
            let mut p = i;
            if p >= 2 && toks[p - 1].kind == TokenKind::Dot && is_fn(&toks[p - 2], "pg_catalog") {
                p -= 2;
            }
            let item = depth == 0
                && p >= 1
                && (p == 1 && toks[0].is_kw("select") || toks[p - 1].kind == TokenKind::Comma);
            let (eff, close) = set_config_call(toks, i, once && item);
            if eff == SessionEffect::UntrackedSet {
                push_once(out, eff);
            } else {
                out.push(eff);
            }
            // Skip the arguments (their parens were balanced by set_config_call).
            i = close.max(i) + 1;
            continue;
        }
        i += 1;
    }
}

/// `SELECT ... INTO [LOCAL|GLOBAL] TEMP|TEMPORARY [TABLE] name`.
pub(crate) fn select_into_temp(toks: &[Token<'_>], out: &mut Vec<SessionEffect>) {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth -= 1,
            _ => {}
        }
        let after_dml = i > 0 && (toks[i - 1].is_kw("insert") || toks[i - 1].is_kw("merge"));
        if depth == 0 && t.is_kw("into") && !after_dml {
            // INTO [LOCAL|GLOBAL] [TEMP|TEMPORARY|UNLOGGED] [TABLE] name; a TEMP keyword or a
            // pg_temp.name (a table in the session's temporary schema) makes it temporary.
            let mut j = i + 1;
            let mut temp = false;
            for words in [
                &["local", "global"][..],
                &["temp", "temporary", "unlogged"],
                &["table"],
            ] {
                if let Some(w) = words.iter().find(|w| kw(toks, j, w)) {
                    temp |= *w == "temp" || *w == "temporary";
                    j += 1;
                }
            }
            let qualified = toks.get(j).is_some_and(is_pg_temp)
                && toks.get(j + 1).is_some_and(|t| t.kind == TokenKind::Dot);
            if temp || qualified {
                push_once(out, SessionEffect::TempTable);
            }
        }
    }
}

fn is_pg_temp(t: &Token<'_>) -> bool {
    t.ident()
        .is_some_and(|s| s == "pg_temp" || s.starts_with("pg_temp_"))
}

/// CREATE: temporary objects (TEMP keyword or a `pg_temp.` name); for CREATE TABLE ... AS and
/// materialized views the query runs now, so its calls count too.
pub(crate) fn create(toks: &[Token<'_>]) -> Vec<SessionEffect> {
    let mut out = Vec::new();
    let mut i = 1;
    if kw(toks, i, "or") && kw(toks, i + 1, "replace") {
        i += 2;
    }
    if kw(toks, i, "local") || kw(toks, i, "global") {
        i += 1;
    }
    let temp = kw(toks, i, "temp") || kw(toks, i, "temporary");
    if temp {
        i += 1;
    }
    let qualified_temp = toks
        .windows(2)
        .any(|w| is_pg_temp(&w[0]) && w[1].kind == TokenKind::Dot);
    if temp || qualified_temp {
        out.push(SessionEffect::TempTable);
    }
    if kw(toks, i, "unlogged") {
        i += 1;
    }
    if kw(toks, i, "table") || kw(toks, i, "materialized") {
        scan_calls(toks, false, &mut out);
    }
    out
}

/// Words in a DO body that can change session state pgtide does not follow there: dynamic SQL
/// (`EXECUTE`), and the session commands PL/pgSQL passes to the server as they are.
const OPAQUE_IN_DO: &[&str] = &[
    "execute",
    "listen",
    "unlisten",
    "prepare",
    "deallocate",
    "declare",
    "discard",
    "load",
    "close",
    "reset",
];

/// DO blocks are opaque code; we look lexically inside the body (one level, no PL/pgSQL
/// parse). The body yields `UntrackedSet` when it has dynamic SQL or a session command
/// ([`OPAQUE_IN_DO`]), calls set_config (unless constant and local) or has a statement starting
/// with SET (not SET LOCAL/TRANSACTION/CONSTRAINTS); `AdvisoryLock(UnlockAll)` for advisory
/// calls; `TempTable` for CREATE TEMP or `pg_temp.`. Functions it calls are not followed.
pub(crate) fn do_block(toks: &[Token<'_>]) -> Vec<SessionEffect> {
    let mut out = Vec::new();
    // The body is the string not preceded by LANGUAGE (`DO LANGUAGE 'plpgsql' $$..$$` is legal).
    let body = toks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !toks[i - 1].is_kw("language"))
        .find_map(|(_, t)| t.string_value());
    let Some(body) = body else {
        // A body pgtide cannot read (not a plain string constant): anything may happen. A bare
        // DO is a syntax error.
        return if toks.len() > 1 {
            vec![SessionEffect::UntrackedSet]
        } else {
            Vec::new()
        };
    };
    if !mentions(&body, &["set", "advisory", "temp", "u&"]) && !mentions(&body, OPAQUE_IN_DO) {
        return out;
    }
    let inner: Vec<Token<'_>> = tokens(&body).collect();
    // Dynamic SQL, or session commands PL/pgSQL runs as they are: not followed inside a body.
    if opaque(&inner).is_some()
        || inner
            .iter()
            .any(|t| OPAQUE_IN_DO.iter().any(|k| t.is_kw(k)))
    {
        return vec![SessionEffect::UntrackedSet];
    }
    scan_calls(&inner, false, &mut out);
    for (i, t) in inner.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &inner[p]);
        let stmt_start = prev.is_none_or(|p| {
            p.kind == TokenKind::Semicolon
                || ["begin", "then", "else", "loop"].iter().any(|k| p.is_kw(k))
        });
        let scoped = ["local", "transaction", "constraints"]
            .iter()
            .any(|k| kw(&inner, i + 1, k));
        // (RESET and EXECUTE already returned above.)
        if stmt_start && t.is_kw("set") && !scoped {
            push_once(&mut out, SessionEffect::UntrackedSet);
        }
        let temp = t.is_kw("create")
            && (kw(&inner, i + 1, "temp")
                || kw(&inner, i + 1, "temporary")
                || (kw(&inner, i + 1, "local") || kw(&inner, i + 1, "global"))
                    && (kw(&inner, i + 2, "temp") || kw(&inner, i + 2, "temporary")));
        if temp || is_pg_temp(t) && inner.get(i + 1).is_some_and(|n| n.kind == TokenKind::Dot) {
            push_once(&mut out, SessionEffect::TempTable);
        }
    }
    out
}
