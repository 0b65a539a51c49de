//! `SET` / `RESET` statements and `set_config(...)` calls.

use crate::lexer::{StrKind, Token, TokenKind};
use crate::quote::{is_list_quote_guc, list_value_as_set_text, quote_literal, valid_guc_name};
use crate::session::SessionEffect;

/// A SET value: replayable SQL text, DEFAULT (a reset), or something we do not understand.
enum Value {
    Text(String),
    Default,
    Invalid,
}

fn kw(toks: &[Token<'_>], i: usize, word: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_kw(word))
}

/// Builds the effect for `name`, honouring SET LOCAL and refusing names that are not plain.
fn effect(local: bool, name: &str, value: Value) -> SessionEffect {
    if !valid_guc_name(name) {
        return SessionEffect::UntrackedSet;
    }
    let name = name.to_owned();
    match (local, value) {
        (_, Value::Invalid) => SessionEffect::UntrackedSet,
        (true, _) => SessionEffect::SetLocal { name },
        (false, Value::Default) => SessionEffect::Reset { name },
        (false, Value::Text(value)) => SessionEffect::Set { name, value },
    }
}

/// A dotted, possibly quoted GUC name starting at `i`; lowercased, since PostgreSQL compares GUC
/// names case-insensitively. Returns the name and the index after it.
fn guc_name(toks: &[Token<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let part = toks.get(i)?.ident()?;
        name.push_str(&part.to_lowercase());
        i += 1;
        if toks.get(i).map(|t| t.kind) != Some(TokenKind::Dot) {
            return Some((name, i));
        }
        name.push('.');
        i += 1;
    }
}

/// A decimal number (`42`, `1.5`, `.5`, `1e-3`, `1_000`); the lexer also lumps trailing junk
/// such as `1abc` into a number token, which PostgreSQL rejects.
fn plain_number(s: &str) -> bool {
    let mut exp = false;
    s.bytes().enumerate().all(|(i, c)| match c {
        b'0'..=b'9' | b'.' | b'_' => true,
        b'e' | b'E' if !exp && i > 0 => {
            exp = true;
            true
        }
        b'+' | b'-' => exp,
        _ => false,
    })
}

/// `value[, ...]` where each value is a string, a (signed) number or an identifier: exactly the
/// constants PostgreSQL accepts, re-emitted token by token (unquoted identifiers folded) so the
/// text is safe to send again after `SET name TO `.
fn values(toks: &[Token<'_>]) -> Value {
    if let [t] = toks {
        if t.is_kw("default") {
            return Value::Default;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < toks.len() {
        if i > 0 {
            if toks[i].kind != TokenKind::Comma || i + 1 == toks.len() {
                return Value::Invalid;
            }
            out.push_str(", ");
            i += 1;
        }
        let t = &toks[i];
        match t.kind {
            TokenKind::Operator if matches!(t.text, "+" | "-") => {
                match toks.get(i + 1) {
                    Some(n) if n.kind == TokenKind::Number && plain_number(n.text) => {
                        out.push_str(t.text);
                        out.push_str(n.text);
                    }
                    _ => return Value::Invalid,
                }
                i += 1;
            }
            TokenKind::Number if plain_number(t.text) => out.push_str(t.text),
            TokenKind::String(k) if t.complete && k != StrKind::Bit => out.push_str(t.text),
            TokenKind::QuotedIdent if t.complete => out.push_str(t.text),
            TokenKind::Ident if !t.is_kw("default") => out.push_str(&t.text.to_ascii_lowercase()),
            _ => return Value::Invalid,
        }
        i += 1;
    }
    if out.is_empty() {
        Value::Invalid
    } else {
        Value::Text(out)
    }
}

/// `SET ...` (toks[0] is SET).
pub(crate) fn parse_set(toks: &[Token<'_>]) -> Vec<SessionEffect> {
    let mut i = 1;
    let mut local = false;
    if kw(toks, i, "local") {
        local = true;
        i += 1;
    } else if kw(toks, i, "session")
        && !kw(toks, i + 1, "authorization")
        && !kw(toks, i + 1, "characteristics")
    {
        i += 1;
    }
    let rest = toks.get(i + 1..).unwrap_or(&[]);
    let one = |name: &str, v: Value| vec![effect(local, name, v)];
    if kw(toks, i, "time") && kw(toks, i + 1, "zone") {
        let rest = toks.get(i + 2..).unwrap_or(&[]);
        let v = match rest {
            [t] if t.is_kw("local") || t.is_kw("default") => Value::Default,
            // `INTERVAL '..' HOUR TO MINUTE` has no `SET timezone TO` spelling.
            [t, ..] if t.is_kw("interval") => Value::Invalid,
            _ => values(rest),
        };
        return one("timezone", v);
    }
    if kw(toks, i, "names") {
        return one(
            "client_encoding",
            if rest.is_empty() {
                Value::Default
            } else {
                values(rest)
            },
        );
    }
    if kw(toks, i, "schema") {
        let v = match rest {
            [t] if matches!(t.kind, TokenKind::String(_)) => values(rest),
            _ => Value::Invalid,
        };
        return one("search_path", v);
    }
    if kw(toks, i, "role") {
        let v = match rest {
            [t] if t.is_kw("none") => Value::Default,
            _ => values(rest),
        };
        return one("role", v);
    }
    if kw(toks, i, "session") && kw(toks, i + 1, "authorization") {
        return one(
            "session_authorization",
            values(toks.get(i + 2..).unwrap_or(&[])),
        );
    }
    if kw(toks, i, "xml") && kw(toks, i + 1, "option") {
        let v = match toks.get(i + 2..) {
            Some([t]) if t.is_kw("document") || t.is_kw("content") => {
                Value::Text(t.text.to_ascii_lowercase())
            }
            _ => Value::Invalid,
        };
        return one("xmloption", v);
    }
    // Scoped to the current transaction: nothing to carry.
    if kw(toks, i, "transaction") || kw(toks, i, "constraints") {
        return Vec::new();
    }
    if kw(toks, i, "session") && kw(toks, i + 1, "characteristics") {
        if !(kw(toks, i + 2, "as") && kw(toks, i + 3, "transaction")) {
            return vec![SessionEffect::UntrackedSet];
        }
        return characteristics(toks.get(i + 4..).unwrap_or(&[]), local);
    }
    let Some((name, j)) = guc_name(toks, i) else {
        return vec![SessionEffect::UntrackedSet];
    };
    match toks.get(j) {
        Some(t) if t.is_kw("to") || (t.kind == TokenKind::Operator && t.text == "=") => {
            one(&name, values(toks.get(j + 1..).unwrap_or(&[])))
        }
        _ => vec![SessionEffect::UntrackedSet],
    }
}

/// `SET SESSION CHARACTERISTICS AS TRANSACTION mode[, ...]`: the session defaults behind it.
fn characteristics(toks: &[Token<'_>], local: bool) -> Vec<SessionEffect> {
    let mut out = Vec::new();
    let mut i = 0;
    let text = |s: &str| Value::Text(s.to_owned());
    while i < toks.len() {
        if toks[i].kind == TokenKind::Comma {
            i += 1;
            continue;
        }
        let (name, v, n) = if kw(toks, i, "isolation") && kw(toks, i + 1, "level") {
            let level = if kw(toks, i + 2, "serializable") {
                Some(("'serializable'", 3))
            } else if kw(toks, i + 2, "repeatable") && kw(toks, i + 3, "read") {
                Some(("'repeatable read'", 4))
            } else if kw(toks, i + 2, "read") && kw(toks, i + 3, "committed") {
                Some(("'read committed'", 4))
            } else if kw(toks, i + 2, "read") && kw(toks, i + 3, "uncommitted") {
                Some(("'read uncommitted'", 4))
            } else {
                None
            };
            let Some((level, n)) = level else {
                return vec![SessionEffect::UntrackedSet];
            };
            ("default_transaction_isolation", text(level), n)
        } else if kw(toks, i, "read") && kw(toks, i + 1, "only") {
            ("default_transaction_read_only", text("on"), 2)
        } else if kw(toks, i, "read") && kw(toks, i + 1, "write") {
            ("default_transaction_read_only", text("off"), 2)
        } else if kw(toks, i, "deferrable") {
            ("default_transaction_deferrable", text("on"), 1)
        } else if kw(toks, i, "not") && kw(toks, i + 1, "deferrable") {
            ("default_transaction_deferrable", text("off"), 2)
        } else {
            return vec![SessionEffect::UntrackedSet];
        };
        out.push(effect(local, name, v));
        i += n;
    }
    if out.is_empty() {
        out.push(SessionEffect::UntrackedSet);
    }
    out
}

/// `RESET ...` (toks[0] is RESET).
pub(crate) fn parse_reset(toks: &[Token<'_>]) -> Vec<SessionEffect> {
    let rest = toks.get(1..).unwrap_or(&[]);
    let reset = |name: &str| vec![effect(false, name, Value::Default)];
    match rest {
        [t] if t.is_kw("all") => vec![SessionEffect::ResetAll],
        [a, b] if a.is_kw("time") && b.is_kw("zone") => reset("timezone"),
        [a, b] if a.is_kw("session") && b.is_kw("authorization") => reset("session_authorization"),
        [t, ..] if t.is_kw("transaction") => Vec::new(),
        _ => match guc_name(toks, 1) {
            Some((name, j)) if j == toks.len() => reset(&name),
            _ => vec![SessionEffect::UntrackedSet],
        },
    }
}

/// The single literal token of an argument, allowing a trailing cast such as `::text` or
/// `::pg_catalog.text`.
fn literal<'t, 'a>(arg: &'t [Token<'a>]) -> Option<&'t Token<'a>> {
    let (first, rest) = arg.split_first()?;
    if let Some((cast, ty)) = rest.split_first() {
        let is_type = |t: &Token<'_>| {
            matches!(
                t.kind,
                TokenKind::Ident | TokenKind::QuotedIdent | TokenKind::Dot
            )
        };
        if cast.kind != TokenKind::Cast || ty.is_empty() || !ty.iter().all(is_type) {
            return None;
        }
    }
    Some(first)
}

/// A constant text argument: a string literal, or NULL (`Some(None)`). `None`: not a constant.
fn constant<'a>(arg: &[Token<'a>]) -> Option<Option<std::borrow::Cow<'a, str>>> {
    let t = literal(arg)?;
    if t.is_kw("null") {
        return Some(None);
    }
    t.string_value().map(Some)
}

/// A constant boolean argument (a NULL is_local counts as false, as in set_config).
fn constant_bool(arg: &[Token<'_>]) -> Option<bool> {
    let t = literal(arg)?;
    if t.is_kw("true") {
        return Some(true);
    }
    if t.is_kw("false") || t.is_kw("null") {
        return Some(false);
    }
    match t.string_value()?.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `set_config(name, value, is_local)` whose name token is at `i` (followed by `(`). `runs_once`
/// says the call is a top-level item of a FROM-less SELECT, so it certainly runs exactly once;
/// elsewhere a session-level call may run zero or many times and is reported as untracked.
/// Returns the effect and the index of the closing parenthesis.
pub(crate) fn set_config_call(
    toks: &[Token<'_>],
    i: usize,
    runs_once: bool,
) -> (SessionEffect, usize) {
    let mut args: Vec<&[Token<'_>]> = Vec::new();
    let mut depth = 0usize;
    let mut arg_start = i + 2;
    let mut close = toks.len();
    for (j, t) in toks.iter().enumerate().skip(i + 1) {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    args.push(toks.get(arg_start..j).unwrap_or(&[]));
                    close = j;
                    break;
                }
            }
            TokenKind::Comma if depth == 1 => {
                args.push(toks.get(arg_start..j).unwrap_or(&[]));
                arg_start = j + 1;
            }
            _ => {}
        }
    }
    let eff = (|| {
        let [name, value, local] = args.as_slice() else {
            return None;
        };
        let name = constant(name)??.to_lowercase();
        let value = constant(value)?;
        let local = constant_bool(local)?;
        Some(if local {
            effect(true, &name, Value::Default)
        } else if !runs_once {
            SessionEffect::UntrackedSet
        } else {
            let v = match value {
                None => Value::Default,
                Some(v) if is_list_quote_guc(&name) => {
                    list_value_as_set_text(&v).map_or(Value::Invalid, Value::Text)
                }
                Some(v) => Value::Text(quote_literal(&v)),
            };
            effect(false, &name, v)
        })
    })();
    (eff.unwrap_or(SessionEffect::UntrackedSet), close)
}
