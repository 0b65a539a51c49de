//! Routing hints in comments: `/* pgtide:primary */`, `-- pgtide: replica`, `/*PGTIDE : Primary*/`.
//! Case-insensitive, whitespace around the colon tolerated, other words in the same comment
//! allowed (`/* app=billing pgtide:replica */`). Hints inside string constants do not count.

use super::RouteHint;
use crate::lexer::{Lexer, TokenKind};

/// Does `hay` contain `needle` (lowercase ASCII), ignoring ASCII case?
pub(crate) fn contains_ci(hay: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    let Some(&first) = n.first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    hay.as_bytes()
        .windows(n.len())
        .any(|w| (w[0] == first || w[0] == upper) && w.eq_ignore_ascii_case(n))
}

/// The first hint in a comment anywhere in `sql`.
pub(crate) fn find(sql: &str) -> Option<RouteHint> {
    if !contains_ci(sql, "pgtide") {
        return None;
    }
    Lexer::new(sql)
        .filter(|t| t.kind == TokenKind::Comment)
        .find_map(|t| in_comment(t.text))
}

/// The first `pgtide : primary|replica` in one comment's text.
pub(crate) fn in_comment(text: &str) -> Option<RouteHint> {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 6 <= b.len() {
        if !b[i..i + 6].eq_ignore_ascii_case(b"pgtide") {
            i += 1;
            continue;
        }
        // A word of its own: not the tail of `xpgtide`.
        let standalone = i == 0 || !is_word(b[i - 1]);
        i += 6;
        if !standalone {
            continue;
        }
        let mut j = skip_ws(b, i);
        if b.get(j) != Some(&b':') {
            continue;
        }
        j = skip_ws(b, j + 1);
        let word_end = j + b[j..].iter().take_while(|&&c| is_word(c)).count();
        let word = &b[j..word_end];
        if word.eq_ignore_ascii_case(b"primary") {
            return Some(RouteHint::Primary);
        }
        if word.eq_ignore_ascii_case(b"replica") {
            return Some(RouteHint::Replica);
        }
    }
    None
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}
