//! What a SQL statement means for pgtide.
//!
//! A lexical layer, cheap enough to run on every statement: a PostgreSQL-aware tokenizer, a
//! multi-statement splitter, and the session effects of a statement that transaction pooling
//! must carry (SET) or pin for (LISTEN, temp tables, advisory locks, ...). On top of it,
//! [`classify`](crate::classify): read / write / transaction control / session command, the
//! relations read and written, volatility and routing hints, with sqlparser for what the
//! lexical fast path does not cover and a cache in [`Classifier`]. A server reads a simple
//! Query with [`Classifier::analyze`] ([`Analysis`]): one lexing pass yields the session
//! effects, statement names, schema change, classification and fingerprint, each equal to what
//! its own function gives.
//!
//! ```
//! use pgtide_sql::{Classifier, StatementKind};
//!
//! let classifier = Classifier::new(&["audit.log_event".to_string()]);
//! let c = classifier.classify("SELECT o.id FROM orders o JOIN users u ON u.id = o.user_id");
//! assert_eq!(c.kind, StatementKind::Read);
//! assert_eq!(c.reads, ["orders", "users"]);
//! let w = classifier.classify("SELECT * FROM accounts WHERE id = $1 FOR NO KEY UPDATE");
//! assert_eq!(w.kind, StatementKind::Write);
//! assert_eq!(classifier.classify("SELECT audit.log_event($1)").kind, StatementKind::Write);
//! ```
//!
//! ```
//! use pgtide_sql::{session_effects, split_statements, SessionEffect};
//!
//! let sql = "SET search_path TO app, public; SELECT 'a;b'; LISTEN jobs";
//! let effects: Vec<_> = split_statements(sql).into_iter().flat_map(session_effects).collect();
//! assert_eq!(
//!     effects,
//!     vec![
//!         SessionEffect::Set { name: "search_path".into(), value: "app, public".into() },
//!         SessionEffect::Listen { channel: "jobs".into() },
//!     ]
//! );
//! ```

mod analysis;
pub mod classify;
mod counts;
pub mod fingerprint;
pub mod lexer;
pub mod prepared;
mod quote;
pub mod session;
mod session_scan;
mod set;
mod split;

#[cfg(test)]
mod analysis_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod lexer_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod test_rng;

pub use analysis::{analyze, Analysis, ClassifyMode};
pub use classify::{
    classify_uncached, Classification, Classifier, RouteHint, StatementKind, TransactionStatement,
};
#[doc(hidden)]
pub use counts::{counts, Counts};
pub use fingerprint::{fingerprint, fingerprint_with_params, params_hash, Fingerprint};
pub use lexer::{tokens, Lexer, StrKind, Token, TokenKind};
pub use prepared::{drop_all_starts, statement_names, NameRef, StatementUse};
pub use session::{
    changes_schema, quote_ident, quote_literal, raw_value_as_set_text,
    search_path_starts_with_temp, session_effects, setting_is_on, startup_options_to_sets,
    valid_guc_name, SessionEffect, TxControl,
};
pub use split::split_statements;

/// The session effects of every statement in a (possibly multi-statement) string. The common
/// single-statement case skips the splitter and allocates nothing when there are no effects.
pub fn all_session_effects(sql: &str) -> Vec<SessionEffect> {
    if !sql.contains(';') {
        return session_effects(sql);
    }
    split_statements(sql)
        .into_iter()
        .flat_map(session_effects)
        .collect()
}

#[cfg(test)]
mod all_effects_tests {
    use super::*;

    #[test]
    fn single_and_multi_statement_strings_agree() {
        assert_eq!(all_session_effects("SELECT 1"), vec![]);
        assert_eq!(
            all_session_effects("LISTEN a"),
            all_session_effects("LISTEN a;")
        );
        assert_eq!(
            all_session_effects("SELECT ';'; LISTEN a; UNLISTEN *").len(),
            2
        );
    }
}
