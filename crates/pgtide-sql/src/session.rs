//! What one statement does to session state that transaction pooling must carry or pin.
//!
//! Cost: the common case (SELECT/INSERT/UPDATE/DELETE mentioning none of "advisory",
//! "set_config", and for SELECT/WITH "temp") lexes one token and makes one byte scan of the text
//! for the pre-check, with no allocation. Timing sanity (ad hoc, release build, shared 2-core
//! box): ~50-120 ns for a one-line SELECT/INSERT, ~3 us for a 4 KB SELECT, ~250 ns for a SET or
//! an advisory-lock SELECT, which are fully tokenized into a small `Vec`.
//!
//! Conservative by design: when a statement changes session state in a way we cannot replay
//! (non-constant `set_config`, a SET inside a DO block, syntax we do not recognise after SET),
//! the answer is [`SessionEffect::UntrackedSet`] so the caller pins the client.
//!
//! Not seen (lexical layer only): state changed inside functions or procedures called by the
//! statement, views that become temporary because they reference a temp table, `PREPARE`d
//! statements whose body takes a lock when later EXECUTEd, and `pg_advisory_unlock(key)` (which
//! cannot be counted reliably since `pg_try_advisory_lock` may fail); a client holding session
//! advisory locks stays pinned until `pg_advisory_unlock_all()`, DISCARD ALL or disconnect.

pub use crate::quote::{
    quote_ident, quote_literal, raw_value_as_set_text, startup_options_to_sets, valid_guc_name,
};

use crate::lexer::{split_statements, tokens, Token, TokenKind};
use crate::set::{parse_reset, parse_set, set_config_call};

/// One session-level consequence of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    /// Session SET (all spellings, and `set_config(name, value, false)` with constant arguments).
    /// `name` is the lowercase GUC name ("timezone" for TIME ZONE, "client_encoding" for NAMES,
    /// "search_path" for SCHEMA, "role", "session_authorization"); it is always a plain dotted
    /// identifier, safe to splice unquoted. `value` is SQL text ready to send after
    /// `SET name TO ` (e.g. `'UTC'`, `public, "My Schema"`, `-1`, `on`).
    Set {
        name: String,
        value: String,
    },
    /// SET LOCAL / `set_config(.., true)`: transaction-scoped, nothing to carry.
    SetLocal {
        name: String,
    },
    /// RESET name, `SET name TO DEFAULT`, `SET TIME ZONE LOCAL`, `SET ROLE NONE`, ...
    Reset {
        name: String,
    },
    ResetAll,
    /// DISCARD ALL: also drops prepared statements, temp objects, LISTENs, advisory locks.
    DiscardAll,
    /// DEALLOCATE [PREPARE] name | ALL (`None` = ALL).
    Deallocate {
        name: Option<String>,
    },
    /// SQL-level PREPARE name [(types)] AS ...
    Prepare {
        name: String,
    },
    /// SQL-level EXECUTE name [(args)].
    Execute {
        name: String,
    },
    Listen {
        channel: String,
    },
    /// UNLISTEN channel | * (`None` = *).
    Unlisten {
        channel: Option<String>,
    },
    /// A session-level advisory lock function is called somewhere in the statement.
    AdvisoryLock,
    AdvisoryUnlockAll,
    /// A temporary table, view, sequence or pg_temp object is created.
    TempTable,
    DiscardTemp,
    /// DECLARE name ... WITH HOLD: the cursor outlives the transaction.
    HoldCursor {
        name: String,
    },
    /// CLOSE name | CLOSE ALL (`None` = ALL).
    CloseCursor {
        name: Option<String>,
    },
    /// LOAD 'library'.
    LoadLibrary,
    TransactionControl(TxControl),
    /// Session state changes in a way that cannot be replayed: pin the client.
    UntrackedSet,
}

