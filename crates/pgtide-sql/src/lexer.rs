//! A PostgreSQL-aware tokenizer over `&str`, cheap enough to run on every statement.
//!
//! Tokens borrow their text from the input (no allocation while lexing); decoding an identifier
//! or a string value allocates only when it must (case folding, escapes). The lexer never panics:
//! every slice ends on an ASCII byte or at the end of input, so it is always a char boundary, and
//! unterminated strings, quoted identifiers and comments simply run to the end (`complete = false`).
//!
//! Assumes `standard_conforming_strings = on` (the default since PostgreSQL 9.1): in '...' a
//! backslash is an ordinary character. Adjacent string constants separated by a newline (SQL's
//! continuation rule) come out as two string tokens. A `UESCAPE` clause after `U&'..'` is not
//! applied when decoding (the default `\` escape is assumed).

use std::borrow::Cow;

pub use crate::split::split_statements;

/// What a token is. Keywords are plain [`TokenKind::Ident`]s: callers compare with [`Token::is_kw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Unquoted identifier or keyword (`select`, `my_table`, `café`).
    Ident,
    /// `"Quoted"` or `U&"..."` identifier.
    QuotedIdent,
    /// Numeric literal: `42`, `1.5e-3`, `.5`, `0x1F`, `1_000`.
    Number,
    /// String constant of the given flavour.
    String(StrKind),
    /// Positional parameter `$1`.
    Param,
    /// Operator such as `=`, `<>`, `||`, `->>`, `:=`.
    Operator,
    /// `::` type cast.
    Cast,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Colon,
    Semicolon,
    /// `-- ...` or (nested) `/* ... */`.
    Comment,
    /// Anything else (a stray `\`, `{`, a lone `$`, control characters).
    Other,
}

/// Flavour of a string constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrKind {
    /// `'..'` and `N'..'`.
    Standard,
    /// `E'..'` with backslash escapes.
    Escape,
    /// `U&'..'` with Unicode escapes.
    Unicode,
    /// `$tag$..$tag$`.
    Dollar,
    /// `B'..'` and `X'..'` bit strings (not text).
    Bit,
}

/// One token: its kind, its exact source text and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    pub start: usize,
    /// False for a string, quoted identifier or block comment cut off by the end of input.
    pub complete: bool,
}

impl<'a> Token<'a> {
    /// Byte offset just past the token.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Is this the unquoted identifier/keyword `kw` (ASCII case-insensitive)?
    pub fn is_kw(&self, kw: &str) -> bool {
        self.kind == TokenKind::Ident && self.text.eq_ignore_ascii_case(kw)
    }

    /// Is this an unquoted identifier/keyword equal to one of `words` (ASCII case-insensitive)?
    /// Compares in place: most words differ in length, and nothing is copied or lowered.
    pub fn is_any_kw(&self, words: &[&str]) -> bool {
        self.kind == TokenKind::Ident && words.iter().any(|w| self.text.eq_ignore_ascii_case(w))
    }

    /// The identifier as PostgreSQL sees it: unquoted folded to lowercase (ASCII only, as in
    /// UTF-8 databases), quoted with `""` unescaped and case kept. `None` for other tokens.
    pub fn ident(&self) -> Option<Cow<'a, str>> {
        match self.kind {
            TokenKind::Ident => Some(if self.text.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(self.text.to_ascii_lowercase())
            } else {
                Cow::Borrowed(self.text)
            }),
            TokenKind::QuotedIdent if self.complete => {
                if let Some(body) = strip_prefix_ci(self.text, "u&") {
                    let inner = body.get(1..body.len().saturating_sub(1))?;
                    decode_unicode(&unquote_doubled(inner, '"')).map(Cow::Owned)
                } else {
                    let inner = self.text.get(1..self.text.len().saturating_sub(1))?;
                    Some(unquote_doubled(inner, '"'))
                }
            }
            _ => None,
        }
    }

    /// The decoded text of a complete string constant; `None` for other tokens, bit strings and
    /// invalid escapes.
    pub fn string_value(&self) -> Option<Cow<'a, str>> {
        let TokenKind::String(kind) = self.kind else {
            return None;
        };
        if !self.complete {
            return None;
        }
        let t = self.text;
        match kind {
            StrKind::Standard => {
                let q = t.find('\'')?;
                Some(unquote_doubled(
                    t.get(q + 1..t.len().saturating_sub(1))?,
                    '\'',
                ))
            }
            StrKind::Escape => decode_escape(t.get(2..t.len().saturating_sub(1))?),
            StrKind::Unicode => {
                let inner = t.get(3..t.len().saturating_sub(1))?;
                decode_unicode(&unquote_doubled(inner, '\'')).map(Cow::Owned)
            }
            StrKind::Dollar => {
                let tag_len = t.get(1..)?.find('$')? + 2;
                t.get(tag_len..t.len().checked_sub(tag_len)?)
                    .map(Cow::Borrowed)
            }
            StrKind::Bit => None,
        }
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn unquote_doubled(s: &str, q: char) -> Cow<'_, str> {
    let (pair, one) = if q == '"' {
        ("\"\"", "\"")
    } else {
        ("''", "'")
    };
    if s.contains(pair) {
        Cow::Owned(s.replace(pair, one))
    } else {
        Cow::Borrowed(s)
    }
}

