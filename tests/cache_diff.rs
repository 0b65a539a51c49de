//! The differential cache checker (issue 11, "Must show"): random reads — simple, extended
//! unnamed (`query_typed`) and named (`prepare` + `query`), with literals and parameters,
//! under random per-client settings (timezone, DateStyle, IntervalStyle, extra_float_digits,
//! bytea_output, a custom setting read by row-level security, SET ROLE), through views —
//! interleaved with writes through pgtide and behind its back, across two pgtide instances
//! sharing one cluster (invalidation travels by NOTIFY) with a replica that applies WAL late.
//!
//! Every answer the cache gives (a hit: the instance's hit counter moved) is compared with what
//! the primary returns right after for a direct connection in the same state (same settings,
//! same role). Zero wrong answers; the only stale hits allowed are reads of a table written
//! behind pgtide's back within the rule's TTL (plus the replica's apply delay: a replica fill
//! may be stored that late), counted and printed. Misses that ran on the lagging replica may
//! be behind too (routing, not the cache): counted.
//!
//! Sequential on purpose: after a write through one instance the checker waits until the
//! other has received its NOTIFY (the documented contract), so every difference is a finding.
//! `PGTIDE_FUZZ_SEED` (one seed) and `PGTIDE_FUZZ_OPS` (operations per seed) for long runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgtide_config::{CacheRule, PoolMode};
use pgtide_devcluster::ClusterOptions;
use pgtide_suite as s;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

const TTL: Duration = Duration::from_secs(5);
const APPLY_DELAY: Duration = Duration::from_millis(300);
const CLIENTS: usize = 4;

const SCHEMA: &str = "
    CREATE TABLE acct (id int PRIMARY KEY, balance int, tag bytea);
    INSERT INTO acct SELECT i, i * 100, decode(md5(i::text), 'hex') FROM generate_series(1, 8) i;
    CREATE VIEW acct_rich AS SELECT id, balance FROM acct WHERE balance > 300;
    CREATE VIEW acct_richer AS SELECT id FROM acct_rich WHERE balance > 600;
    CREATE TABLE docs (tenant text, body text);
    INSERT INTO docs VALUES ('a', 'a1'), ('a', 'a2'), ('b', 'b1');
    ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY by_tenant ON docs USING (tenant = current_setting('app.tenant', true)
        OR current_setting('app.tenant', true) = 'all');
    CREATE TABLE events (id int PRIMARY KEY, at timestamptz, day date);
    INSERT INTO events SELECT i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '7 hours',
        '2024-03-01'::date + i FROM generate_series(1, 4) i;
    CREATE ROLE reader NOLOGIN;
    GRANT reader TO app;
    GRANT SELECT ON acct, acct_rich, acct_richer, events TO reader;
    GRANT ALL ON acct, acct_rich, acct_richer, docs, events TO app;";

/// Small deterministic generator (splitmix64): no dependency, same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

/// The settings a client may change, with their values (`None`: RESET).
const SETTINGS: &[(&str, &[&str])] = &[
    ("timezone", &["'UTC'", "'Asia/Tokyo'", "'America/New_York'"]),
    ("DateStyle", &["'ISO, MDY'", "'German, DMY'", "'SQL, DMY'"]),
    ("IntervalStyle", &["postgres", "iso_8601", "sql_standard"]),
    ("extra_float_digits", &["0", "1", "3"]),
    ("bytea_output", &["hex", "escape"]),
    ("app.tenant", &["'a'", "'b'"]),
    ("ROLE", &["reader", "NONE"]),
];

/// A read: its SQL with literals, its form with one `$1` int4 parameter and that value, and
/// the tables it depends on (views' base tables included).
struct Read {
    literal: String,
    param: (String, i32),
    tables: &'static [&'static str],
}

