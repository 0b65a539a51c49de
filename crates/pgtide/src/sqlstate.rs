//! Every SQLSTATE pgtide sends, has PostgreSQL raise for it, or reads in PostgreSQL's answers,
//! by PostgreSQL's condition name. docs/reference/sqlstates.md lists each one (a test below
//! keeps the two in step); `ProxyError::sqlstate` says which error sends which.

// Sent by pgtide (ProxyError).
pub(crate) const PROTOCOL_VIOLATION: &str = "08P01";
pub(crate) const CONNECTION_FAILURE: &str = "08006";
pub(crate) const INVALID_PASSWORD: &str = "28P01";
pub(crate) const INVALID_AUTHORIZATION: &str = "28000";
pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";
pub(crate) const ADMIN_SHUTDOWN: &str = "57P01";
pub(crate) const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub(crate) const UNDEFINED_OBJECT: &str = "42704";
pub(crate) const SYNTAX_ERROR: &str = "42601";
pub(crate) const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
pub(crate) const CONFIG_FILE_ERROR: &str = "F0000";

// Raised by PostgreSQL on pgtide's behalf.
/// A Parse or PREPARE past a client's statement limit runs a DO block raising this.
pub(crate) const PROGRAM_LIMIT_EXCEEDED: &str = "54000";

// Read in PostgreSQL's answers.
/// A replica refusing a write (the read is re-run on the primary).
pub(crate) const READ_ONLY_SQL_TRANSACTION: &str = "25006";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    const PAGE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reference/sqlstates.md"
    ));

    /// (code, NAME) of every constant in this file.
    fn constants() -> BTreeSet<(String, String)> {
        include_str!("sqlstate.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub(crate) const "))
            .filter_map(|l| {
                let (name, rest) = l.split_once(": &str = \"")?;
                Some((rest.get(..5)?.to_string(), name.to_string()))
            })
            .collect()
    }

    /// (code, NAME) of every table row of the page whose first cells are `` `CODE` | `NAME` ``.
    fn documented() -> BTreeSet<(String, String)> {
        PAGE.lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                (code.len() == 5).then(|| (code.to_string(), name.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_constant_is_documented_and_every_documented_code_is_a_constant() {
        let constants = constants();
        assert!(constants.len() >= 13, "{constants:?}");
        let documented = documented();
        let missing: Vec<_> = constants.difference(&documented).collect();
        assert!(missing.is_empty(), "not in sqlstates.md: {missing:?}");
        let unknown: Vec<_> = documented.difference(&constants).collect();
        assert!(
            unknown.is_empty(),
            "in sqlstates.md, not in sqlstate.rs: {unknown:?}"
        );
    }
}
