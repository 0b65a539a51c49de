//! Splitting a simple-Query string into statements, over its code tokens (comments left out),
//! so that one lexing pass serves the splitter and everything that reads the statements.

use std::ops::Range;

use crate::lexer::{tokens, trim_ws, Token, TokenKind};

/// Where we are in the head of a statement, to recognise `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
/// (whose `BEGIN ATOMIC ... END` body contains `;`), as psql does.
#[derive(Clone, Copy, PartialEq)]
enum Head {
    Start,
    Create,
    CreateOr,
    CreateOrReplace,
    Routine,
    Other,
}

/// One statement of a string: its code tokens and its trimmed text (leading comments kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Indices into the code tokens the split was made over (the `;` left out).
    pub code: Range<usize>,
    /// Byte range of the statement's text in the whole string.
    pub text: Range<usize>,
}

/// Splits on top-level `;` (outside quotes, comments, dollar quotes, parentheses and
/// `BEGIN ATOMIC ... END` bodies), given the string's tokens without comments. Statements with
/// no code at all are dropped.
pub(crate) fn split_code(sql: &str, code: &[Token<'_>], out: &mut Vec<Segment>) {
    let mut seg_start = 0;
    let mut first_code = 0;
    let mut parens = 0u32;
    let mut begins = 0u32;
    let mut head = Head::Start;
    let push = |out: &mut Vec<Segment>, from: usize, to: usize, bytes: Range<usize>| {
        if from < to {
            let text = sql.get(bytes.clone()).unwrap_or("");
            let trimmed = trim_ws(text);
            let at = bytes.start + (trimmed.as_ptr() as usize - text.as_ptr() as usize);
            out.push(Segment {
                code: from..to,
                text: at..at + trimmed.len(),
            });
        }
    };
    for (i, t) in code.iter().enumerate() {
        match t.kind {
            TokenKind::Semicolon if parens == 0 && begins == 0 => {
                push(out, first_code, i, seg_start..t.start);
                seg_start = t.end();
                first_code = i + 1;
                head = Head::Start;
                continue;
            }
            TokenKind::LParen => parens += 1,
            TokenKind::RParen => parens = parens.saturating_sub(1),
            _ => {}
        }
        head = match (head, t.kind) {
            (Head::Routine, TokenKind::Ident) => {
                if t.is_kw("begin") || t.is_kw("case") {
                    begins += 1;
                } else if t.is_kw("end") {
                    begins = begins.saturating_sub(1);
                }
                Head::Routine
            }
            (Head::Routine, _) => Head::Routine,
            (Head::Start, _) if t.is_kw("create") => Head::Create,
            (Head::Create, _) if t.is_kw("or") => Head::CreateOr,
            (Head::CreateOr, _) if t.is_kw("replace") => Head::CreateOrReplace,
            (Head::Create | Head::CreateOrReplace, _)
                if t.is_kw("function") || t.is_kw("procedure") =>
            {
                Head::Routine
            }
            _ => Head::Other,
        };
    }
    push(out, first_code, code.len(), seg_start..sql.len());
}

/// Splits a simple-Query string on top-level `;` (outside quotes, comments, dollar quotes,
/// parentheses and `BEGIN ATOMIC ... END` bodies). Each statement is trimmed and keeps its
/// leading comments (hints live there); statements with no code at all are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let code: Vec<Token<'_>> = tokens(sql).collect();
    let mut segments = Vec::new();
    split_code(sql, &code, &mut segments);
    segments
        .into_iter()
        .map(|s| sql.get(s.text).unwrap_or(""))
        .collect()
}
