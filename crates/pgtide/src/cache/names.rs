//! Relation names as the cache compares them.
//!
//! The classifier spells a relation as written in the SQL (`users`, `public.users`, `"Users"`,
//! `"a.b"`: unquoted parts lower-cased, quoted parts re-quoted only when needed), and an operator
//! writes rule tables the same way a query would (`users`, `Public.Users`, `"Users"`). Both are
//! read here into the identifier values PostgreSQL resolves: unquoted parts folded to ASCII lower
//! case, quoted parts kept with `""` undoubled. The last part is the relation, the one before it
//! the schema (a catalog in front is ignored).
//!
//! No search_path resolution: a bare `users` may be any schema's. Two comparisons follow:
//! - invalidation ([`TableName::overlaps`]): a bare name on either side matches any schema, a
//!   qualified pair must agree. Writing `a.t` drops entries that read `a.t` or bare `t`, not
//!   `b.t`; writing bare `t` drops all of them. Conservative: a stale hit is worse than a miss.
//! - rules ([`TableName::covers`]): a bare rule name covers any schema; a qualified rule name
//!   covers only reads written with that same schema (a bare read of the same table is not
//!   covered: it might resolve elsewhere).

/// One relation name, resolved into identifier values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// Reads a possibly qualified, possibly quoted name; None for an empty one.
    pub fn parse(text: &str) -> Option<TableName> {
        let mut parts = split_parts(text);
        let name = parts.pop().filter(|n| !n.is_empty())?;
        let schema = parts.pop();
        Some(TableName { schema, name })
    }

    /// Could both names denote the same relation? (Invalidation: bare matches any schema.)
    pub fn overlaps(&self, other: &TableName) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// Does this rule name cover a read of `read`? (A bare rule name covers any schema.)
    pub fn covers(&self, read: &TableName) -> bool {
        self.name == read.name && (self.schema.is_none() || self.schema == read.schema)
    }

    /// Bytes this name holds, for the cache's weigher.
    pub fn size(&self) -> usize {
        self.name.len() + self.schema.as_ref().map_or(0, String::len)
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{s}.")?;
        }
        f.write_str(&self.name)
    }
}

/// Splits `a."B.c".d` into resolved parts `["a", "B.c", "d"]`.
fn split_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A quoted part: up to the closing quote, `""` stands for one `"`.
                while let Some(q) = chars.next() {
                    if q == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            cur.push('"');
                        } else {
                            break;
                        }
                    } else {
                        cur.push(q);
                    }
                }
            }
            '.' => parts.push(std::mem::take(&mut cur)),
            c if c.is_whitespace() => {}
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> TableName {
        TableName::parse(s).expect("a name")
    }

    #[test]
    fn parses_quoted_and_qualified_names() {
        assert_eq!(n("users"), n("\"users\""));
        assert_eq!(n("USERS"), n("users"));
        assert_eq!(n("Public.Users"), n("public.users"));
        assert_ne!(n("\"Users\""), n("users"));
        assert_eq!(n("\"a.b\"").name, "a.b");
        assert_eq!(n("\"a.b\"").schema, None);
        assert_eq!(n("\"x\"\"y\"").name, "x\"y");
        assert_eq!(n("db.s.t"), n("s.t"));
        assert_eq!(TableName::parse(""), None);
        assert_eq!(TableName::parse("s."), None);
    }

    #[test]
    fn overlap_is_conservative_for_bare_names() {
        assert!(n("users").overlaps(&n("public.users")));
        assert!(n("public.users").overlaps(&n("users")));
        assert!(n("a.t").overlaps(&n("a.t")));
        assert!(!n("a.t").overlaps(&n("b.t")));
        assert!(!n("users").overlaps(&n("user")));
    }

    #[test]
    fn rule_names_cover_reads() {
        assert!(n("users").covers(&n("public.users")));
        assert!(n("users").covers(&n("\"users\"")));
        assert!(n("public.users").covers(&n("public.users")));
        assert!(!n("public.users").covers(&n("users")));
        assert!(!n("public.users").covers(&n("app.users")));
    }
}
