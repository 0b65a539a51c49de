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
    quote_ident, quote_literal, raw_value_as_set_text, search_path_starts_with_temp, setting_is_on,
    startup_options_to_sets, valid_guc_name,
};

use crate::lexer::{split_statements, tokens, Token, TokenKind};
use crate::session_scan::{create, do_block, explained, opaque, scan_calls, select_into_temp};
use crate::set::{parse_reset, parse_set};

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

/// Case-insensitive "does `hay` contain any of `needles`" (needles lowercase ASCII starting
/// with a letter), one pass: a bit test per byte, a full comparison only where a needle could
/// start.
pub(crate) fn mentions(hay: &str, needles: &[&str]) -> bool {
    let mut first = 0u32;
    for n in needles {
        if let Some(&c) = n.as_bytes().first() {
            first |= letter_bit(c);
        }
    }
    let h = hay.as_bytes();
    h.iter().enumerate().any(|(i, &c)| {
        letter_bit(c) & first != 0
            && needles.iter().any(|n| {
                n.as_bytes().first() == Some(&(c | 0x20))
                    && h.get(i..i + n.len()).is_some_and(|w| {
                        // Byte by byte, out at the first difference (most candidates differ
                        // at once).
                        w.iter()
                            .zip(n.as_bytes())
                            .all(|(a, b)| a.to_ascii_lowercase() == *b)
                    })
            })
    })
}

/// A bit per ASCII letter, either case (0 for any other byte).
fn letter_bit(c: u8) -> u32 {
    LETTER_BITS[usize::from(c)]
}

static LETTER_BITS: [u32; 256] = letter_bits();

