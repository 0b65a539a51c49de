//! Seeded generator of client scripts for the differential session checker: every statement
//! that can change (or hide a change of) session state, in the spellings a lexer may miss.
//! Scripts are a pure function of (seed, client, features): no clock, no global counter.

/// Protocol-level statement slots per client.
pub const SLOTS: usize = 2;

use super::rng::{Features, Rng};

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A simple Query message (may hold several statements).
    Simple(String),
    /// Extended protocol through the unnamed statement (Parse/Bind/Describe/Execute/Sync).
    Ext(String),
    /// Parse of a named protocol statement into a slot (a success replaces and closes the old one).
    ProtoPrepare {
        slot: usize,
        sql: String,
        pure: bool,
    },
    /// Bind/Execute of the client's own statement in `slot`.
    ProtoExec { slot: usize },
    /// Bind/Execute of another client's statement: must fail as it does direct (26000).
    ProtoExecOther { client: usize, slot: usize },
    /// Close of the statement in `slot`.
    ProtoClose { slot: usize },
    /// `EXECUTE <name>` / `DEALLOCATE <name>` of a protocol statement through SQL.
    SqlOnProto { slot: usize, verb: &'static str },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Simple(s) => write!(f, "{s};"),
            Op::Ext(s) => write!(f, "\\extended {s}"),
            Op::ProtoPrepare { slot, sql, .. } => write!(f, "\\parse slot{slot} {sql}"),
            Op::ProtoExec { slot } => write!(f, "\\bind_execute slot{slot}"),
            Op::ProtoExecOther { client, slot } => {
                write!(f, "\\bind_execute client{client}'s slot{slot}")
            }
            Op::ProtoClose { slot } => write!(f, "\\close slot{slot}"),
            Op::SqlOnProto { slot, verb } => write!(f, "{verb} <name of slot{slot}>;"),
        }
    }
}

/// One unit between state checks: autocommit statements or a whole explicit transaction.
#[derive(Clone, Debug)]
pub struct Txn(pub Vec<Op>);

struct Gen<'a> {
    rng: Rng,
    c: usize,
    clients: usize,
    f: &'a Features,
    /// Transactions since the client last did something that pins.
    pinning: usize,
}

const SETTINGS: &[(&str, &[&str])] = &[
    (
        "search_path",
        &["s1", "s2, public", "pg_catalog, s1", "public", "evil"],
    ),
    ("TimeZone", &["UTC", "Asia/Tokyo", "America/New_York"]),
    ("statement_timeout", &["0", "5s", "1min"]),
    ("lock_timeout", &["0", "3s"]),
    ("work_mem", &["4MB", "8MB"]),
    ("DateStyle", &["ISO, MDY", "ISO, DMY", "SQL, DMY"]),
    ("IntervalStyle", &["postgres", "iso_8601"]),
    ("extra_float_digits", &["0", "3", "-2"]),
    ("bytea_output", &["hex", "escape"]),
    ("application_name", &["", "svc-a", "svc-b"]),
    ("myapp.tenant", &["a", "b"]),
    ("enable_seqscan", &["on", "off"]),
    ("client_min_messages", &["notice", "warning"]),
    (
        "default_transaction_isolation",
        &["read committed", "serializable"],
    ),
];

/// Spellings of set_config's name, all calling pg_catalog.set_config.
const SET_CONFIG: &[&str] = &[
    "set_config",
    "pg_catalog.set_config",
    "\"set_config\"",
    "PG_CATALOG.SET_CONFIG",
    "U&\"set\\005Fconfig\"",
    "U&\"set!005Fconfig\" UESCAPE '!'",
    "pg_catalog.U&\"\\0073et_config\"",
];

/// Reads whose text depends on session state.
const READS: &[&str] = &[
    "SHOW search_path",
    // NULL and '' alike: a custom setting another session of the backend defined stays
    // defined (as '') after RESET, and nothing but a new connection undoes that.
    "SELECT current_setting('TimeZone'), coalesce(current_setting('myapp.tenant', true), '')",
    "SELECT '1 day 2 hours'::interval::text, '2020-01-02'::date::text",
    "SELECT 0.1::float8::text, '\\x01ff'::bytea::text",
    "SELECT current_user, session_user",
    // The temporary schema's number is the backend's own (pg_temp_3 here, pg_temp_11 there):
    // only whether the session has one is compared.
    "SELECT regexp_replace(pg_catalog.current_schemas(true)::text, 'pg_temp_[0-9]+', 'pg_temp')",
];

