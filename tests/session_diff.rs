//! Differential session checker (issue 11): 8 clients run seeded scripts of session-state
//! statements concurrently through pgtide in transaction mode over a pool of 2, each in
//! lockstep with its own direct connection to PostgreSQL. Every statement's reply and, after
//! every transaction, everything the client can observe (SHOW ALL, listening channels, held
//! advisory locks, visible temp relations, its prepared statements by name and another
//! client's, current_user/session_user) must be the same both ways. Clients share two
//! backends, so state leaking from one client to another shows up as a difference.
//!
//! The direct side uses its own database (`appdirect`): advisory locks and NOTIFY channels are
//! per database, so a client's twin never blocks on its own lock.
//!
//! Env: `PGTIDE_FUZZ_SEED` (one seed or a comma list), `PGTIDE_FUZZ_TXNS` (transactions per
//! seed, across all clients), `PGTIDE_FUZZ_FEATURES` (e.g. `set,listen`; see gen::ALL_FEATURES),
//! `PGTIDE_FUZZ_SHRINK_SECS` (shrink budget, default 60).

#[path = "support/session_diff/exec.rs"]
mod exec;
#[path = "support/session_diff/gen.rs"]
mod gen;
#[path = "support/session_diff/rng.rs"]
mod rng;
#[path = "support/session_diff/run.rs"]
mod run;
#[path = "support/session_diff/shrink.rs"]
mod shrink;

use std::time::{Duration, Instant};

use pgtide_config::PoolMode;
use pgtide_suite as s;

const CLIENTS: usize = 8;
const SEEDS: &[u64] = &[11, 2026];
const TXNS_PER_SEED: usize = 1200;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse"))
    })
}

const SCHEMA: &str = "CREATE SCHEMA s1 AUTHORIZATION app; CREATE SCHEMA s2 AUTHORIZATION app;
GRANT ALL ON SCHEMA public TO PUBLIC;";

async fn setup() -> (pgtide_devcluster::Cluster, String) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    cluster
        .primary()
        .psql(&format!(
            "CREATE ROLE r1; CREATE ROLE r2; CREATE ROLE r3; GRANT r1, r2, r3 TO {0};
             CREATE DATABASE appdirect OWNER {0};",
            s::APP_USER
        ))
        .expect("roles");
    for db in [s::APP_DB, "appdirect"] {
        // r2 and r3 may not create temp tables: SET ROLE changes what a client can do.
        let sql = format!(
            "{SCHEMA} REVOKE TEMP ON DATABASE {db} FROM PUBLIC; GRANT TEMP ON DATABASE {db} TO {}, r1;",
            s::APP_USER
        );
        cluster.primary().psql_db(db, &sql).expect("schema");
    }
    let direct = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, "appdirect");
    (cluster, direct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_through_pgtide_see_what_a_direct_connection_sees() {
    let seeds: Vec<u64> = match std::env::var("PGTIDE_FUZZ_SEED") {
        Ok(v) => v
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .expect("PGTIDE_FUZZ_SEED: a number or a list")
            })
            .collect(),
        Err(_) => SEEDS.to_vec(),
    };
    let txns: usize = env("PGTIDE_FUZZ_TXNS").unwrap_or(TXNS_PER_SEED);
    let features = std::env::var("PGTIDE_FUZZ_FEATURES")
        .map(|f| rng::Features::parse(&f))
        .unwrap_or_else(|_| rng::Features::all());
    let shrink_budget = Duration::from_secs(env("PGTIDE_FUZZ_SHRINK_SECS").unwrap_or(60));
    let (cluster, direct_url) = setup().await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    // Pinned clients hold backends for a few transactions while the others wait.
    config.pool.checkout_timeout = Duration::from_secs(30);
    let server = s::start(config).await;
    let tide_url = s::app_url(&server);

    let mut total = 0;
    for &seed in &seeds {
        let started = Instant::now();
        let per_client = txns.div_ceil(CLIENTS);
        let scripts: Vec<Vec<gen::Txn>> = (0..CLIENTS)
            .map(|c| gen::script(seed, c, CLIENTS, per_client, &features))
            .collect();
        let result = run::concurrent(&direct_url, &tide_url, scripts).await;
        total += result.txns;
        eprintln!(
            "seed {seed}: {} transactions by {CLIENTS} clients over a pool of 2 in {:?} (features {features:?})",
            result.txns,
            started.elapsed()
        );
        let Some(d) = result.divergence else {
            continue;
        };
        let mut report = format!(
            "DIVERGENCE seed {seed} (PGTIDE_FUZZ_SEED={seed} PGTIDE_FUZZ_TXNS={txns}{}), client {}, txn {}: {}\n{}\n",
            std::env::var("PGTIDE_FUZZ_FEATURES")
                .map(|f| format!(" PGTIDE_FUZZ_FEATURES={f}"))
                .unwrap_or_default(),
            d.client,
            d.txn_idx,
            d.kind,
            d.what
        );
        match shrink::shrink(&cluster, &direct_url, &result.log, &d, CLIENTS, shrink_budget).await {
            Some(m) => report.push_str(&format!(
                "\nminimal script ({} replays, sequential, pool of {} (2: consecutive transactions alternate backends); `\\` lines are protocol messages):\n{}=> client {}: {}\n{}\n",
                m.replays,
                m.pool,
                run::render(&m.events),
                m.divergence.client,
                m.divergence.kind,
                m.divergence.what
            )),
            None => report.push_str(&format!(
                "\nnot reproduced by a sequential replay (timing-dependent); the {} transactions up to it:\n{}",
                result.log.len(),
                run::render(&result.log)
            )),
        }
        server.shutdown(s::Shutdown::Immediate).await;
        panic!("{report}");
    }
    eprintln!("{total} transactions, no divergence");
    assert!(
        total >= txns * seeds.len() * 9 / 10,
        "too few transactions ran: {total}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