/// Transaction control statements. Callers should still trust ReadyForQuery's status byte for
/// the transaction state (e.g. `COMMIT AND CHAIN` opens a new transaction at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxControl {
    /// BEGIN / START TRANSACTION; `read_only` when READ ONLY is among the modes.
    Begin {
        read_only: bool,
    },
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT name.
    Savepoint(String),
    /// RELEASE [SAVEPOINT] name.
    Release(String),
    /// ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name.
    RollbackTo(String),
    PrepareTransaction,
    /// COMMIT PREPARED 'gid' (finishes a two-phase transaction; runs outside a transaction).
    CommitPrepared,
    /// ROLLBACK PREPARED 'gid'.
    RollbackPrepared,
}

const ADVISORY_LOCKS: &[&str] = &[
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// Case-insensitive "does `hay` contain any of `needles`" (needles lowercase ASCII), one pass:
/// a table lookup per byte, a full comparison only where a needle could start.
fn mentions(hay: &str, needles: &[&str]) -> bool {
    let mut first = [false; 256];
    for n in needles {
        if let Some(&c) = n.as_bytes().first() {
            first[usize::from(c)] = true;
            first[usize::from(c.to_ascii_uppercase())] = true;
        }
    }
    let h = hay.as_bytes();
    h.iter().enumerate().any(|(i, &c)| {
        first[usize::from(c)]
            && needles.iter().any(|n| {
                h.get(i..i + n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(n.as_bytes()))
            })
    })
}

/// The first keyword, lowercased into a stack buffer (no keyword we care about is longer).
fn lower_kw<'b>(t: &Token<'_>, buf: &'b mut [u8; 12]) -> &'b str {
    let b = t.text.as_bytes();
    if t.kind != TokenKind::Ident || b.len() > buf.len() {
        return "";
    }
    for (d, s) in buf.iter_mut().zip(b) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..b.len()]).unwrap_or("")
}