fn lit(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl Gen<'_> {
    fn set_value(&mut self) -> (&'static str, &'static str) {
        let (name, values) = *self.rng.pick(SETTINGS);
        (name, *self.rng.pick(values))
    }

    fn set_stmt(&mut self, in_txn: bool) -> String {
        let (name, v) = self.set_value();
        let sc = *self.rng.pick(SET_CONFIG);
        let local = if in_txn && self.rng.chance(30) {
            "true"
        } else {
            "false"
        };
        let quoted_name = format!("\"{name}\"");
        match self.rng.below(17) {
            0 => format!("SET {name} = {}", lit(v)),
            1 => format!("SET {name} TO {}", lit(v)),
            2 => format!("SET SESSION {quoted_name} = {}", lit(v)),
            3 if in_txn => format!("SET LOCAL {name} = {}", lit(v)),
            4 => format!("SET {name} TO DEFAULT"),
            5 => format!("RESET {name}"),
            6 => "RESET ALL".into(),
            7..=9 => format!("SELECT {sc}({}, {}, {local})", lit(name), lit(v)),
            10 => format!(
                "SELECT * FROM {sc}(U&'{}', {}, false)",
                name.replace('_', "\\005F"),
                lit(v)
            ),
            11 => format!(
                "WITH x AS (SELECT {sc}({}, {}, false) AS v) SELECT v FROM x",
                lit(name),
                lit(v)
            ),
            12 => format!(
                "DO $$BEGIN PERFORM set_config({}, {}, false); END$$",
                lit(name),
                lit(v)
            ),
            13 => format!(
                "UPDATE pg_settings SET setting = {} WHERE name = {}",
                lit(v),
                lit(name)
            ),
            14 => format!(
                "SET TIME ZONE {}",
                lit(self.rng.pick::<&str>(&["UTC", "Europe/Paris"]))
            ),
            15 => format!(
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {}",
                self.rng
                    .pick(&["SERIALIZABLE", "READ COMMITTED", "REPEATABLE READ"])
            ),
            16 => format!("SET SCHEMA {}", lit(self.rng.pick::<&str>(&["s1", "s2"]))),
            _ => READS[self.rng.below(READS.len())].to_string(),
        }
    }

    fn role_stmt(&mut self) -> String {
        let r = *self.rng.pick(&["r1", "r2", "r3"]);
        let sc = *self.rng.pick(SET_CONFIG);
        match self.rng.below(11) {
            0 | 1 => format!("SET ROLE {r}"),
            2 => format!("SET ROLE '{r}'"),
            3 => "SET ROLE NONE".into(),
            4 => "RESET ROLE".into(),
            5 => format!("SELECT {sc}('role', '{r}', false)"),
            6 => "SET SESSION AUTHORIZATION app".into(),
            7 => format!("SET SESSION AUTHORIZATION {r}"),
            8 => "RESET SESSION AUTHORIZATION".into(),
            9 => "SET ROLE nosuch_role".into(),
            _ => "SELECT current_user, session_user".into(),
        }
    }

    fn listen_stmt(&mut self) -> String {
        self.pinning += 1;
        let ch = format!("c{}_{}", self.c, self.rng.pick(&["a", "b"]));
        match self.rng.below(8) {
            0 | 1 => format!("LISTEN {ch}"),
            2 => format!("LISTEN \"{ch}\""),
            3 => format!("UNLISTEN {ch}"),
            4 => "UNLISTEN *".into(),
            5 => format!("NOTIFY {ch}, 'hi'"),
            6 => format!("SELECT pg_notify('{ch}', 'x')"),
            _ => "SELECT pg_listening_channels()".into(),
        }
    }

    fn lock_stmt(&mut self) -> String {
        self.pinning += 1;
        let k = self.c * 10 + 1 + self.rng.below(2);
        match self.rng.below(11) {
            0 | 1 => format!("SELECT pg_try_advisory_lock({k})"),
            2 => format!("SELECT pg_advisory_lock({k})"),
            3 => format!("SELECT pg_advisory_unlock({k})"),
            4 | 5 => "SELECT pg_advisory_unlock_all()".into(),
            6 => format!("SELECT pg_try_advisory_xact_lock({k})"),
            7 => format!("SELECT U&\"pg_\\0061dvisory_lock\"({k})"),
            8 => format!("SELECT pg_catalog.\"pg_advisory_lock_shared\"({k})"),
            9 => format!("SELECT pg_try_advisory_lock({}, {k})", self.c),
            _ => format!("SELECT x FROM pg_try_advisory_lock({k}) x"),
        }
    }

    fn temp_stmt(&mut self, in_txn: bool) -> String {
        self.pinning += 1;
        let t = format!("t{}_{}", self.c, self.rng.pick(&["a", "b"]));
        match self.rng.below(15) {
            0 | 1 => format!("CREATE TEMP TABLE {t} (x int)"),
            2 => format!("CREATE TEMPORARY TABLE IF NOT EXISTS {t} (x int)"),
            3 => format!("CREATE TEMP TABLE {t} AS SELECT 1 AS x"),
            4 => format!("SELECT 42 AS x INTO pg_temp.{t}"),
            5 => format!("SELECT 1 AS x INTO TEMP {t}"),
            6 => format!("CREATE TABLE pg_temp.{t} (x int)"),
            7 if in_txn => format!("CREATE TEMP TABLE {t} (x int) ON COMMIT DROP"),
            8 => format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) CREATE TEMP TABLE {t} AS SELECT 1 AS x"
            ),
            9 => format!("INSERT INTO {t} VALUES (1)"),
            10 => format!("SELECT count(*) FROM {t}"),
            11 => format!("DROP TABLE {t}"),
            12 => format!("CREATE TEMP VIEW {t}_v AS SELECT 1 AS x"),
            13 => "DISCARD TEMP".into(),
            _ => format!("DROP TABLE IF EXISTS {t}"),
        }
    }

    fn prepare_stmt(&mut self) -> String {
        let p = format!("c{}_p{}", self.c, self.rng.below(2));
        let other = (self.c + 1 + self.rng.below(self.clients.max(2) - 1)) % self.clients.max(2);
        let n = self.rng.below(100);
        match self.rng.below(11) {
            0 | 1 => format!("PREPARE {p}(int) AS SELECT $1 + {n}"),
            2 => format!("PREPARE {p} (int4) AS SELECT $1, current_setting('search_path')"),
            3 => format!("prepare {} (int) as select $1 * 2", p.to_uppercase()),
            4 | 5 => format!("EXECUTE {p}({n})"),
            6 => format!("EXECUTE \"{}\"(1)", p.to_uppercase()),
            7 => format!("DEALLOCATE {p}"),
            8 => format!("DEALLOCATE PREPARE {}", self.rng.pick(&["ALL", p.as_str()])),
            9 => format!("EXECUTE c{other}_p0(1)"),
            _ => format!("EXPLAIN (COSTS OFF) EXECUTE {p}(3)"),
        }
    }

    fn proto_op(&mut self) -> Op {
        let slot = self.rng.below(SLOTS);
        let k = self.c * 10 + 1;
        match self.rng.below(10) {
            0..=2 => {
                let (sql, pure) = match self.rng.below(6) {
                    0 => (format!("SELECT {}::int4 AS v", self.rng.below(100)), true),
                    1 => (
                        "SELECT current_user::text, current_setting('search_path')".into(),
                        true,
                    ),
                    2 => (
                        "SELECT count(*) FROM pg_catalog.pg_class WHERE relpersistence = 't' AND relnamespace = pg_catalog.pg_my_temp_schema()"
                            .into(),
                        true,
                    ),
                    3 => (
                        format!("SET search_path = {}", self.rng.pick(&["s1", "s2"])),
                        false,
                    ),
                    4 => (
                        "SELECT set_config('myapp.tenant', 'proto', false)".into(),
                        false,
                    ),
                    _ => (format!("SELECT pg_try_advisory_lock({k})"), false),
                };
                Op::ProtoPrepare { slot, sql, pure }
            }
            3..=5 => Op::ProtoExec { slot },
            6 => Op::ProtoExecOther {
                client: (self.c + 1 + self.rng.below(7)) % self.clients.max(2),
                slot,
            },
            7 => Op::ProtoClose { slot },
            _ => Op::SqlOnProto {
                slot,
                verb: self.rng.pick::<&str>(&["EXECUTE", "EXECUTE", "DEALLOCATE"]),
            },
        }
    }

    fn error_stmt(&mut self) -> String {
        self.rng
            .pick(&[
                "SELECT 1/0",
                "SELECT * FROM no_such_table",
                "SELEC 1",
                "SELECT 'x'::int",
            ])
            .to_string()
    }

    /// `SET standard_conforming_strings` and statements that lex differently under it.
    fn scs_stmt(&mut self) -> String {
        self.pinning += 1;
        let sc = *self.rng.pick(SET_CONFIG);
        match self.rng.below(6) {
            0 | 1 => "SET standard_conforming_strings = off".into(),
            2 => "SET standard_conforming_strings = on".into(),
            3 => format!("SELECT 'it\\'s', {sc}('search_path', 'evil', false), 'x'"),
            4 => format!("SELECT 'a\\', {sc}('myapp.tenant', 'hidden', false) --'"),
            _ => "SELECT E'\\'', 'b\\\\'".into(),
        }
    }

    fn discard_stmt(&mut self) -> String {
        self.rng
            .pick(&[
                "DISCARD ALL",
                "DISCARD TEMP",
                "DISCARD PLANS",
                "DISCARD SEQUENCES",
                "discard all",
            ])
            .to_string()
    }

    /// One statement of a source feature (a protocol op for "proto").
    fn op(&mut self, in_txn: bool) -> Op {
        let sources = self.f.sources();
        let feature = *self.rng.pick(&sources);
        let sql = match feature {
            "set" => self.set_stmt(in_txn),
            "role" => self.role_stmt(),
            "listen" => self.listen_stmt(),
            "lock" => self.lock_stmt(),
            "temp" => self.temp_stmt(in_txn),
            "prepare" => self.prepare_stmt(),
            "proto" => return self.proto_op(),
            "error" => self.error_stmt(),
            "discard" => self.discard_stmt(),
            "scs" => self.scs_stmt(),
            _ => READS[self.rng.below(READS.len())].to_string(),
        };
        // SQL-level PREPARE / EXECUTE / DEALLOCATE inside a protocol statement are not given
        // pgtide's names (a documented limit, docs/correctness.md): they go as simple queries.
        let names_statements = !pgtide_sql::statement_names(&sql).is_empty();
        if self.f.has("ext") && self.rng.chance(15) && !names_statements {
            Op::Ext(sql)
        } else {
            Op::Simple(sql)
        }
    }

    fn txn(&mut self) -> Txn {
        // Pins hold one of two backends from seven other clients: undo them soon.
        if self.pinning >= 3 && self.rng.chance(50) {
            self.pinning = 0;
            return Txn(vec![Op::Simple(
                self.rng
                    .pick(&[
                        "DISCARD ALL",
                        "UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; SET standard_conforming_strings = on",
                    ])
                    .to_string(),
            )]);
        }
        if !self.f.has("txn") || self.rng.chance(40) {
            let n = 1 + self.rng.below(2);
            let ops: Vec<Op> = (0..n).map(|_| self.op(false)).collect();
            if self.f.has("multi") && n > 1 && self.rng.chance(40) {
                // Several statements in one Query: an implicit transaction.
                let texts: Vec<String> = ops
                    .iter()
                    .filter_map(|o| match o {
                        Op::Simple(s) | Op::Ext(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if texts.len() == n {
                    return Txn(vec![Op::Simple(texts.join("; "))]);
                }
            }
            return Txn(ops);
        }
        let mut ops = vec![Op::Simple(
            self.rng
                .pick(&[
                    "BEGIN",
                    "START TRANSACTION",
                    "BEGIN ISOLATION LEVEL REPEATABLE READ",
                    "begin",
                ])
                .to_string(),
        )];
        let mut savepoints = 0;
        for _ in 0..1 + self.rng.below(4) {
            match self.rng.below(10) {
                0 => {
                    savepoints += 1;
                    ops.push(Op::Simple(format!("SAVEPOINT sp{savepoints}")));
                }
                1 if savepoints > 0 => ops.push(Op::Simple(format!(
                    "{} sp{}",
                    self.rng
                        .pick(&["ROLLBACK TO SAVEPOINT", "ROLLBACK TO", "RELEASE SAVEPOINT"]),
                    1 + self.rng.below(savepoints)
                ))),
                2 if self.f.has("error") => ops.push(Op::Simple(self.error_stmt())),
                _ => ops.push(self.op(true)),
            }
        }
        let end = *self.rng.pick(&[
            "COMMIT",
            "COMMIT",
            "ROLLBACK",
            "END",
            "ABORT",
            "COMMIT AND CHAIN",
        ]);
        ops.push(Op::Simple(end.to_string()));
        if end == "COMMIT AND CHAIN" {
            ops.push(self.op(true));
            ops.push(Op::Simple("COMMIT".into()));
        }
        if self.f.has("multi") && self.rng.chance(20) {
            let texts: Vec<String> = ops
                .iter()
                .filter_map(|o| match o {
                    Op::Simple(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            if texts.len() == ops.len() {
                return Txn(vec![Op::Simple(texts.join("; "))]);
            }
        }
        Txn(ops)
    }
}

/// Client `c`'s script of `txns` transactions.
pub fn script(seed: u64, c: usize, clients: usize, txns: usize, f: &Features) -> Vec<Txn> {
    let mut g = Gen {
        rng: Rng::new(seed ^ ((c as u64 + 1) << 40)),
        c,
        clients,
        f,
        pinning: 0,
    };
    (0..txns).map(|_| g.txn()).collect()
}
