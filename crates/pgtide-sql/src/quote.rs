//! Quoting helpers (PostgreSQL's `quote_literal` / `quote_ident`), the libpq `options` startup
//! parameter, and the identifier-list syntax of list-valued GUCs such as `search_path`.

/// Keywords that PostgreSQL's `quote_ident` quotes: every category except UNRESERVED
/// (reserved, type/function-name and column-name keywords, from `kwlist.h`). Sorted.
#[rustfmt::skip]
pub(crate) const QUOTED_KEYWORDS: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
    "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
    "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float",
    "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having",
    "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into",
    "is", "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object",
    "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value",
    "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp",
    "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
    "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps",
    "overlay", "placing", "position", "precision", "primary", "real", "references", "returning",
    "right", "row", "select", "session_user", "setof", "similar", "smallint", "some", "substring",
    "symmetric", "system_user", "table", "tablesample", "then", "time", "timestamp", "to",
    "trailing", "treat", "trim", "true", "union", "unique", "user", "using", "values", "varchar",
    "variadic", "verbose", "when", "where", "window", "with", "xmlattributes", "xmlconcat",
    "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
    "xmlserialize", "xmltable",
];

/// `quote_literal`: single quotes doubled; if there is a backslash, backslashes doubled and an
/// `E` prefix, so the result means the same whatever `standard_conforming_strings` is.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `quote_ident`: left bare only when it is `[a-z_][a-z0-9_]*` and not a keyword that would
/// need quoting; otherwise wrapped in `"` with `"` doubled.
pub fn quote_ident(s: &str) -> String {
    let b = s.as_bytes();
    let safe = b
        .first()
        .is_some_and(|&c| c.is_ascii_lowercase() || c == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && QUOTED_KEYWORDS.binary_search(&s).is_err();
    if safe {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A GUC name safe to splice unquoted after `SET `: dotted parts of `[a-z0-9_$]`, not starting
/// with a digit. Anything else (only reachable through quoted names or set_config) is refused,
/// so a tracked name can never inject SQL.
pub fn valid_guc_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.bytes()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'$')
        })
}

/// GUCs whose value is a list of identifiers (`GUC_LIST_QUOTE`): `SET x TO 'a, b'` and
/// `set_config('x', 'a, b', false)` mean different things for them.
pub(crate) fn is_list_quote_guc(name: &str) -> bool {
    matches!(
        name,
        "search_path"
            | "temp_tablespaces"
            | "session_preload_libraries"
            | "local_preload_libraries"
            | "shared_preload_libraries"
    )
}

/// A raw setting value (as in a startup packet, `options -c`, or set_config) as text to send
/// after `SET name TO `. None for a list value pgtide cannot split.
pub fn raw_value_as_set_text(name: &str, raw: &str) -> Option<String> {
    if is_list_quote_guc(&name.to_ascii_lowercase()) {
        list_value_as_set_text(raw)
    } else {
        Some(quote_literal(raw))
    }
}

/// Re-expresses a list GUC's raw value (as given to set_config) as `SET` text: split like
/// PostgreSQL's `SplitIdentifierString` (unquoted parts folded), each element quote_ident'ed.
/// The empty list becomes `''` (PostgreSQL then shows `""`, which resolves the same way).
pub(crate) fn list_value_as_set_text(raw: &str) -> Option<String> {
    let mut items: Vec<String> = Vec::new();
    let mut rest = raw.trim_start();
    if rest.is_empty() {
        return Some("''".to_owned());
    }
    loop {
        if let Some(body) = rest.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = body.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                if c == '"' {
                    if body[i + 1..].starts_with('"') {
                        chars.next();
                    } else {
                        break i + 1;
                    }
                }
                name.push(c);
            };
            if name.is_empty() {
                return None;
            }
            items.push(name);
            rest = &body[end..];
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            items.push(rest[..end].to_ascii_lowercase());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => break,
            None => return None,
        }
    }
    let quoted: Vec<String> = items.iter().map(|s| quote_ident(s)).collect();
    Some(quoted.join(", "))
}

/// Parses libpq's `options` startup parameter into `(name, value)` pairs, as the backend does:
/// split on whitespace with `\` escaping the next character, then `-c name=value`,
/// `-cname=value` and `--name=value` (dashes in names become underscores, names lowercased).
/// Other backend switches are skipped. Values are raw text: quote with [`quote_literal`].
pub fn startup_options_to_sets(options: &str) -> Vec<(String, String)> {
    let mut args: Vec<String> = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            if c == '\\' {
                if let Some(e) = chars.next() {
                    arg.push(e);
                }
            } else {
                arg.push(c);
            }
        }
        args.push(arg);
    }
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let setting = if let Some(long) = arg.strip_prefix("--") {
            Some(long.to_owned())
        } else if let Some(c) = arg.strip_prefix("-c") {
            if c.is_empty() {
                it.next().cloned()
            } else {
                Some(c.to_owned())
            }
        } else {
            // A switch with an argument (getopt "B:C:D:d:f:h:k:N:p:r:S:t:v:W:") eats the next one.
            let b = arg.as_bytes();
            if b.len() == 2 && b[0] == b'-' && b"BCDdfhkNprStvW".contains(&b[1]) {
                it.next();
            }
            None
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            if !name.is_empty() {
                out.push((
                    name.replace('-', "_").to_ascii_lowercase(),
                    value.to_owned(),
                ));
            }
        }
    }
    out
}

/// Whether a boolean setting's SQL text (`on`, `'Yes'`, `"1"`, any unique prefix of true / yes,
/// as PostgreSQL takes them) says on.
pub fn setting_is_on(value: &str) -> bool {
    let v = value
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .trim()
        .to_ascii_lowercase();
    matches!(
        v.as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y" | "tr" | "tru" | "ye"
    )
}

/// Whether a search_path's SQL text puts the session's temporary schema first (unqualified
/// CREATE then makes temporary objects).
pub fn search_path_starts_with_temp(search_path: &str) -> bool {
    let first = search_path.split(',').next().unwrap_or("");
    let first = first.trim().trim_matches(|c| c == '\'' || c == '"');
    first.to_ascii_lowercase().starts_with("pg_temp")
}
