//! Where a client's next transaction runs. Writes, anything uncertain and ordinary explicit
//! transactions go to the primary; certain reads (and READ ONLY transactions) to a replica
//! chosen by the topology, unless read-your-writes says the client's last write may not be
//! there yet. The session works out the intent from the classified statements; this module
//! only decides.

pub(crate) mod intent;
pub(crate) mod session_router;

use std::time::Instant;

use pgtide_config::{PrimaryReads, ReadYourWrites, ReplicaReads, RoutingConfig};
use pgtide_sql::RouteHint;

use crate::upstream::topology::{ReadPolicy, Topology};

/// What the statements that open a transaction are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Intent {
    /// Certainly reads (an autocommit read, or a READ ONLY transaction).
    pub read: bool,
    /// A READ ONLY transaction (`BEGIN READ ONLY`).
    pub read_only_transaction: bool,
    pub hint: Option<RouteHint>,
}

/// `SET pgtide.route = primary | replica | auto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SessionRoute {
    #[default]
    Auto,
    Primary,
    Replica,
}

impl SessionRoute {
    /// `SET pgtide.route = primary | replica | auto` (or `TO`, quoted or not, `SET SESSION`)
    /// and `RESET pgtide.route`, as a whole simple-Query string. pgtide answers these itself:
    /// `primary` is a reserved word PostgreSQL would reject, and the setting is pgtide's.
    pub(crate) fn from_statement(sql: &str) -> Option<SessionRoute> {
        // Runs on every Query: one token decides for all but SET and RESET.
        // (a keyword, so never quoted; compared in place: no allocation for an uppercase word).
        let head = pgtide_sql::tokens(sql).next();
        if !head.is_some_and(|t| t.is_kw("set") || t.is_kw("reset")) {
            return None;
        }
        let toks: Vec<_> = pgtide_sql::tokens(sql)
            .filter(|t| t.kind != pgtide_sql::TokenKind::Semicolon)
            .collect();
        let word = |i: usize| {
            toks.get(i)
                .and_then(|t| t.ident())
                .map(|w| w.to_ascii_lowercase())
        };
        let name_at = |i: usize| {
            word(i).as_deref() == Some("pgtide")
                && toks
                    .get(i + 1)
                    .is_some_and(|t| t.kind == pgtide_sql::TokenKind::Dot)
                && word(i + 2).as_deref() == Some("route")
        };
        match word(0).as_deref() {
            Some("reset") if name_at(1) && toks.len() == 4 => Some(SessionRoute::Auto),
            Some("set") => {
                let at = if word(1).as_deref() == Some("session") {
                    2
                } else {
                    1
                };
                let assign = toks.get(at + 3)?;
                let assigns = assign.text == "=" || assign.is_kw("to");
                if !name_at(at) || !assigns || toks.len() != at + 5 {
                    return None;
                }
                let value = toks.get(at + 4)?;
                let value = value
                    .string_value()
                    .or_else(|| value.ident())
                    .map(|v| v.to_ascii_lowercase())?;
                match value.as_str() {
                    "primary" => Some(SessionRoute::Primary),
                    "replica" => Some(SessionRoute::Replica),
                    "auto" | "default" => Some(SessionRoute::Auto),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A client's writes, for read-your-writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientWrites {
    /// The primary's WAL position after the client's last committed write.
    pub lsn: Option<u64>,
    pub at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Run on this backend of the topology.
    Backend(usize),
    /// A read with no replica to take it and `primary_reads = never`.
    NoReplica,
}

pub(crate) fn decide(
    topology: &Topology,
    config: &RoutingConfig,
    writes: &ClientWrites,
    session: SessionRoute,
    intent: Intent,
) -> Decision {
    let primary = Decision::Backend(topology.primary());
    if !config.read_write_split
        || !topology.has_replicas()
        || config.replica_reads == ReplicaReads::Off
        || !intent.read
        || session == SessionRoute::Primary
        || intent.hint == Some(RouteHint::Primary)
    {
        return primary;
    }
    if config.replica_reads == ReplicaReads::ReadOnlyTransactions && !intent.read_only_transaction {
        return primary;
    }
    // A hint or SET pgtide.route = replica asks for a replica even right after a write.
    let forced = session == SessionRoute::Replica || intent.hint == Some(RouteHint::Replica);
    let min_lsn = match config.read_your_writes {
        ReadYourWrites::Lsn if !forced => writes.lsn,
        _ => None,
    };
    if config.read_your_writes == ReadYourWrites::Window
        && !forced
        && writes
            .at
            .is_some_and(|at| at.elapsed() < config.read_your_writes_window)
    {
        topology.note_primary_read();
        return primary;
    }
    let policy = ReadPolicy {
        max_lag: config.max_replica_lag,
        min_lsn,
        primary_reads: config.primary_reads,
    };
    match topology.choose_for_read(&policy) {
        Some(i) => Decision::Backend(i),
        None if config.primary_reads == PrimaryReads::Never => Decision::NoReplica,
        None => {
            topology.note_primary_read();
            primary
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A primary and one replica, both healthy.
    fn topology() -> Arc<Topology> {
        crate::upstream::topology::tests::healthy_topology(&[1])
    }

    const READ: Intent = Intent {
        read: true,
        read_only_transaction: false,
        hint: None,
    };

    fn go(
        config: &RoutingConfig,
        writes: ClientWrites,
        session: SessionRoute,
        intent: Intent,
    ) -> Decision {
        decide(&topology(), config, &writes, session, intent)
    }

    #[test]
    fn reads_go_to_a_replica_and_the_rest_to_the_primary() {
        let c = RoutingConfig::default();
        let w = ClientWrites::default();
        assert_eq!(go(&c, w, SessionRoute::Auto, READ), Decision::Backend(1));
        assert_eq!(
            go(&c, w, SessionRoute::Auto, Intent::default()),
            Decision::Backend(0),
            "a write"
        );
        let hinted = Intent {
            hint: Some(RouteHint::Primary),
            ..READ
        };
        assert_eq!(go(&c, w, SessionRoute::Auto, hinted), Decision::Backend(0));
        assert_eq!(go(&c, w, SessionRoute::Primary, READ), Decision::Backend(0));
        let off = RoutingConfig {
            read_write_split: false,
            ..RoutingConfig::default()
        };
        assert_eq!(go(&off, w, SessionRoute::Auto, READ), Decision::Backend(0));
        let ro_only = RoutingConfig {
            replica_reads: ReplicaReads::ReadOnlyTransactions,
            ..RoutingConfig::default()
        };
        assert_eq!(
            go(&ro_only, w, SessionRoute::Auto, READ),
            Decision::Backend(0)
        );
        let ro_tx = Intent {
            read_only_transaction: true,
            ..READ
        };
        assert_eq!(
            go(&ro_only, w, SessionRoute::Auto, ro_tx),
            Decision::Backend(1)
        );
    }

    #[test]
    fn read_your_writes_keeps_reads_off_replicas_that_are_behind() {
        let c = RoutingConfig::default();
        let behind = ClientWrites {
            lsn: Some(200),
            at: Some(Instant::now()),
        };
        assert_eq!(
            go(&c, behind, SessionRoute::Auto, READ),
            Decision::Backend(0)
        );
        let replayed = ClientWrites {
            lsn: Some(100),
            ..behind
        };
        assert_eq!(
            go(&c, replayed, SessionRoute::Auto, READ),
            Decision::Backend(1)
        );
        // Asking for a replica explicitly overrides it.
        assert_eq!(
            go(&c, behind, SessionRoute::Replica, READ),
            Decision::Backend(1)
        );
        let window = RoutingConfig {
            read_your_writes: ReadYourWrites::Window,
            ..RoutingConfig::default()
        };
        assert_eq!(
            go(&window, behind, SessionRoute::Auto, READ),
            Decision::Backend(0)
        );
        let never = RoutingConfig {
            primary_reads: PrimaryReads::Never,
            ..RoutingConfig::default()
        };
        assert_eq!(
            go(&never, behind, SessionRoute::Auto, READ),
            Decision::NoReplica
        );
        let off = RoutingConfig {
            read_your_writes: ReadYourWrites::Off,
            ..RoutingConfig::default()
        };
        assert_eq!(
            go(&off, behind, SessionRoute::Auto, READ),
            Decision::Backend(1)
        );
    }

    #[test]
    fn session_route_statement() {
        let r = SessionRoute::from_statement;
        assert_eq!(r("SET pgtide.route = primary"), Some(SessionRoute::Primary));
        assert_eq!(
            r("set session PGTIDE.ROUTE to 'replica';"),
            Some(SessionRoute::Replica)
        );
        assert_eq!(r("SET pgtide.route TO auto"), Some(SessionRoute::Auto));
        assert_eq!(r("RESET pgtide.route"), Some(SessionRoute::Auto));
        assert_eq!(r("SET pgtide.route = nowhere"), None);
        assert_eq!(r("SET pgtide.route = primary; SELECT 1"), None);
        assert_eq!(r("SET search_path = primary"), None);
    }
}
