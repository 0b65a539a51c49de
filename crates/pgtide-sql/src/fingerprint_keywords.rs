//! The keyword tables of [`fingerprint`](super): which words are upper-cased, what they mean for
//! spacing and lists, and which a quoted identifier must keep its quotes for.

use super::Kw;

/// Is `word` (any case) a keyword, and which kind: one probe of a hash table built at compile
/// time (most identifiers miss on an empty slot or a length check).
pub(super) fn keyword(word: &str) -> Option<Kw> {
    let b = word.as_bytes();
    if b.len() < 2 || b.len() > MAX_LEN {
        return None;
    }
    let mut h = slot_of(b);
    loop {
        let e = usize::from(*TABLE.get(h)?);
        let k = KEYWORDS.get(e.checked_sub(1)?)?;
        if k.len() == b.len() && k.as_bytes().eq_ignore_ascii_case(b) {
            return KINDS.get(e - 1).copied();
        }
        h = (h + 1) % SLOTS;
    }
}

/// Open addressing over [`KEYWORDS`]: entry `i + 1` for keyword `i`, 0 for empty. A third full,
/// so a miss probes little more than one slot.
const SLOTS: usize = 512;
static TABLE: [u8; SLOTS] = table();
const MAX_LEN: usize = max_len();

/// The home slot of a word: its length and three of its bytes with the ASCII case bit set (any
/// case hashes alike; a word that is not a keyword may land anywhere and misses on compare).
const fn slot_of(b: &[u8]) -> usize {
    let n = b.len();
    let (f, m, l) = (b[0] | 0x20, b[n / 2] | 0x20, b[n - 1] | 0x20);
    (n * 61 + f as usize * 31 + m as usize * 7 + l as usize * 3) % SLOTS
}

const fn table() -> [u8; SLOTS] {
    assert!(KEYWORDS.len() < 255 && KEYWORDS.len() * 3 <= SLOTS + 64);
    let mut out = [0u8; SLOTS];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let mut h = slot_of(KEYWORDS[i].as_bytes());
        while out[h] != 0 {
            h = (h + 1) % SLOTS;
        }
        out[h] = (i + 1) as u8;
        i += 1;
    }
    out
}

const fn max_len() -> usize {
    let (mut i, mut m) = (0, 0);
    while i < KEYWORDS.len() {
        if KEYWORDS[i].len() > m {
            m = KEYWORDS[i].len();
        }
        i += 1;
    }
    m
}

/// The kind of each keyword, by index.
pub(super) const KINDS: [Kw; KEYWORDS.len()] = kinds();

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