fn random_read(rng: &mut Rng) -> Read {
    // Small domains: keys repeat within the TTL, so a good share of reads are hits.
    let i = 1 + rng.below(3) as i32;
    let n = 1 + rng.below(2) as i32;
    let (literal, param, tables): (String, String, &'static [&'static str]) = match rng.below(8) {
        0 => (
            format!("SELECT id::text, balance::text FROM acct WHERE id = {i}"),
            "SELECT id::text, balance::text FROM acct WHERE id = $1".into(),
            &["acct"],
        ),
        1 => (
            format!("SELECT id::text FROM acct ORDER BY id LIMIT {n}"),
            "SELECT id::text FROM acct ORDER BY id LIMIT $1".into(),
            &["acct"],
        ),
        2 => (
            format!("SELECT id::text FROM acct WHERE id IN ({i}, {}) ORDER BY id", i % 8 + 1),
            "SELECT id::text FROM acct WHERE id IN ($1, 3, 5) ORDER BY id".into(),
            &["acct"],
        ),
        3 => (
            format!("SELECT id::text, balance::text FROM acct_rich WHERE id >= {i} ORDER BY id"),
            "SELECT id::text FROM acct_richer WHERE id >= $1 ORDER BY id".into(),
            &["acct"],
        ),
        4 => (
            format!("SELECT body FROM docs WHERE length(body) >= {} ORDER BY body", n % 3),
            "SELECT body FROM docs WHERE length(body) >= $1 ORDER BY body".into(),
            &["docs"],
        ),
        5 => (
            format!("SELECT at::text, day::text, (at - '2024-01-01'::timestamptz)::text FROM events WHERE id = {}", 1 + i % 4),
            "SELECT at::text, day::text FROM events WHERE id = $1".into(),
            &["events"],
        ),
        6 => (
            format!("SELECT (balance / 7.0::float8)::text, tag::text FROM acct WHERE id = {i}"),
            "SELECT (balance / 3.0::float8)::text, tag::text FROM acct WHERE id = $1".into(),
            &["acct"],
        ),
        _ => (
            format!("SELECT count(*)::text FROM acct_richer WHERE id > {i}"),
            "SELECT count(*)::text FROM acct WHERE balance > $1 * 100".into(),
            &["acct"],
        ),
    };
    let value = if param.contains("LIMIT") {
        n
    } else if tables == ["docs"] {
        n % 3
    } else {
        i
    };
    Read {
        literal,
        param: (param, value),
        tables,
    }
}

type Answer = Result<Vec<Vec<Option<String>>>, String>;

fn sqlstate(e: tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.code().code().to_string())
}

