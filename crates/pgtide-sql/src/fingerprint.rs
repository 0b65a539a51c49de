//! Statement fingerprints: the text with its literals and parameters taken out, so every run of
//! "the same query" adds up under one name (SHOW QUERIES, slow queries, N+1, cache rules).
//!
//! Lexical, not a parse: one pass over [`Lexer`](crate::Lexer) tokens, so it never fails and costs about as
//! much as lexing. The rules:
//! - numbers, strings of every kind (`'..'`, `E'..'`, `U&'..'`, `$tag$..$tag$`, `B'..'`/`X'..'`)
//!   and parameters become `$1`, `$2`, ... numbered by their place in the output (as
//!   pg_stat_statements does, and a fingerprint stays valid SQL for PREPARE). A sign directly in
//!   front of a number (`x = -1`) is part of the literal. `TRUE`, `FALSE` and `NULL` are kept.
//! - a list made only of constants in `IN (..)` or `ARRAY[..]` becomes one placeholder
//!   (`IN ($1)`), whatever its length; in `VALUES (..), (..)` only the first row is kept.
//! - comments (pgtide hints included) and whitespace are dropped; tokens are re-joined with
//!   single spaces by a fixed rule (`f(a, b)`, `t.col`, `$1::int`); a trailing `;` is dropped.
//! - keywords (a fixed list: SQL's reserved words and the common clause words) are upper-cased,
//!   other unquoted identifiers lower-cased (ASCII, as PostgreSQL folds them); a quoted identifier
//!   is kept as written unless it means the same unquoted (`"users"` is `users`; a reserved
//!   word such as `"order"` keeps its quotes).
//! - `ORDER BY 1` / `GROUP BY 2`: a bare column position is structure, not a literal, and stays.
//!
//! `id` is [`stable_hash`] of the text: a fixed-key hash, the same in every process and run.

use crate::lexer::{tokens, Token, TokenKind};

use keywords::{keyword, RESERVED};
pub use toks::stable_hash;
use toks::Toks;

/// A normalised statement and its stable 64-bit id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub id: u64,
    pub text: String,
}

/// The fingerprint of `sql` (see the module docs for the rules).
///
/// ```
/// let a = pgtide_sql::fingerprint("select * from Users where id in (1, 2, 3) -- by id");
/// let b = pgtide_sql::fingerprint("/* pgtide:replica */ SELECT * FROM users WHERE id IN ($1)");
/// assert_eq!(a.text, "SELECT * FROM users WHERE id IN ($1)");
/// assert_eq!(a, b);
/// ```
pub fn fingerprint(sql: &str) -> Fingerprint {
    fingerprint_with_params(sql).0
}

/// A hash of the literal values in `sql`, in order (numbers with their sign, strings, `$n`):
/// two runs of one fingerprint with different literals hash differently.
pub fn params_hash(sql: &str) -> u64 {
    let code: Vec<Token<'_>> = tokens(sql).collect();
    let mut toks = Toks::new(&code);
    while toks.next().is_some() {}
    toks.finish()
}

/// [`fingerprint`] and [`params_hash`] in one pass over the text.
pub fn fingerprint_with_params(sql: &str) -> (Fingerprint, u64) {
    let code: Vec<Token<'_>> = tokens(sql).collect();
    let mut text = String::new();
    let (id, params) = fingerprint_tokens(sql.len(), &code, &mut text);
    (Fingerprint { id, text }, params)
}