const fn letter_bits() -> [u32; 256] {
    let mut out = [0u32; 256];
    let mut c = 0;
    while c < 26 {
        out[b'a' as usize + c] = 1 << c;
        out[b'A' as usize + c] = 1 << c;
        c += 1;
    }
    out
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

pub(crate) fn kw(toks: &[Token<'_>], i: usize, word: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_kw(word))
}

pub(crate) fn name_at(toks: &[Token<'_>], i: usize) -> Option<String> {
    toks.get(i).and_then(Token::ident).map(|s| s.into_owned())
}

pub(crate) fn is_fn(t: &Token<'_>, name: &str) -> bool {
    match t.kind {
        TokenKind::Ident => t.text.eq_ignore_ascii_case(name),
        TokenKind::QuotedIdent => t.ident().is_some_and(|s| s == name),
        _ => false,
    }
}

pub(crate) fn push_once(out: &mut Vec<SessionEffect>, e: SessionEffect) {
    if !out.contains(&e) {
        out.push(e);
    }
}

/// Session effects of ONE statement (split multi-statement strings with
/// [`crate::split_statements`] first). Empty for the vast majority of statements.
pub fn session_effects(statement: &str) -> Vec<SessionEffect> {
    effects_in(statement, None)
}

/// [`session_effects`] of a statement whose code tokens (offsets relative to `statement`) may
/// already be at hand.
pub(crate) fn effects_in(statement: &str, toks: Option<&[Token<'_>]>) -> Vec<SessionEffect> {
    let mut out = effects_of(statement, toks);
    // Which of a lock and an unlock-all in one statement runs last is the planner's choice
    // (`SELECT pg_advisory_lock(1) FROM (SELECT pg_advisory_unlock_all() OFFSET 0) s`): the
    // lock may survive, so the statement only pins.
    if out.contains(&SessionEffect::AdvisoryLock) {
        out.retain(|e| *e != SessionEffect::AdvisoryUnlockAll);
    }
    out
}

fn effects_of(statement: &str, lexed: Option<&[Token<'_>]>) -> Vec<SessionEffect> {
    use SessionEffect as E;
    let first = match lexed {
        Some(toks) => toks.first().copied(),
        None => tokens(statement).next(),
    };
    let Some(first) = first else {
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
    let collected: Vec<Token<'_>>;
    let toks = match lexed {
        Some(toks) => toks,
        None => {
            collected = tokens(statement).collect();
            &collected
        }
    };
    if let Some(untrackable) = opaque(toks) {
        return vec![untrackable];
    }
    let tx = |c| vec![E::TransactionControl(c)];
    match head {
        "set" => parse_set(toks),
        "reset" => parse_reset(toks),
        "discard" if kw(toks, 1, "all") => vec![E::DiscardAll],
        "discard" if kw(toks, 1, "temp") || kw(toks, 1, "temporary") => vec![E::DiscardTemp],
        "discard" => Vec::new(), // PLANS, SEQUENCES: nothing a pooler must carry
        "deallocate" => {
            let i = if kw(toks, 1, "prepare") { 2 } else { 1 };
            if kw(toks, i, "all") {
                return vec![E::Deallocate { name: None }];
            }
            let name = name_at(toks, i);
            name.map(|n| vec![E::Deallocate { name: Some(n) }])
                .unwrap_or_default()
        }
        "prepare"
            if kw(toks, 1, "transaction")
                && toks
                    .get(2)
                    .is_some_and(|t| matches!(t.kind, TokenKind::String(_))) =>
        {
            tx(TxControl::PrepareTransaction)
        }
        "prepare" => name_at(toks, 1)
            .map(|name| vec![E::Prepare { name }])
            .unwrap_or_default(),
        "execute" => {
            let mut out: Vec<_> = name_at(toks, 1)
                .map(|name| E::Execute { name })
                .into_iter()
                .collect();
            scan_calls(toks, false, &mut out);
            out
        }
        "listen" => name_at(toks, 1)
            .map(|channel| vec![E::Listen { channel }])
            .unwrap_or_default(),
        "unlisten" => {
            let channel = name_at(toks, 1);
            if channel.is_none() && toks.get(1).is_none_or(|t| t.text != "*") {
                return Vec::new();
            }
            vec![E::Unlisten { channel }]
        }
        "create" => create(toks),
        "declare" => {
            let mut out = Vec::new();
            let hold = toks
                .iter()
                .take_while(|t| !t.is_kw("for"))
                .zip(toks.iter().skip(1))
                .any(|(a, b)| a.is_kw("with") && b.is_kw("hold"));
            if let Some(name) = name_at(toks, 1).filter(|_| hold) {
                out.push(E::HoldCursor { name });
            }
            scan_calls(toks, false, &mut out);
            out
        }
        "close" => {
            if kw(toks, 1, "all") {
                return vec![E::CloseCursor { name: None }];
            }
            let name = name_at(toks, 1);
            name.map(|n| vec![E::CloseCursor { name: Some(n) }])
                .unwrap_or_default()
        }
        "load" => vec![E::LoadLibrary],
        "begin" | "start" if head == "begin" || kw(toks, 1, "transaction") => {
            let read_only = toks
                .windows(2)
                .any(|w| w[0].is_kw("read") && w[1].is_kw("only"));
            tx(TxControl::Begin { read_only })
        }
        "commit" if kw(toks, 1, "prepared") => tx(TxControl::CommitPrepared),
        "commit" | "end" => tx(TxControl::Commit),
        "rollback" if kw(toks, 1, "prepared") => tx(TxControl::RollbackPrepared),
        "rollback" if (1..=2).any(|i| kw(toks, i, "to")) => {
            // The name is the last token: ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name.
            let at = toks.len().saturating_sub(1);
            name_at(toks, at)
                .map(|n| tx(TxControl::RollbackTo(n)))
                .unwrap_or_default()
        }
        "rollback" | "abort" => tx(TxControl::Rollback),
        "savepoint" => name_at(toks, 1)
            .map(|n| tx(TxControl::Savepoint(n)))
            .unwrap_or_default(),
        "release" => {
            let at = if kw(toks, 1, "savepoint") { 2 } else { 1 };
            name_at(toks, at)
                .map(|n| tx(TxControl::Release(n)))
                .unwrap_or_default()
        }
        "do" => do_block(toks),
        // EXPLAIN ANALYZE runs its statement: its effects are the statement's.
        "explain" => explained(statement, toks)
            .map(|inner| effects_of(inner, None))
            .unwrap_or_default(),
        // A write to the pg_settings view calls set_config for each row it touches.
        "update" if toks.iter().any(|t| is_fn(t, "pg_settings")) => {
            vec![E::UntrackedSet]
        }
        _ => {
            let mut out = Vec::new();
            scan_calls(toks, head == "select", &mut out);
            if select_like {
                select_into_temp(toks, &mut out);
            }
            out
        }
    }
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
