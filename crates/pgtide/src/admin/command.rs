//! What the console accepts: one table of commands, written as docs/reference/admin.md shows
//! them (a test keeps the two in step), that the parser reads.

use crate::error::ProxyError;

/// A console command, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Command {
    Show(Topic),
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    Reload,
    Shutdown,
    ResetQueries,
    CacheClear(Option<String>),
}

/// What SHOW shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topic {
    Pools,
    Clients,
    Servers,
    Backends,
    Queries,
    SlowQueries,
    NPlusOne,
    Cache,
    Config,
    Version,
}

type Build = fn(Option<String>) -> Command;

/// Every command: its keywords, then `[name]` for an optional argument (extra words are
/// ignored). A variant of `Command` or `Topic` missing here is never built (a dead-code error).
pub(super) const COMMANDS: &[(&str, Build)] = &[
    ("SHOW POOLS", |_| Command::Show(Topic::Pools)),
    ("SHOW CLIENTS", |_| Command::Show(Topic::Clients)),
    ("SHOW SERVERS", |_| Command::Show(Topic::Servers)),
    ("SHOW BACKENDS", |_| Command::Show(Topic::Backends)),
    ("SHOW QUERIES", |_| Command::Show(Topic::Queries)),
    ("SHOW SLOW_QUERIES", |_| Command::Show(Topic::SlowQueries)),
    ("SHOW N_PLUS_ONE", |_| Command::Show(Topic::NPlusOne)),
    ("SHOW CACHE", |_| Command::Show(Topic::Cache)),
    ("SHOW CONFIG", |_| Command::Show(Topic::Config)),
    ("SHOW VERSION", |_| Command::Show(Topic::Version)),
    ("PAUSE [db]", Command::Pause),
    ("RESUME [db]", Command::Resume),
    ("RECONNECT [db]", Command::Reconnect),
    ("RELOAD", |_| Command::Reload),
    ("SHUTDOWN", |_| Command::Shutdown),
    ("RESET QUERIES", |_| Command::ResetQueries),
    ("CACHE CLEAR [table]", Command::CacheClear),
];

/// The command these words (identifiers of one statement, as typed) spell.
pub(super) fn parse(words: &[String], stmt: &str) -> Result<Command, ProxyError> {
    for (syntax, build) in COMMANDS {
        let keywords: Vec<&str> = syntax.split(' ').filter(|w| !w.starts_with('[')).collect();
        let matches = words.len() >= keywords.len()
            && keywords
                .iter()
                .zip(words)
                .all(|(k, w)| w.eq_ignore_ascii_case(k));
        if matches {
            let arg = syntax
                .ends_with(']')
                .then(|| words.get(keywords.len()).cloned())
                .flatten();
            return Ok(build(arg));
        }
    }
    let first = words.first().map(|w| w.to_ascii_lowercase());
    Err(ProxyError::AdminSyntax(
        match (first.as_deref(), words.get(1)) {
            (Some("show"), None) => "SHOW what? (POOLS, CLIENTS, ...)".into(),
            (Some("show"), Some(what)) => {
                let topics: Vec<&str> = COMMANDS
                    .iter()
                    .filter_map(|(s, _)| s.strip_prefix("SHOW "))
                    .collect();
                format!(
                    "unknown SHOW {}: {}",
                    what.to_ascii_lowercase(),
                    topics.join(", ")
                )
            }
            _ => format!("unknown admin command: {}", stmt.trim()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reference/admin.md"
    ));

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn admin_page_has_a_section_for_every_command_and_no_other() {
        let documented: Vec<&str> = PAGE
            .lines()
            .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
            .collect();
        let accepted: Vec<&str> = COMMANDS.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            documented, accepted,
            "admin.md's ### sections, in the table's order"
        );
    }

    #[test]
    fn every_command_parses_as_written_in_any_case_with_and_without_its_argument() {
        for (syntax, build) in COMMANDS {
            let bare = syntax.split(" [").next().unwrap_or(syntax);
            assert_eq!(
                parse(&words(bare), bare).ok(),
                Some(build(None)),
                "{syntax}"
            );
            let lower = bare.to_ascii_lowercase();
            assert_eq!(parse(&words(&lower), &lower).ok(), Some(build(None)));
            if syntax.ends_with(']') {
                let with = format!("{bare} Some_Name");
                assert_eq!(
                    parse(&words(&with), &with).ok(),
                    Some(build(Some("Some_Name".into())))
                );
            }
        }
    }

    #[test]
    fn anything_else_is_a_syntax_error_naming_what_exists() {
        let msg = |s: &str| match parse(&words(s), s) {
            Err(e) => (e.sqlstate().to_string(), e.to_string()),
            Ok(c) => panic!("{s} parsed as {c:?}"),
        };
        assert_eq!(msg("SHOW").1, "SHOW what? (POOLS, CLIENTS, ...)");
        assert_eq!(
            msg("SHOW Nonsense"),
            (
                "42601".into(),
                "unknown SHOW nonsense: POOLS, CLIENTS, SERVERS, BACKENDS, QUERIES, \
                 SLOW_QUERIES, N_PLUS_ONE, CACHE, CONFIG, VERSION"
                    .into()
            )
        );
        assert_eq!(msg("RESET").1, "unknown admin command: RESET");
        assert_eq!(msg("DROP pools").1, "unknown admin command: DROP pools");
    }
}