/// The fingerprint of a text of `len` bytes from its tokens without comments, written into
/// `text` (cleared first): its id and the hash of its literals.
pub(crate) fn fingerprint_tokens(len: usize, code: &[Token<'_>], text: &mut String) -> (u64, u64) {
    crate::counts::fingerprinted();
    text.clear();
    text.reserve(len.min(16 * 1024) + 8);
    let params = normalize(code, text);
    (stable_hash(text.as_bytes()), params)
}

/// What was written last, for spacing and context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    /// `(` or `[`: no space after.
    Open,
    /// `.` or `::`: no space after.
    Glue,
    Comma,
    /// A keyword (upper-cased), with what it was when it matters.
    Keyword(Kw),
    /// An unquoted or quoted identifier (a possible function name).
    Name,
    /// A literal, placeholder, `)` or `]`.
    Operand,
    Operator,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    /// INTO / TABLE: a relation name follows, and a `(` after it is a column list.
    Relation,
    /// ORDER / GROUP: a `BY` after it starts a list where bare numbers are positions.
    OrderGroup,
    /// BY after ORDER / GROUP.
    OrderBy,
    /// ANY / SOME / CAST / ARRAY: the `(` or `[` follows without a space.
    Attach,
    In,
    Values,
    /// ASC / DESC / NULLS / FIRST / LAST: stay in an ORDER BY list.
    Sort,
    /// A value (NULL, TRUE, END of CASE, CURRENT_DATE, ...): a `-` after it is binary.
    Value,
    Plain,
}

struct Writer<'o> {
    out: &'o mut String,
    prev: Prev,
    params: u32,
    /// The last name followed INTO / TABLE (through `schema.`).
    relation: bool,
    /// Inside an ORDER BY / GROUP BY list.
    by_list: bool,
    /// Paren depth, and the depth of a `VALUES` whose first row is being written.
    depth: u32,
    values_depth: Option<u32>,
    /// A `;` seen, written only if code follows.
    pending_semicolon: bool,
}

impl Writer<'_> {
    fn space_unless(&mut self, glue: bool) {
        if self.pending_semicolon {
            self.out.push(';');
            self.pending_semicolon = false;
            self.prev = Prev::Other;
        }
        if !glue && !self.out.is_empty() && !matches!(self.prev, Prev::Open | Prev::Glue) {
            self.out.push(' ');
        }
    }

    fn placeholder(&mut self) {
        self.space_unless(false);
        self.params += 1;
        self.out.push('$');
        push_u32(self.out, self.params);
        self.prev = Prev::Operand;
    }
}

