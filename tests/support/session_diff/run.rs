//! Lockstep execution: each client runs a step on its direct connection, the same step through
//! pgtide, and compares; after every transaction it compares everything it can observe.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use super::exec::{self, Outcome, Registry};
use super::gen::{Op, Txn};

/// One transaction of one client, as scheduled.
#[derive(Clone, Debug)]
pub struct Event {
    pub client: usize,
    pub txn_idx: usize,
    pub txn: Txn,
}

#[derive(Clone, Debug)]
pub struct Divergence {
    pub client: usize,
    pub txn_idx: usize,
    /// The statement whose reply differed; None for a state difference after the transaction.
    pub op_idx: Option<usize>,
    /// Short class of the difference, used to dedupe and to keep a shrink on the same bug.
    pub kind: String,
    pub what: String,
}

fn class(o: &Outcome) -> String {
    match o {
        Outcome::Ok(_) => "ok".into(),
        Outcome::Err(code) => format!("error {code}"),
        Outcome::Skipped => "skipped".into(),
    }
}

/// Both sides of one client.
pub struct Pair<'a> {
    pub direct: &'a Client,
    pub tide: &'a Client,
    pub dreg: &'a Registry,
    pub treg: &'a Registry,
    pub clients: usize,
}

/// Runs one transaction in lockstep and checks the state after it.
pub async fn step(p: &Pair<'_>, e: &Event) -> Result<(), Divergence> {
    let me = e.client;
    for (i, op) in e.txn.0.iter().enumerate() {
        let d = exec::run(p.direct, p.dreg, me, op).await;
        let t = exec::run(p.tide, p.treg, me, op).await;
        let other = matches!(op, Op::ProtoExecOther { .. })
            && (d == Outcome::Skipped || t == Outcome::Skipped);
        if d != t && !other {
            let kind = if class(&d) == class(&t) {
                format!("statement reply differs ({})", class(&d))
            } else {
                format!(
                    "statement {} direct, {} through pgtide",
                    class(&d),
                    class(&t)
                )
            };
            return Err(Divergence {
                client: me,
                txn_idx: e.txn_idx,
                op_idx: Some(i),
                kind,
                what: format!("`{op}`\n  direct: {d:?}\n  pgtide: {t:?}"),
            });
        }
    }
    let other = (me + 1 + e.txn_idx) % p.clients.max(2);
    let d = exec::observe(p.direct, p.dreg, me, other).await;
    let t = exec::observe(p.tide, p.treg, me, other).await;
    match exec::diff(&d, &t) {
        None => Ok(()),
        Some((kind, what)) => Err(Divergence {
            client: me,
            txn_idx: e.txn_idx,
            op_idx: None,
            kind: format!("state after the transaction: {kind}"),
            what,
        }),
    }
}

pub struct RunResult {
    pub txns: usize,
    pub divergence: Option<Divergence>,
    /// Transactions in the order they started, up to the first divergence.
    pub log: Vec<Event>,
}

/// Runs every client's script concurrently; stops everyone at the first divergence.
pub async fn concurrent(direct_url: &str, tide_url: &str, scripts: Vec<Vec<Txn>>) -> RunResult {
    let clients = scripts.len();
    let dreg = exec::registry(clients);
    let treg = exec::registry(clients);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let log: Arc<Mutex<Vec<Event>>> = Arc::default();
    let first: Arc<Mutex<Option<(usize, Divergence)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (me, script) in scripts.into_iter().enumerate() {
        let direct = pgtide_suite::connect(direct_url)
            .await
            .expect("direct connection");
        let tide = pgtide_suite::connect(tide_url)
            .await
            .expect("connection through pgtide");
        let (dreg, treg, stop, done, log, first) = (
            dreg.clone(),
            treg.clone(),
            stop.clone(),
            done.clone(),
            log.clone(),
            first.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let pair = Pair {
                direct: &direct,
                tide: &tide,
                dreg: &dreg,
                treg: &treg,
                clients,
            };
            for (txn_idx, txn) in script.into_iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let e = Event {
                    client: me,
                    txn_idx,
                    txn,
                };
                let pos = {
                    let mut log = log.lock().expect("log");
                    log.push(e.clone());
                    log.len() - 1
                };
                if let Err(d) = step(&pair, &e).await {
                    stop.store(true, Ordering::SeqCst);
                    let mut first = first.lock().expect("first");
                    if first.is_none() {
                        *first = Some((pos, d));
                    }
                    break;
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let first = first.lock().expect("first").take();
    let mut log = std::mem::take(&mut *log.lock().expect("log"));
    if let Some((pos, _)) = &first {
        log.truncate(pos + 1);
    }
    RunResult {
        txns: done.load(Ordering::SeqCst),
        divergence: first.map(|(_, d)| d),
        log,
    }
}

/// The events as a script a person can replay by hand.
pub fn render(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("-- client {} (txn {})\n", e.client, e.txn_idx));
        if e.txn.0.is_empty() {
            out.push_str("   (nothing: the state check after it shows the difference)\n");
        }
        for op in &e.txn.0 {
            out.push_str(&format!("{op}\n"));
        }
    }
    out
}
