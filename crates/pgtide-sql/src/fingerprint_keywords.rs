//! The keyword tables of [`fingerprint`](super): which words are upper-cased, what they mean for
//! spacing and lists, and which a quoted identifier must keep its quotes for.

use super::Kw;

/// Is `word` (any case) a keyword, and which kind. Looks only at the keywords with the same
/// first letter, comparing lengths before bytes: a few nanoseconds for most identifiers.
pub(super) fn keyword(word: &str) -> Option<Kw> {
    let b = word.as_bytes();
    let first = b.first()?.to_ascii_lowercase();
    if !first.is_ascii_lowercase() {
        return None;
    }
    let l = usize::from(first - b'a');
    let (lo, hi) = (usize::from(LETTERS[l]), usize::from(LETTERS[l + 1]));
    let i = KEYWORDS
        .get(lo..hi)?
        .iter()
        .position(|k| k.len() == b.len() && k.as_bytes().eq_ignore_ascii_case(b))?;
    KINDS.get(lo + i).copied()
}

/// Where the keywords starting with each letter begin in [`KEYWORDS`] (and the end).
const LETTERS: [u16; 27] = letter_starts();

const fn letter_starts() -> [u16; 27] {
    let mut out = [0u16; 27];
    let (mut i, mut letter) = (0usize, 0u8);
    while letter < 26 {
        while i < KEYWORDS.len() && KEYWORDS[i].as_bytes()[0] < b'a' + letter {
            i += 1;
        }
        out[letter as usize] = i as u16;
        letter += 1;
    }
    out[26] = KEYWORDS.len() as u16;
    out
}

/// The kind of each keyword, by index.
const KINDS: [Kw; KEYWORDS.len()] = kinds();

const fn kinds() -> [Kw; KEYWORDS.len()] {
    let mut out = [Kw::Plain; KEYWORDS.len()];
    let mut i = 0;
    while i < KEYWORDS.len() {
        out[i] = kind_of(KEYWORDS[i].as_bytes());
        i += 1;
    }
    out
}

const fn kind_of(k: &[u8]) -> Kw {
    const GROUPS: &[(&[&str], Kw)] = &[
        (&["into", "table"], Kw::Relation),
        (&["order", "group"], Kw::OrderGroup),
        (&["any", "some", "cast", "array"], Kw::Attach),
        (&["in"], Kw::In),
        (&["values"], Kw::Values),
        (&["asc", "desc", "nulls", "first", "last"], Kw::Sort),
        (
            &[
                "null",
                "true",
                "false",
                "end",
                "current_date",
                "current_time",
                "current_timestamp",
                "current_user",
                "localtime",
                "localtimestamp",
                "session_user",
                "user",
            ],
            Kw::Value,
        ),
    ];
    let mut g = 0;
    while g < GROUPS.len() {
        let mut w = 0;
        while w < GROUPS[g].0.len() {
            if bytes_eq(GROUPS[g].0[w].as_bytes(), k) {
                return GROUPS[g].1;
            }
            w += 1;
        }
        g += 1;
    }
    Kw::Plain
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Upper-cased in fingerprints: PostgreSQL's reserved words and the common statement and clause
/// words. Words that are often column names (`name`, `type`, `key`, ...), type names and
/// function-like words (`coalesce`) are left out: they stay lower-case identifiers. Sorted.
#[rustfmt::skip]
pub(super) const KEYWORDS: &[&str] = &[
    "abort", "add", "all", "alter", "analyse", "analyze", "and", "any", "array", "as", "asc",
    "asymmetric", "authorization", "begin", "between", "both", "by", "cascade", "case", "cast",
    "check", "collate", "column", "commit", "committed", "concurrently", "conflict", "constraint",
    "copy", "create", "cross", "current_date", "current_time", "current_timestamp", "current_user",
    "deallocate", "declare", "default", "deferrable", "delete", "desc", "discard", "distinct",
    "do", "drop", "else", "end", "except", "execute", "exists", "explain", "false", "fetch",
    "first", "for", "foreign", "from", "full", "grant", "group", "having", "ilike", "in", "index",
    "inner", "insert", "intersect", "into", "is", "isnull", "isolation", "join", "last", "lateral",
    "leading", "left", "level", "like", "limit", "listen", "localtime", "localtimestamp", "lock",
    "locked", "materialized", "natural", "not", "nothing", "notify", "notnull", "nowait", "null",
    "nulls", "offset", "on", "only", "or", "order", "outer", "over", "partition", "prepare",
    "primary", "read", "recursive", "references", "release", "repeatable", "reset", "returning",
    "revoke", "right", "rollback", "savepoint", "select", "serializable", "session_user", "set",
    "share", "show", "similar", "skip", "some", "start", "symmetric", "table", "tablesample",
    "then", "to", "trailing", "transaction", "true", "truncate", "uncommitted", "union", "unique",
    "unlisten", "update", "user", "using", "vacuum", "values", "variadic", "view", "when", "where",
    "window", "with", "work", "write",
];

/// The keywords above that a quoted identifier must stay quoted as (PostgreSQL's reserved
/// words, those that may only name functions or types, and VALUES, BETWEEN, EXISTS). Sorted.
#[rustfmt::skip]
pub(super) const RESERVED: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "both", "case", "cast", "check", "collate", "column", "concurrently", "constraint",
    "create", "cross", "current_date", "current_time", "current_timestamp", "current_user",
    "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "false",
    "fetch", "for", "foreign", "from", "full", "grant", "group", "having", "ilike", "in", "inner",
    "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit",
    "localtime", "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only",
    "or", "order", "outer", "primary", "references", "returning", "right", "select",
    "session_user", "similar", "some", "symmetric", "table", "tablesample", "then", "to",
    "trailing", "true", "union", "unique", "user", "using", "values", "variadic", "when", "where",
    "window", "with",
];