/// Decodes E'..' escapes (`\n`, octal, `\xHH`, `\uXXXX`, `\UXXXXXXXX`, `\<any>`), and `''`.
fn decode_escape(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('\\') {
        return Some(unquote_doubled(s, '\''));
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' && b.get(i + 1) == Some(&b'\'') {
            out.push(b'\'');
            i += 2;
            continue;
        }
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1)?;
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 && matches!(b.get(i), Some(b'0'..=b'7')) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(u8::try_from(v & 0xff).ok()?);
            }
            b'x' if b.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let n = if b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) {
                    2
                } else {
                    1
                };
                out.push(u8::from_str_radix(s.get(i..i + n)?, 16).ok()?);
                i += n;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let cp = u32::from_str_radix(s.get(i..i + n)?, 16).ok()?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(char::from_u32(cp)?.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Decodes `\XXXX`, `\+XXXXXX` and `\\` (default UESCAPE) in a U&'..' / U&".." body.
fn decode_unicode(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('\\') {
        out.push_str(&rest[..p]);
        rest = &rest[p + 1..];
        let (n, skip) = if rest.starts_with('\\') {
            out.push('\\');
            rest = &rest[1..];
            continue;
        } else if rest.starts_with('+') {
            (6, 1)
        } else {
            (4, 0)
        };
        let cp = u32::from_str_radix(rest.get(skip..skip + n)?, 16).ok()?;
        out.push(char::from_u32(cp)?);
        rest = &rest[skip + n..];
    }
    out.push_str(rest);
    Some(out)
}

#[path = "lexer_class.rs"]
mod class;
use class::{is_ident_cont, is_ident_start, is_op_char, is_ws};

/// Trims PostgreSQL whitespace only (Unicode spaces such as U+00A0 are identifier characters).
pub(crate) fn trim_ws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_ws(c)).map_or(start, |p| p + 1);
    // Whitespace is ASCII, so both ends are char boundaries.
    s.get(start..end).unwrap_or("")
}