async fn simple(c: &Client, sql: &str) -> Answer {
    let msgs = c.simple_query(sql).await.map_err(sqlstate)?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

fn texts(rows: Vec<tokio_postgres::Row>) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

/// How a read is sent.
#[derive(Debug, Clone, Copy)]
enum Form {
    Simple,
    Unnamed,
    Named,
}

async fn run_read(c: &Client, form: Form, read: &Read) -> Answer {
    let (sql, v) = (&read.param.0, read.param.1);
    match form {
        Form::Simple => simple(c, &read.literal).await,
        Form::Unnamed => c
            .query_typed(sql, &[(&v, Type::INT4)])
            .await
            .map(texts)
            .map_err(sqlstate),
        Form::Named => {
            let st = c
                .prepare_typed(sql, &[Type::INT4])
                .await
                .map_err(sqlstate)?;
            c.query(&st, &[&v]).await.map(texts).map_err(sqlstate)
        }
    }
}

struct Tally {
    reads: u64,
    hits: u64,
    /// Hits by form: simple, unnamed, named.
    by_form: [u64; 3],
    wrong: Vec<String>,
    stale_behind_back: u64,
    stale_misses: u64,
    writes: u64,
    behind_back: u64,
    /// Table -> last write behind pgtide's back (kept across seeds: entries are too).
    behind: HashMap<&'static str, Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_match_the_primary() {
    let seeds: Vec<u64> = match std::env::var("PGTIDE_FUZZ_SEED") {
        Ok(s) => vec![s.parse().expect("PGTIDE_FUZZ_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    };
    let ops: usize = std::env::var("PGTIDE_FUZZ_OPS")
        .ok()
        .map(|s| s.parse().expect("PGTIDE_FUZZ_OPS is a number"))
        .unwrap_or(2000);
    let cluster = tokio::task::spawn_blocking(|| {
        s::cluster_with(ClusterOptions {
            replicas: 1,
            settings: vec![(
                "recovery_min_apply_delay".into(),
                format!("{}ms", APPLY_DELAY.as_millis()),
            )],
            ..Default::default()
        })
    })
    .await
    .expect("cluster task");
    cluster
        .primary()
        .psql_db(s::APP_DB, SCHEMA)
        .expect("schema");
    let replica = cluster.replicas()[0].url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    assert!(
        s::eventually(Duration::from_secs(30), || async {
            match s::connect(&replica).await {
                Ok(c) => c.simple_query("SELECT 1 FROM events").await.is_ok(),
                Err(_) => false,
            }
        })
        .await,
        "the replica never got the schema"
    );
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 3, &[1]);
        config.routing.max_replica_lag = Duration::from_secs(30);
        config.cache.rules = vec![CacheRule {
            tables: Some(
                ["acct", "acct_rich", "acct_richer", "docs", "events"]
                    .map(String::from)
                    .to_vec(),
            ),
            ttl: Some(TTL),
            ..CacheRule::default()
        }];
        let server = s::start(config).await;
        s::cache_ready(&server).await;
        servers.push(server);
    }
    let direct_url = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    let started = Instant::now();
    let mut tally = Tally {
        reads: 0,
        hits: 0,
        by_form: [0; 3],
        wrong: Vec::new(),
        stale_behind_back: 0,
        stale_misses: 0,
        writes: 0,
        behind_back: 0,
        behind: HashMap::new(),
    };
    for seed in seeds {
        run_seed(seed, ops, &servers, &direct_url, &mut tally).await;
    }
    let share = tally.hits as f64 / tally.reads.max(1) as f64;
    eprintln!(
        "cache_diff: {} reads, {} hits ({:.0}%; simple/unnamed/named {:?}), {} wrong, {} stale hits after writes behind pgtide's back (allowed), \
         {} misses behind the primary (lagging replica), {} writes through pgtide, {} behind its back, in {:?}",
        tally.reads,
        tally.hits,
        share * 100.0,
        tally.by_form,
        tally.wrong.len(),
        tally.stale_behind_back,
        tally.stale_misses,
        tally.writes,
        tally.behind_back,
        started.elapsed()
    );
    assert!(
        tally.wrong.is_empty(),
        "wrong cached answers:\n{}",
        tally.wrong.join("\n")
    );
    assert!(share >= 0.2, "too few hits to prove anything: {share:.2}");
    assert!(
        tally.by_form.iter().all(|&h| h > 0),
        "a protocol form never hit: {:?}",
        tally.by_form
    );
    for server in servers {
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

async fn run_seed(
    seed: u64,
    ops: usize,
    servers: &[s::ServerHandle],
    direct_url: &str,
    tally: &mut Tally,
) {
    let mut rng = Rng(seed);
    let mut via = Vec::new();
    let mut direct = Vec::new();
    let mut settings: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    for i in 0..CLIENTS {
        via.push(
            s::connect(&s::app_url(&servers[i % 2]))
                .await
                .expect("via pgtide"),
        );
        direct.push(s::connect(direct_url).await.expect("direct"));
    }
    // Writers see every tenant's documents (the policy lets app.tenant = 'all' through).
    let all = "?options=-capp.tenant%3Dall";
    let writers = [
        s::connect(&format!("{}{all}", s::app_url(&servers[0])))
            .await
            .expect("writer 0"),
        s::connect(&format!("{}{all}", s::app_url(&servers[1])))
            .await
            .expect("writer 1"),
    ];
    let outsider = s::connect(&format!("{direct_url}{all}"))
        .await
        .expect("outsider");
    let mut log: Vec<String> = Vec::new();
    for op in 0..ops {
        // Per mille: settings 0.8%, writes through pgtide 0.6%, behind its back 0.3% (a replica
        // fill is kept only once the replica has replayed the last write to its tables).
        let roll = rng.below(1000);
        if roll < 8 {
            // A setting, on both connections of a client.
            let c = rng.below(CLIENTS);
            let (name, values) = SETTINGS[rng.below(SETTINGS.len())];
            let value = rng.pick(values);
            let sql = format!("SET {name} = {value}").replace("ROLE = ", "ROLE ");
            via[c]
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            direct[c]
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            settings[c].push(sql.clone());
            log.push(format!("client {c}: {sql}"));
        } else if roll < 14 {
            let (sql, table) = random_write(&mut rng);
            let w = rng.below(2);
            let before = servers[w].shared.cache.listener_status().published;
            writers[w]
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            tally.writes += 1;
            log.push(format!("write via {w}: {sql}"));
            // The documented contract: the other instance drops its entries once the NOTIFY
            // arrives. Wait for it so that every later difference is a finding.
            let other = &servers[1 - w];
            let delivered = s::eventually(Duration::from_secs(10), || async {
                let published = servers[w].shared.cache.listener_status().published;
                published > before
                    && other.shared.cache.listener_status().received >= total_sent(servers, w)
            })
            .await;
            assert!(
                delivered,
                "seed {seed} op {op}: the invalidation of {table} never reached the other instance"
            );
        } else if roll < 17 {
            let (sql, table) = random_write(&mut rng);
            outsider
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            tally.behind.insert(table, Instant::now());
            tally.behind_back += 1;
            log.push(format!("behind pgtide's back: {sql}"));
        } else {
            let c = rng.below(CLIENTS);
            let form = [Form::Simple, Form::Unnamed, Form::Named][rng.below(3)];
            let read = random_read(&mut rng);
            let server = &servers[c % 2];
            let hits_before = server.shared.cache.totals().hits;
            let got = run_read(&via[c], form, &read).await;
            let hit = server.shared.cache.totals().hits > hits_before;
            let want = run_read(&direct[c], form, &read).await;
            tally.reads += 1;
            tally.hits += u64::from(hit);
            tally.by_form[form as usize] += u64::from(hit);
            let text = match form {
                Form::Simple => read.literal.clone(),
                _ => format!("{} [$1 = {}]", read.param.0, read.param.1),
            };
            log.push(format!(
                "client {c} {form:?}{}: {text}",
                if hit { " (hit)" } else { "" }
            ));
            if got == want {
                continue;
            }
            let window = TTL + APPLY_DELAY + Duration::from_secs(1);
            let excused = read
                .tables
                .iter()
                .any(|t| tally.behind.get(t).is_some_and(|at| at.elapsed() < window));
            if !hit {
                tally.stale_misses += 1;
            } else if excused {
                tally.stale_behind_back += 1;
            } else {
                let tail = log[log.len().saturating_sub(25)..].join("\n  ");
                tally.wrong.push(format!(
                    "seed {seed} op {op}: client {c} (settings {:?}) {text}\n  pgtide: {got:?}\n  primary: {want:?}\n  last operations:\n  {tail}",
                    settings[c]
                ));
            }
        }
    }
}

/// Payloads the instance `w` has published so far (what the other must have received).
fn total_sent(servers: &[s::ServerHandle], w: usize) -> u64 {
    servers[w].shared.cache.listener_status().published
}

fn random_write(rng: &mut Rng) -> (String, &'static str) {
    let i = 1 + rng.below(8);
    let v = rng.below(10) * 100;
    match rng.below(4) {
        0 | 1 => (
            format!("UPDATE acct SET balance = {v} WHERE id = {i}"),
            "acct",
        ),
        2 => {
            let t = rng.pick(&["a", "b"]);
            (
                format!("UPDATE docs SET body = '{t}{v}' WHERE tenant = '{t}' AND body < '{t}5'"),
                "docs",
            )
        }
        _ => (
            format!(
                "UPDATE events SET at = at + interval '{} minutes' WHERE id = {}",
                v / 10,
                1 + i % 4
            ),
            "events",
        ),
    }
}