fn kw(toks: &[Token<'_>], i: usize, word: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_kw(word))
}

fn name_at(toks: &[Token<'_>], i: usize) -> Option<String> {
    toks.get(i).and_then(Token::ident).map(|s| s.into_owned())
}

fn is_fn(t: &Token<'_>, name: &str) -> bool {
    match t.kind {
        TokenKind::Ident => t.text.eq_ignore_ascii_case(name),
        TokenKind::QuotedIdent => t.ident().is_some_and(|s| s == name),
        _ => false,
    }
}

fn push_once(out: &mut Vec<SessionEffect>, e: SessionEffect) {
    if !out.contains(&e) {
        out.push(e);
    }
}

/// Session effects of ONE statement (split multi-statement strings with
/// [`crate::split_statements`] first). Empty for the vast majority of statements.
pub fn session_effects(statement: &str) -> Vec<SessionEffect> {
    let mut out = effects_of(statement);
    // Which of a lock and an unlock-all in one statement runs last is the planner's choice
    // (`SELECT pg_advisory_lock(1) FROM (SELECT pg_advisory_unlock_all() OFFSET 0) s`): the
    // lock may survive, so the statement only pins.
    if out.contains(&SessionEffect::AdvisoryLock) {
        out.retain(|e| *e != SessionEffect::AdvisoryUnlockAll);
    }
    out
}

fn effects_of(statement: &str) -> Vec<SessionEffect> {
    use SessionEffect as E;
    let Some(first) = tokens(statement).next() else {
        return Vec::new();
    };
    let mut buf = [0u8; 12];
    let head = if first.kind == TokenKind::LParen {
        "("
    } else {
        lower_kw(&first, &mut buf)
    };
    let select_like = matches!(head, "select" | "with" | "(");
    // `u&`: a Unicode-escaped name can spell any function (`U&"set\005Fconfig"`), so such
    // statements are always read token by token.
    match head {
        "set" | "reset" | "discard" | "deallocate" | "prepare" | "execute" | "listen"
        | "unlisten" | "create" | "declare" | "close" | "load" | "begin" | "start" | "commit"
        | "end" | "rollback" | "abort" | "savepoint" | "release" | "do" | "explain" => {}
        _ if select_like => {
            if !mentions(statement, &["advisory", "set_config", "temp", "u&"]) {
                return Vec::new();
            }
        }
        _ => {
            if !mentions(statement, &["advisory", "set_config", "u&", "pg_settings"]) {
                return Vec::new();
            }
        }
    }
    let toks: Vec<Token<'_>> = tokens(statement).collect();
    if let Some(untrackable) = opaque(&toks) {
        return vec![untrackable];
    }
    let tx = |c| vec![E::TransactionControl(c)];
    match head {
        "set" => parse_set(&toks),
        "reset" => parse_reset(&toks),
        "discard" if kw(&toks, 1, "all") => vec![E::DiscardAll],
        "discard" if kw(&toks, 1, "temp") || kw(&toks, 1, "temporary") => vec![E::DiscardTemp],
        "discard" => Vec::new(), // PLANS, SEQUENCES: nothing a pooler must carry
        "deallocate" => {
            let i = if kw(&toks, 1, "prepare") { 2 } else { 1 };
            if kw(&toks, i, "all") {
                return vec![E::Deallocate { name: None }];
            }
            let name = name_at(&toks, i);
            name.map(|n| vec![E::Deallocate { name: Some(n) }])
                .unwrap_or_default()
        }
        "prepare"
            if kw(&toks, 1, "transaction")
                && toks
                    .get(2)
                    .is_some_and(|t| matches!(t.kind, TokenKind::String(_))) =>
        {
            tx(TxControl::PrepareTransaction)
        }
        "prepare" => name_at(&toks, 1)
            .map(|name| vec![E::Prepare { name }])
            .unwrap_or_default(),
        "execute" => {
            let mut out: Vec<_> = name_at(&toks, 1)
                .map(|name| E::Execute { name })
                .into_iter()
                .collect();
            scan_calls(&toks, false, &mut out);
            out
        }
        "listen" => name_at(&toks, 1)
            .map(|channel| vec![E::Listen { channel }])
            .unwrap_or_default(),
        "unlisten" => {
            let channel = name_at(&toks, 1);
            if channel.is_none() && toks.get(1).is_none_or(|t| t.text != "*") {
                return Vec::new();
            }
            vec![E::Unlisten { channel }]
        }
        "create" => create(&toks),
        "declare" => {
            let mut out = Vec::new();
            let hold = toks
                .iter()
                .take_while(|t| !t.is_kw("for"))
                .zip(toks.iter().skip(1))
                .any(|(a, b)| a.is_kw("with") && b.is_kw("hold"));
            if let Some(name) = name_at(&toks, 1).filter(|_| hold) {
                out.push(E::HoldCursor { name });
            }
            scan_calls(&toks, false, &mut out);
            out
        }
        "close" => {
            if kw(&toks, 1, "all") {
                return vec![E::CloseCursor { name: None }];
            }
            let name = name_at(&toks, 1);
            name.map(|n| vec![E::CloseCursor { name: Some(n) }])
                .unwrap_or_default()
        }
        "load" => vec![E::LoadLibrary],
        "begin" | "start" if head == "begin" || kw(&toks, 1, "transaction") => {
            let read_only = toks
                .windows(2)
                .any(|w| w[0].is_kw("read") && w[1].is_kw("only"));
            tx(TxControl::Begin { read_only })
        }
        "commit" if kw(&toks, 1, "prepared") => tx(TxControl::CommitPrepared),
        "commit" | "end" => tx(TxControl::Commit),
        "rollback" if kw(&toks, 1, "prepared") => tx(TxControl::RollbackPrepared),
        "rollback" if (1..=2).any(|i| kw(&toks, i, "to")) => {
            // The name is the last token: ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name.
            let at = toks.len().saturating_sub(1);
            name_at(&toks, at)
                .map(|n| tx(TxControl::RollbackTo(n)))
                .unwrap_or_default()
        }
        "rollback" | "abort" => tx(TxControl::Rollback),
        "savepoint" => name_at(&toks, 1)
            .map(|n| tx(TxControl::Savepoint(n)))
            .unwrap_or_default(),
        "release" => {
            let at = if kw(&toks, 1, "savepoint") { 2 } else { 1 };
            name_at(&toks, at)
                .map(|n| tx(TxControl::Release(n)))
                .unwrap_or_default()
        }
        "do" => do_block(&toks),
        // EXPLAIN ANALYZE runs its statement: its effects are the statement's.
        "explain" => explained(statement, &toks)
            .map(effects_of)
            .unwrap_or_default(),
        // A write to the pg_settings view calls set_config for each row it touches.
        "update" if toks.iter().any(|t| is_fn(t, "pg_settings")) => {
            vec![E::UntrackedSet]
        }
        _ => {
            let mut out = Vec::new();
            scan_calls(&toks, head == "select", &mut out);
            if select_like {
                select_into_temp(&toks, &mut out);
            }
            out
        }
    }
}

/// A statement pgtide cannot read reliably: a Unicode escape with its own `UESCAPE` character
/// (not decoded here), a name or string whose escapes do not decode, or an unterminated quote.
/// Such a statement may hide any session change.
fn opaque(toks: &[Token<'_>]) -> Option<SessionEffect> {
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
fn explained<'s>(statement: &'s str, toks: &[Token<'_>]) -> Option<&'s str> {
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
fn scan_calls(toks: &[Token<'_>], plain_select: bool, out: &mut Vec<SessionEffect>) {
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
fn select_into_temp(toks: &[Token<'_>], out: &mut Vec<SessionEffect>) {
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
fn create(toks: &[Token<'_>]) -> Vec<SessionEffect> {
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
/// parse). The body yields `UntrackedSet` when it calls set_config (unless constant and local)
/// or has a statement starting with SET/RESET (not SET LOCAL/TRANSACTION/CONSTRAINTS), or
/// EXECUTEs a string starting with "SET "/"RESET "; `AdvisoryLock(UnlockAll)` for advisory calls;
/// `TempTable` for CREATE TEMP or `pg_temp.`. Anything else inside a DO block is not tracked.
fn do_block(toks: &[Token<'_>]) -> Vec<SessionEffect> {
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
    if !mentions(
        &body,
        &["set", "advisory", "temp", "u&"]
            .iter()
            .chain(OPAQUE_IN_DO)
            .copied()
            .collect::<Vec<_>>(),
    ) {
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
        if stmt_start && (t.is_kw("reset") || t.is_kw("set") && !scoped) {
            push_once(&mut out, SessionEffect::UntrackedSet);
        }
        // Dynamic SQL: `EXECUTE 'SET ...'` or `EXECUTE format('SET ...', ...)`.
        let executed = prev.is_some_and(|p| p.is_kw("execute"))
            || (i >= 3
                && inner[i - 1].kind == TokenKind::LParen
                && inner[i - 2].is_kw("format")
                && inner[i - 3].is_kw("execute"));
        if let Some(s) = t.string_value().filter(|_| executed) {
            let s = s.trim_start().to_ascii_lowercase();
            if (s.starts_with("set ") && !s.starts_with("set local ")) || s.starts_with("reset ") {
                push_once(&mut out, SessionEffect::UntrackedSet);
            }
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

/// Whether any statement in `sql` changes the schema (CREATE / ALTER / DROP), which can change
/// the row shape of statements prepared before it.
pub fn changes_schema(sql: &str) -> bool {
    let starts_ddl = |stmt: &str| {
        tokens(stmt)
            .next()
            .is_some_and(|t| t.is_kw("create") || t.is_kw("alter") || t.is_kw("drop"))
    };
    if !sql.contains(';') {
        return starts_ddl(sql);
    }
    split_statements(sql).into_iter().any(starts_ddl)
}