/// Iterator over all tokens of a string, comments included.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        crate::counts::lexed();
        Lexer { src, pos: 0 }
    }

    /// End of a quoted run starting after the opening quote at `from`, and whether it closed.
    fn quoted(&self, from: usize, q: u8, backslash: bool) -> (usize, bool) {
        let b = self.src.as_bytes();
        let mut i = from;
        while i < b.len() {
            if backslash && b[i] == b'\\' {
                i += 2;
            } else if b[i] == q {
                if b.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return (i + 1, true);
                }
            } else {
                i += 1;
            }
        }
        (b.len(), false)
    }

    /// At a `$`: a `$tag$...$tag$` string if a valid opening tag follows.
    fn dollar(&self, start: usize) -> Option<(usize, bool)> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        if i < b.len() && is_ident_start(b[i]) {
            while i < b.len() && is_ident_cont(b[i]) && b[i] != b'$' {
                i += 1;
            }
        }
        if b.get(i) != Some(&b'$') {
            return None;
        }
        let tag = &self.src[start..=i];
        Some(match self.src[i + 1..].find(tag) {
            Some(p) => (i + 1 + p + tag.len(), true),
            None => (b.len(), false),
        })
    }

    fn number(&self, start: usize) -> usize {
        let b = self.src.as_bytes();
        let hex = b.get(start) == Some(&b'0') && matches!(b.get(start + 1), Some(b'x' | b'X'));
        let mut seen_dot = false;
        let mut i = start;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_alphanumeric() || c == b'_' {
                i += 1;
            } else if c == b'.' && !seen_dot && !hex && b.get(i + 1) != Some(&b'.') {
                seen_dot = true;
                i += 1;
            } else if matches!(c, b'+' | b'-')
                && !hex
                && i > start
                && matches!(b[i - 1], b'e' | b'E')
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        i
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        use TokenKind as K;
        let b = self.src.as_bytes();
        while self.pos < b.len() && is_ws(b[self.pos]) {
            self.pos += 1;
        }
        let start = self.pos;
        let c = *b.get(start)?;
        let n1 = b.get(start + 1).copied();
        let n2 = b.get(start + 2).copied();
        let (kind, end, complete) = match c {
            b'-' if n1 == Some(b'-') => {
                let end = b[start..]
                    .iter()
                    .position(|&x| x == b'\n' || x == b'\r')
                    .map_or(b.len(), |p| start + p);
                (K::Comment, end, true)
            }
            b'/' if n1 == Some(b'*') => {
                let (mut depth, mut i) = (0usize, start);
                let mut done = None;
                while i + 1 < b.len() {
                    if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            done = Some(i);
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                match done {
                    Some(e) => (K::Comment, e, true),
                    None => (K::Comment, b.len(), false),
                }
            }
            b'\'' => {
                let (e, ok) = self.quoted(start + 1, b'\'', false);
                (K::String(StrKind::Standard), e, ok)
            }
            b'"' => {
                let (e, ok) = self.quoted(start + 1, b'"', false);
                (K::QuotedIdent, e, ok)
            }
            b'e' | b'E' if n1 == Some(b'\'') => {
                let (e, ok) = self.quoted(start + 2, b'\'', true);
                (K::String(StrKind::Escape), e, ok)
            }
            b'b' | b'B' | b'x' | b'X' if n1 == Some(b'\'') => {
                let (e, ok) = self.quoted(start + 2, b'\'', false);
                (K::String(StrKind::Bit), e, ok)
            }
            b'n' | b'N' if n1 == Some(b'\'') => {
                let (e, ok) = self.quoted(start + 2, b'\'', false);
                (K::String(StrKind::Standard), e, ok)
            }
            b'u' | b'U' if n1 == Some(b'&') && matches!(n2, Some(b'\'' | b'"')) => {
                let q = n2.unwrap_or(b'\'');
                let (e, ok) = self.quoted(start + 3, q, false);
                let kind = if q == b'"' {
                    K::QuotedIdent
                } else {
                    K::String(StrKind::Unicode)
                };
                (kind, e, ok)
            }
            b'$' if n1.is_some_and(|x| x.is_ascii_digit()) => {
                let len = b[start + 1..]
                    .iter()
                    .take_while(|x| x.is_ascii_digit())
                    .count();
                (K::Param, start + 1 + len, true)
            }
            b'$' => match self.dollar(start) {
                Some((e, ok)) => (K::String(StrKind::Dollar), e, ok),
                None => (K::Other, start + 1, true),
            },
            _ if is_ident_start(c) => {
                let mut i = start + 1;
                while i < b.len() && is_ident_cont(b[i]) {
                    i += 1;
                }
                (K::Ident, i, true)
            }
            b'0'..=b'9' => (K::Number, self.number(start), true),
            b'.' if n1.is_some_and(|x| x.is_ascii_digit()) => (K::Number, self.number(start), true),
            b'(' => (K::LParen, start + 1, true),
            b')' => (K::RParen, start + 1, true),
            b'[' => (K::LBracket, start + 1, true),
            b']' => (K::RBracket, start + 1, true),
            b',' => (K::Comma, start + 1, true),
            b'.' => (K::Dot, start + 1, true),
            b';' => (K::Semicolon, start + 1, true),
            b':' if n1 == Some(b':') => (K::Cast, start + 2, true),
            b':' if n1 == Some(b'=') => (K::Operator, start + 2, true),
            b':' => (K::Colon, start + 1, true),
            _ if is_op_char(c) => {
                let mut i = start + 1;
                // An operator ends where a comment starts.
                while i < b.len()
                    && is_op_char(b[i])
                    && !(b[i] == b'-' && b.get(i + 1) == Some(&b'-'))
                    && !(b[i] == b'/' && b.get(i + 1) == Some(&b'*'))
                {
                    i += 1;
                }
                // As in PostgreSQL: a trailing + or - is not part of a multi-char operator unless
                // it contains one of ~!@#^&|`?% (so `x=-1` is `=` then `-1`).
                if !b[start..i].iter().any(|x| b"~!@#^&|`?%".contains(x)) {
                    while i > start + 1 && matches!(b[i - 1], b'+' | b'-') {
                        i -= 1;
                    }
                }
                (K::Operator, i, true)
            }
            _ => (K::Other, start + 1, true),
        };
        // Defensive: `end` is always on an ASCII byte or the end, but never risk a panic.
        let end = end.min(b.len()).max(start + 1);
        let text = self.src.get(start..end).unwrap_or("");
        self.pos = if text.is_empty() { b.len() } else { end };
        Some(Token {
            kind,
            text,
            start,
            complete,
        })
    }
}

/// All tokens except comments.
pub fn tokens(sql: &str) -> impl Iterator<Item = Token<'_>> + '_ {
    Lexer::new(sql).filter(|t| t.kind != TokenKind::Comment)
}
