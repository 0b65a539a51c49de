use std::time::Duration;

/// Everything that can go wrong while starting, driving or stopping a throwaway cluster.
/// Messages carry the failing command, its stderr and the tail of the server log, because
/// the typical reader is someone staring at a red CI run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries not found (looked in: {searched}); \
         install them, e.g. `apt-get install postgresql`, or set PGTIDE_PG_BINDIR"
    )]
    NoBinaries { searched: String },

    #[error("running as root, but there is no `postgres` OS user to run PostgreSQL as ({0}); create one, e.g. `apt-get install postgresql` or `useradd -r postgres`")]
    NoPostgresUser(String),

    #[error("could not prepare the initdb template: {0}")]
    Template(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{command}` failed ({status}){}{}",
        section("stderr", stderr),
        section("server log tail", log)
    )]
    Command {
        command: String,
        status: String,
        stderr: String,
        log: String,
    },

    #[error("{node} did not start: {reason}{}", section("server log tail", log))]
    Start {
        node: String,
        reason: String,
        log: String,
    },

    #[error(
        "timed out after {timeout:?} waiting for {what}{}",
        section("server log tail", log)
    )]
    Timeout {
        what: String,
        timeout: Duration,
        log: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

fn section(title: &str, body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!("\n--- {title} ---\n{body}")
    }
}
