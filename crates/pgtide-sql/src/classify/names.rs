//! Canonical relation names, shared by the lexical fast path and the AST walk so both spell a
//! table the same way.
//!
//! Each part is the identifier as PostgreSQL resolves it (unquoted folded to lower case, ASCII
//! only; quoted kept as is). A part is written bare when it is made of `[a-z0-9_$]` and
//! non-ASCII characters and does not start with a digit or `$`; otherwise it is written
//! double-quoted with `"` doubled. So `users`, `"users"` and `USERS` all give `users`, while
//! `"Users"` gives `"Users"` and a table literally named `a.b` gives `"a.b"`. Parts are joined
//! with `.` as written: `public.users` and `users` stay different strings (no search_path
//! resolution here).

/// Appends one identifier part, quoting it when its value would not read back the same bare.
pub(crate) fn push_part(out: &mut String, value: &str, quoted: bool) {
    if !out.is_empty() {
        out.push('.');
    }
    let folded;
    let value = if !quoted && value.bytes().any(|b| b.is_ascii_uppercase()) {
        folded = value.to_ascii_lowercase();
        folded.as_str()
    } else {
        value
    };
    let b = value.as_bytes();
    let bare = b
        .first()
        .is_some_and(|&c| c.is_ascii_lowercase() || c == b'_' || c >= 0x80)
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'$' || c >= 0x80
        });
    if bare {
        out.push_str(value);
    } else {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    }
}

/// Appends `name` to `list` unless it is already there (lists are short: a linear scan).
pub(crate) fn push_unique(list: &mut Vec<String>, name: String) {
    if !name.is_empty() && !list.contains(&name) {
        list.push(name);
    }
}

/// Adds every name of `from` to `into`, keeping the order and dropping duplicates.
pub(crate) fn extend_unique(into: &mut Vec<String>, from: Vec<String>) {
    for n in from {
        push_unique(into, n);
    }
}