fn push_u32(out: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

fn is_literal(t: &Token<'_>) -> bool {
    matches!(
        t.kind,
        TokenKind::Number | TokenKind::String(_) | TokenKind::Param
    )
}

/// Writes the fingerprint text of `sql` into `out`; returns the hash of its literals.
fn normalize(code: &[Token<'_>], out: &mut String) -> u64 {
    let mut toks = Toks::new(code);
    let mut w = Writer {
        out,
        prev: Prev::Start,
        params: 0,
        relation: false,
        by_list: false,
        depth: 0,
        values_depth: None,
        pending_semicolon: false,
    };
    while let Some(t) = toks.next() {
        // `"users"` is `users`, `"level"` is `level`: written as the identifier they mean.
        let t = match plain_quoted(&t) {
            Some(inner) => Token {
                kind: TokenKind::Ident,
                text: inner,
                ..t
            },
            None => t,
        };
        let relation = w.relation;
        w.relation = false;
        match t.kind {
            TokenKind::Number
                if w.by_list
                    && matches!(w.prev, Prev::Keyword(Kw::OrderBy) | Prev::Comma)
                    && ends_list_item(toks.peek()) =>
            {
                w.space_unless(false);
                w.out.push_str(t.text);
                w.prev = Prev::Operand;
            }
            _ if is_literal(&t) => w.placeholder(),
            TokenKind::Operator
                if (t.text == "-" || t.text == "+")
                    && !matches!(
                        w.prev,
                        Prev::Name | Prev::Operand | Prev::Keyword(Kw::Value)
                    )
                    && toks.peek().is_some_and(|n| n.kind == TokenKind::Number) =>
            {
                // A sign: the number that follows carries it.
            }
            TokenKind::Operator => {
                w.space_unless(false);
                w.out.push_str(if t.text == "!=" { "<>" } else { t.text });
                w.prev = Prev::Operator;
            }
            TokenKind::Ident => {
                if let Some(kw) = keyword(t.text) {
                    write_keyword(&mut w, &mut toks, t.text, kw);
                } else {
                    w.relation =
                        (relation && w.prev == Prev::Glue) || w.prev == Prev::Keyword(Kw::Relation);
                    w.space_unless(false);
                    push_lower(w.out, t.text);
                    w.prev = Prev::Name;
                }
            }
            TokenKind::QuotedIdent => {
                w.relation =
                    (relation && w.prev == Prev::Glue) || w.prev == Prev::Keyword(Kw::Relation);
                w.space_unless(false);
                w.out.push_str(t.text);
                w.prev = Prev::Name;
            }
            TokenKind::LParen => {
                let attach = matches!(w.prev, Prev::Keyword(Kw::Attach))
                    || (w.prev == Prev::Name && !relation);
                w.space_unless(attach);
                w.out.push('(');
                w.prev = Prev::Open;
                w.depth += 1;
            }
            TokenKind::RParen => {
                w.space_unless(true);
                w.out.push(')');
                w.prev = Prev::Operand;
                w.depth = w.depth.saturating_sub(1);
                if w.values_depth == Some(w.depth) {
                    w.values_depth = None;
                    skip_more_rows(&mut toks);
                }
            }
            TokenKind::LBracket => {
                let glue = !matches!(w.prev, Prev::Operator | Prev::Comma | Prev::Other);
                w.space_unless(glue);
                w.out.push('[');
                w.prev = Prev::Open;
            }
            TokenKind::RBracket => {
                w.space_unless(true);
                w.out.push(']');
                w.prev = Prev::Operand;
            }
            TokenKind::Comma => {
                w.space_unless(true);
                w.out.push(',');
                w.prev = Prev::Comma;
            }
            TokenKind::Dot => {
                w.space_unless(true);
                w.out.push('.');
                w.prev = Prev::Glue;
                w.relation = relation;
            }
            TokenKind::Cast => {
                w.space_unless(true);
                w.out.push_str("::");
                w.prev = Prev::Glue;
            }
            TokenKind::Semicolon => {
                if !w.out.is_empty() {
                    w.pending_semicolon = true;
                }
                w.by_list = false;
                w.depth = 0;
                w.values_depth = None;
            }
            _ => {
                w.space_unless(false);
                w.out.push_str(t.text);
                w.prev = Prev::Other;
            }
        }
    }
    toks.finish()
}

fn write_keyword(w: &mut Writer<'_>, toks: &mut Toks<'_, '_>, text: &str, kw: Kw) {
    let kw = match (kw, w.prev) {
        (Kw::Plain, Prev::Keyword(Kw::OrderGroup)) if text.eq_ignore_ascii_case("by") => {
            Kw::OrderBy
        }
        (k, _) => k,
    };
    match kw {
        Kw::OrderBy => w.by_list = true,
        Kw::Sort => {}
        _ => w.by_list = false,
    }
    w.space_unless(false);
    push_upper(w.out, text);
    w.prev = Prev::Keyword(kw);
    match kw {
        Kw::In => {
            if let Some(after) = constant_list(toks, TokenKind::LParen) {
                *toks = after;
                w.space_unless(false);
                w.out.push('(');
                w.prev = Prev::Open;
                w.placeholder();
                w.out.push(')');
            }
        }
        Kw::Attach if text.eq_ignore_ascii_case("array") => {
            if let Some(after) = constant_list(toks, TokenKind::LBracket) {
                *toks = after;
                w.out.push('[');
                w.prev = Prev::Open;
                w.placeholder();
                w.out.push(']');
            }
        }
        Kw::Values if toks.peek().is_some_and(|t| t.kind == TokenKind::LParen) => {
            w.values_depth = Some(w.depth);
        }
        _ => {}
    }
}

/// After the first row of a VALUES list: skips `, ( .. )` rows that follow.
fn skip_more_rows(toks: &mut Toks<'_, '_>) {
    loop {
        let mut ahead = toks.clone();
        let comma = ahead.next().is_some_and(|t| t.kind == TokenKind::Comma);
        if !comma || !ahead.next().is_some_and(|t| t.kind == TokenKind::LParen) {
            return;
        }
        ahead.skip_group();
        *toks = ahead;
    }
}

/// Is a token after a number in an ORDER BY list the end of that item?
fn ends_list_item(next: Option<Token<'_>>) -> bool {
    match next {
        None => true,
        Some(t) => match t.kind {
            TokenKind::Comma | TokenKind::RParen | TokenKind::Semicolon => true,
            TokenKind::Ident => keyword(t.text).is_some(),
            _ => false,
        },
    }
}

/// If `open` and then a list of constants (each optionally signed and cast) and its closer
/// follow, the token stream just past the closer.
fn constant_list<'t, 'a>(toks: &Toks<'t, 'a>, open: TokenKind) -> Option<Toks<'t, 'a>> {
    let close = if open == TokenKind::LParen {
        TokenKind::RParen
    } else {
        TokenKind::RBracket
    };
    let mut ahead = toks.clone();
    if ahead.next()?.kind != open {
        return None;
    }
    // Per item: expecting a literal (after an optional sign), then casts; in a cast's type
    // name (idents, dots, a parenthesised typmod) anything but a nested query goes.
    let mut seen_literal = false;
    let mut in_item = false;
    let mut cast_depth = 0u32;
    let mut in_cast = false;
    loop {
        let t = ahead.next()?;
        if in_cast && cast_depth > 0 {
            match t.kind {
                TokenKind::LParen => cast_depth += 1,
                TokenKind::RParen => cast_depth -= 1,
                TokenKind::Number | TokenKind::Comma => {}
                _ => return None,
            }
            continue;
        }
        match t.kind {
            k if k == close => return (seen_literal && in_item).then_some(ahead),
            TokenKind::Comma if in_item => {
                in_item = false;
                in_cast = false;
            }
            TokenKind::Operator if !in_item && (t.text == "-" || t.text == "+") => {}
            _ if !in_item && is_literal(&t) => {
                in_item = true;
                seen_literal = true;
            }
            TokenKind::Cast if in_item => in_cast = true,
            TokenKind::Ident | TokenKind::QuotedIdent | TokenKind::Dot if in_cast => {}
            TokenKind::LBracket | TokenKind::RBracket if in_cast => {}
            TokenKind::LParen if in_cast => cast_depth = 1,
            _ => return None,
        }
    }
}

/// `"users"` means `users`: the body of a quoted identifier that needs no quotes (lower case,
/// and not a reserved word).
fn plain_quoted<'a>(t: &Token<'a>) -> Option<&'a str> {
    if t.kind != TokenKind::QuotedIdent {
        return None;
    }
    let inner = t.text.strip_prefix('"')?.strip_suffix('"')?;
    let b = inner.as_bytes();
    let ok = t.complete
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'$')
        && RESERVED.binary_search(&inner).is_err();
    ok.then_some(inner)
}

fn push_lower(out: &mut String, s: &str) {
    let at = out.len();
    out.push_str(s);
    if let Some(tail) = out.get_mut(at..) {
        tail.make_ascii_lowercase();
    }
}

fn push_upper(out: &mut String, s: &str) {
    let at = out.len();
    out.push_str(s);
    if let Some(tail) = out.get_mut(at..) {
        tail.make_ascii_uppercase();
    }
}

#[path = "fingerprint_keywords.rs"]
mod keywords;
#[path = "fingerprint_toks.rs"]
mod toks;

#[cfg(test)]
#[path = "fingerprint_tests.rs"]
mod tests;
