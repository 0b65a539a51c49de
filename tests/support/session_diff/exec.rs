//! Runs script operations on one side (pgtide or a direct connection) and observes the
//! session state a client can see, as comparable values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use super::gen::{Op, SLOTS};

/// What a client saw from one operation: rows and command counts, or an SQLSTATE.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok(Vec<String>),
    Err(String),
    /// The operation had nothing to act on (an empty statement slot).
    Skipped,
}

/// Each client's protocol statements on one side, shared so a client can try another's.
pub type Registry = Arc<Vec<Mutex<Vec<Option<(Statement, bool)>>>>>;

pub fn registry(clients: usize) -> Registry {
    Arc::new(
        (0..clients)
            .map(|_| Mutex::new(vec![None; SLOTS]))
            .collect(),
    )
}

fn slot(reg: &Registry, client: usize, slot: usize) -> Option<(Statement, bool)> {
    reg.get(client)
        .and_then(|m| m.lock().ok().and_then(|v| v.get(slot).cloned().flatten()))
}

fn set_slot(reg: &Registry, client: usize, slot: usize, st: Option<(Statement, bool)>) {
    if let Some(Ok(mut v)) = reg.get(client).map(|m| m.lock()) {
        v[slot] = st;
    }
}

/// tokio-postgres keeps a statement's name private; its Debug output shows it.
fn name(st: &Statement) -> String {
    let dbg = format!("{st:?}");
    dbg.split("name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// A statement's reply, whatever its type: raw bytes (binary results) or NULL.
struct Any(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Any {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Any(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Any(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn error_code(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(c) => c.code().to_string(),
        None => format!("client error: {e}"),
    }
}

/// Seconds before a statement counts as hung (a leaked lock, a backend never coming back):
/// longer than pgtide's checkout timeout in the concurrent run, short in shrink replays.
pub static OP_LIMIT_SECS: AtomicU64 = AtomicU64::new(45);

async fn limited<T>(
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    let limit = Duration::from_secs(OP_LIMIT_SECS.load(Ordering::Relaxed));
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error_code(&e)),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

pub async fn simple(client: &Client, sql: &str) -> Outcome {
    match limited(client.simple_query(sql)).await {
        Ok(msgs) => Outcome::Ok(
            msgs.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL"))
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    SimpleQueryMessage::CommandComplete(n) => Some(format!("({n})")),
                    _ => None,
                })
                .collect(),
        ),
        Err(code) => Outcome::Err(code),
    }
}

fn rows(rows: Vec<tokio_postgres::Row>) -> Outcome {
    Outcome::Ok(
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| match r.try_get::<_, Any>(i) {
                        Ok(Any(Some(b))) => format!("{b:02x?}"),
                        Ok(Any(None)) => "NULL".into(),
                        Err(e) => format!("undecodable: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect(),
    )
}

async fn bind_execute(client: &Client, st: &Statement) -> Outcome {
    match limited(client.query(st, &[])).await {
        Ok(r) => rows(r),
        Err(code) => Outcome::Err(code),
    }
}

/// Runs `op` for client `me` on `client`, whose protocol statements live in `reg`.
pub async fn run(client: &Client, reg: &Registry, me: usize, op: &Op) -> Outcome {
    match op {
        Op::Simple(sql) => simple(client, sql).await,
        Op::Ext(sql) => match limited(client.query_typed(sql, &[])).await {
            Ok(r) => rows(r),
            Err(code) => Outcome::Err(code),
        },
        Op::ProtoPrepare { slot: s, sql, pure } => match limited(client.prepare(sql)).await {
            Ok(st) => {
                set_slot(reg, me, *s, Some((st, *pure)));
                Outcome::Ok(vec![])
            }
            Err(code) => Outcome::Err(code),
        },
        Op::ProtoExec { slot: s } => match slot(reg, me, *s) {
            Some((st, _)) => bind_execute(client, &st).await,
            None => Outcome::Skipped,
        },
        Op::ProtoExecOther {
            client: other,
            slot: s,
        } => match slot(reg, *other, *s) {
            Some((st, _)) => bind_execute(client, &st).await,
            None => Outcome::Skipped,
        },
        Op::ProtoClose { slot: s } => {
            // Dropping the last handle sends Close; the next request flushes it.
            set_slot(reg, me, *s, None);
            Outcome::Ok(vec![])
        }
        Op::SqlOnProto { slot: s, verb } => match slot(reg, me, *s) {
            Some((st, _)) => simple(client, &format!("{verb} {}", name(&st))).await,
            None => Outcome::Skipped,
        },
    }
}

/// Settings that legitimately differ between a direct connection and one through pgtide, by
/// prefix. Both sides send the same startup parameters (tokio-postgres: client_encoding, user;
/// only the database name differs) and pgtide sets nothing a client can see, so the only
/// exclusion is a library's settings, listed once any session of the backend loaded it (a DO
/// block loads plpgsql; nothing unloads it, not even DISCARD ALL).
const NOT_COMPARED: &[&str] = &["plpgsql."];

/// Everything a client can observe about its session between transactions.
#[derive(Debug, PartialEq)]
pub struct Observed {
    pub settings: BTreeMap<String, String>,
    /// Named parts: current_user/session_user, channels, advisory locks, temp relations,
    /// and one entry per prepared-statement probe.
    pub parts: Vec<(String, Outcome)>,
}

const STATE_SQL: &str = "SELECT current_user::text || '/' || session_user::text, \
 (SELECT coalesce(string_agg(c, ',' ORDER BY c), '') FROM pg_catalog.pg_listening_channels() c), \
 (SELECT coalesce(string_agg(classid || ':' || objid || ':' || objsubid || ':' || mode || ':' || granted, ',' \
   ORDER BY classid, objid, objsubid, mode), '') FROM pg_catalog.pg_locks \
   WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()), \
 (SELECT coalesce(string_agg(relname || ':' || relkind, ',' ORDER BY relname), '') FROM pg_catalog.pg_class \
   WHERE relpersistence = 't' AND pg_catalog.pg_table_is_visible(oid))";

/// Observes client `me`'s state; `other` is the client whose statement names it tries.
pub async fn observe(client: &Client, reg: &Registry, me: usize, other: usize) -> Observed {
    let mut settings = BTreeMap::new();
    let mut parts = Vec::new();
    match limited(client.simple_query("SHOW ALL")).await {
        Ok(msgs) => {
            for m in msgs {
                if let SimpleQueryMessage::Row(r) = m {
                    let name = r.get(0).unwrap_or("").to_string();
                    if !NOT_COMPARED.iter().any(|p| name.starts_with(p)) {
                        settings.insert(name, r.get(1).unwrap_or("NULL").to_string());
                    }
                }
            }
        }
        Err(code) => parts.push(("SHOW ALL".into(), Outcome::Err(code))),
    }
    match simple(client, STATE_SQL).await {
        Outcome::Ok(v) => {
            let row = v.first().cloned().unwrap_or_default();
            let cols: Vec<&str> = row.split('|').collect();
            for (i, name) in [
                "current_user/session_user",
                "listening channels",
                "advisory locks",
                "temp relations",
            ]
            .iter()
            .enumerate()
            {
                let col = cols.get(i).copied().unwrap_or("?").to_string();
                parts.push((name.to_string(), Outcome::Ok(vec![col])));
            }
        }
        other => parts.push(("state query".into(), other)),
    }
    for name in [
        format!("c{me}_p0"),
        format!("c{me}_p1"),
        format!("c{other}_p0"),
    ] {
        let sql = format!("EXECUTE {name}(1)");
        let outcome = simple(client, &sql).await;
        parts.push((sql, outcome));
    }
    for s in 0..SLOTS {
        // Only side-effect-free statements: observing must not change what it observes.
        if let Some((st, true)) = slot(reg, me, s) {
            parts.push((format!("bind slot{s}"), bind_execute(client, &st).await));
        }
    }
    parts.push((
        format!("bind client{other}'s slot0"),
        match slot(reg, other, 0) {
            Some((st, _)) => bind_execute(client, &st).await,
            None => Outcome::Skipped,
        },
    ));
    Observed { settings, parts }
}

/// The first difference between two observations, as (kind, description).
pub fn diff(direct: &Observed, tide: &Observed) -> Option<(String, String)> {
    for (name, d) in &direct.settings {
        let t = tide.settings.get(name);
        if t != Some(d) {
            return Some((
                format!("setting {name}"),
                format!("SHOW {name}: direct {d:?}, pgtide {t:?}"),
            ));
        }
    }
    for name in tide.settings.keys() {
        if !direct.settings.contains_key(name) {
            return Some((
                format!("setting {name}"),
                format!("SHOW {name} only through pgtide"),
            ));
        }
    }
    let len = direct.parts.len().max(tide.parts.len());
    for i in 0..len {
        match (direct.parts.get(i), tide.parts.get(i)) {
            (Some((n, d)), Some((m, t))) if n == m => {
                // Another client's statement may be gone on one side only (timing).
                let other = n.starts_with("bind client");
                if d != t && !(other && (*d == Outcome::Skipped || *t == Outcome::Skipped)) {
                    return Some((n.clone(), format!("{n}: direct {d:?}, pgtide {t:?}")));
                }
            }
            (d, t) => {
                return Some((
                    "probes".into(),
                    format!("probes differ: direct {d:?}, pgtide {t:?}"),
                ))
            }
        }
    }
    None
}
