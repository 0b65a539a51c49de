//! Shrinks a divergence found by the concurrent run: replays the logged transactions one at a
//! time, in the order they started, on a fresh pgtide and fresh direct connections, and keeps
//! removing transactions and statements while the same kind of divergence still shows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pgtide_config::PoolMode;
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use tokio_postgres::Client;

use super::exec::{self, Registry};
use super::run::{step, Divergence, Event, Pair};

pub enum Replay {
    /// Diverged at event index `at` with this divergence.
    Diverged(usize, Divergence),
    Clean,
    /// A client waited for a backend another client holds (pool of 1 or 2, sequential).
    Blocked,
}

/// Replays `events` sequentially through a fresh pgtide with a pool of `pool`.
pub async fn replay(
    cluster: &Cluster,
    direct_url: &str,
    events: &[Event],
    clients: usize,
    pool: usize,
) -> Replay {
    let mut config = s::config(cluster, PoolMode::Transaction, pool);
    config.pool.checkout_timeout = Duration::from_secs(1);
    let server = s::start(config).await;
    let tide_url = s::app_url(&server);
    let dreg: Registry = exec::registry(clients);
    let treg: Registry = exec::registry(clients);
    let mut conns: BTreeMap<usize, (Client, Client)> = BTreeMap::new();
    // With two backends, a holder takes one in a transaction around every other event, so
    // consecutive transactions run on different backends (what must be carried shows).
    let holder = if pool > 1 {
        s::connect(&tide_url).await.ok()
    } else {
        None
    };
    let mut result = Replay::Clean;
    for (i, e) in events.iter().enumerate() {
        let hold = holder.as_ref().filter(|_| i % 2 == 1);
        if let Some(h) = hold {
            // Two pinned clients leave nothing to hold: then this event runs where it may.
            let _ = h.batch_execute("BEGIN; SELECT 1").await;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = conns.entry(e.client) {
            let (Ok(d), Ok(t)) = (s::connect(direct_url).await, s::connect(&tide_url).await) else {
                result = Replay::Blocked;
                break;
            };
            slot.insert((d, t));
        }
        let (d, t) = &conns[&e.client];
        let pair = Pair {
            direct: d,
            tide: t,
            dreg: &dreg,
            treg: &treg,
            clients,
        };
        let stepped = step(&pair, e).await;
        if let Some(h) = hold {
            let _ = h.batch_execute("COMMIT").await;
        }
        if let Err(div) = stepped {
            // A state check that could not get a backend (another client is pinned to the only
            // one) reads as an empty answer: that is a blocked replay, not a divergence.
            let blocked = div.kind.contains("53300")
                || t.simple_query("SELECT 1")
                    .await
                    .is_err_and(|e| e.code().map(|c| c.code()) == Some("53300"));
            result = if blocked {
                Replay::Blocked
            } else {
                Replay::Diverged(i, div)
            };
            break;
        }
    }
    drop((conns, holder));
    // Registries hold statements whose drop talks to the (closed) clients: drop them first.
    drop((dreg, treg));
    server.shutdown(s::Shutdown::Immediate).await;
    if std::env::var_os("PGTIDE_FUZZ_DEBUG").is_some() {
        let r = match &result {
            Replay::Diverged(at, d) => format!("diverged at {at}: {} {}", d.kind, d.what),
            Replay::Clean => "clean".into(),
            Replay::Blocked => "blocked".into(),
        };
        eprintln!("replay of {} events, pool {pool}: {r}", events.len());
    }
    result
}

pub struct Shrunk {
    pub events: Vec<Event>,
    pub divergence: Divergence,
    pub pool: usize,
    pub replays: usize,
}

/// The smallest sequence of events found that still diverges the way `original` did; None
/// when the sequential replay does not reproduce it at all (a timing-dependent divergence).
pub async fn shrink(
    cluster: &Cluster,
    direct_url: &str,
    log: &[Event],
    original: &Divergence,
    clients: usize,
    budget: Duration,
) -> Option<Shrunk> {
    let started = Instant::now();
    exec::OP_LIMIT_SECS.store(5, std::sync::atomic::Ordering::Relaxed);
    let mut replays = 0;
    let mut best: Option<Shrunk> = None;
    let mut other: Option<Shrunk> = None;
    // The failing client alone first (what is not carried shows with alternating backends),
    // then everyone on a pool of 1, where leaks show most reliably.
    let alone: Vec<Event> = log
        .iter()
        .filter(|e| e.client == original.client)
        .cloned()
        .collect();
    for (events, pool) in [(&alone, 2), (&log.to_vec(), 1), (&log.to_vec(), 2)] {
        replays += 1;
        if let Replay::Diverged(at, d) = replay(cluster, direct_url, events, clients, pool).await {
            let found = Shrunk {
                events: cut(events, at, &d),
                divergence: d,
                pool,
                replays,
            };
            if found.divergence.kind == original.kind {
                best = Some(found);
                break;
            }
            // Sequentially, another difference may come first: shrink that one instead.
            other.get_or_insert(found);
        }
    }
    let mut best = best.or(other)?;
    let kind = best.divergence.kind.clone();
    let same = |d: &Divergence| d.kind == kind;
    let pool = best.pool;
    let attempt = |events: Vec<Event>| async move {
        let r = replay(cluster, direct_url, &events, clients, pool).await;
        (events, r)
    };
    // Whole clients first (a single-client bug drops the rest at once), then chunks of
    // transactions, then single statements.
    let involved: Vec<usize> = {
        let mut c: Vec<usize> = best.events.iter().map(|e| e.client).collect();
        c.sort();
        c.dedup();
        c
    };
    let mut candidates: Vec<Vec<Event>> = vec![best
        .events
        .iter()
        .filter(|e| e.client == best.divergence.client)
        .cloned()
        .collect()];
    for c in involved {
        if c != best.divergence.client {
            candidates.push(
                best.events
                    .iter()
                    .filter(|e| e.client != c)
                    .cloned()
                    .collect(),
            );
        }
    }
    for cand in candidates {
        if started.elapsed() > budget {
            break;
        }
        replays += 1;
        if let (events, Replay::Diverged(at, d)) = attempt(cand).await {
            if same(&d) && events.len() <= best.events.len() {
                best.events = cut(&events, at, &d);
                best.divergence = d;
            }
        }
    }
    let mut chunk = best.events.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < best.events.len() && started.elapsed() < budget {
            let mut cand = best.events.clone();
            let end = (i + chunk).min(cand.len());
            cand.drain(i..end);
            replays += 1;
            match attempt(cand).await {
                (events, Replay::Diverged(at, d)) if same(&d) => {
                    best.events = cut(&events, at, &d);
                    best.divergence = d;
                }
                _ => i += chunk,
            }
        }
        if chunk == 1 || started.elapsed() > budget {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    let mut ei = 0;
    while ei < best.events.len() && started.elapsed() < budget {
        let mut oi = 0;
        while oi < best.events[ei].txn.0.len() {
            let mut cand = best.events.clone();
            cand[ei].txn.0.remove(oi);
            replays += 1;
            match attempt(cand).await {
                (events, Replay::Diverged(at, d)) if same(&d) => {
                    best.events = cut(&events, at, &d);
                    best.divergence = d;
                }
                _ => oi += 1,
            }
            if started.elapsed() > budget {
                break;
            }
        }
        ei += 1;
    }
    best.replays = replays;
    Some(best)
}

/// Events up to the one that diverged, its statements up to the one that differed.
fn cut(events: &[Event], at: usize, d: &Divergence) -> Vec<Event> {
    let mut out: Vec<Event> = events[..=at.min(events.len() - 1)].to_vec();
    if let (Some(last), Some(op)) = (out.last_mut(), d.op_idx) {
        last.txn.0.truncate(op + 1);
    }
    out
}
