//! `/metrics`: the `metrics` crate's Prometheus recorder, installed once per process (a
//! recorder is process-global by the crate's design), rendered from its handle after the
//! gauges that are read from state (clients, backend connections) are refreshed.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics_names as m;
use crate::server::shared::Shared;
use crate::upstream::pool::lock;

/// Query latencies: sub-millisecond cache hits up to half-minute reports.
const QUERY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Waits for a backend: usually none at all, up to checkout_timeout (seconds).
const POOL_WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder handle; the first server to serve HTTP installs it.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// One HTTP server's view of the exporter: the shared handle, and the backend-connection
/// label sets it set last time (a pool gone since is set to 0 instead of staying stale).
pub(super) struct Exporter {
    handle: PrometheusHandle,
    backend_series: Mutex<HashSet<(String, String)>>,
    upkeep: tokio::task::JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.upkeep.abort();
    }
}

/// Installs the process's recorder now (idempotent), so handles taken right after (pools,
/// sessions) record into it.
pub(crate) fn install_recorder() {
    HANDLE.get_or_init(build_and_install);
}

impl Exporter {
    pub(super) fn install() -> Exporter {
        let handle = HANDLE.get_or_init(build_and_install).clone();
        // Histograms keep raw samples until upkeep (or a render) folds them into buckets.
        let upkeep = {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            })
        };
        Exporter {
            handle,
            backend_series: Mutex::new(HashSet::new()),
            upkeep,
        }
    }

    /// Refreshes the state-derived gauges, then renders every series as Prometheus text.
    pub(super) fn render(&self, shared: &Shared) -> String {
        self.refresh(shared);
        self.handle.render()
    }

    fn refresh(&self, shared: &Shared) {
        let clients = shared.clients.load(std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!(m::CLIENT_CONNECTIONS).set(clients as f64);
        // Pools are per (database, user, backend); the series are per (database, backend).
        let mut by_backend: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for pool in shared.pools.all() {
            let stats = pool.stats();
            let entry = by_backend
                .entry((pool.database.clone(), pool.target.label()))
                .or_default();
            entry.0 += stats.idle;
            entry.1 += stats.in_use;
        }
        let mut previous = lock(&self.backend_series);
        for key in previous.iter() {
            if !by_backend.contains_key(key) {
                set_backend_connections(key, 0, 0);
            }
        }
        for (key, (idle, in_use)) in &by_backend {
            set_backend_connections(key, *idle, *in_use);
        }
        *previous = by_backend.into_keys().collect();
    }
}

fn set_backend_connections((db, backend): &(String, String), idle: usize, in_use: usize) {
    for (state, n) in [("idle", idle), ("in_use", in_use)] {
        metrics::gauge!(
            m::BACKEND_CONNECTIONS,
            "db" => db.clone(),
            "backend" => backend.clone(),
            "state" => state
        )
        .set(n as f64);
    }
}

fn build_and_install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::QUERY_DURATION_SECONDS.into()),
            QUERY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::POOL_WAIT_SECONDS.into()),
                POOL_WAIT_BUCKETS,
            )
        });
    let recorder = match builder {
        Ok(b) => b.build_recorder(),
        // Only an empty bucket list is refused; the lists above are not empty.
        Err(e) => {
            tracing::warn!(error = %e, "histogram buckets refused; exporting summaries");
            PrometheusBuilder::new().build_recorder()
        }
    };
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
    } else {
        describe();
    }
    handle
}

/// HELP lines for the series of docs/reference/metrics.md.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(m::CLIENT_CONNECTIONS, "Client connections open to pgtide.");
    describe_gauge!(
        m::BACKEND_CONNECTIONS,
        "Backend connections by database, backend and state (idle, in_use)."
    );
    describe_counter!(m::QUERIES_TOTAL, "Statements run, by database and route.");
    describe_histogram!(
        m::QUERY_DURATION_SECONDS,
        Unit::Seconds,
        "Statement latency as pgtide saw it, by route."
    );
    describe_histogram!(
        m::POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time a client waited for a backend connection."
    );
    describe_gauge!(
        m::BACKEND_HEALTHY,
        "1 when the backend passes its health checks."
    );
    describe_gauge!(
        m::REPLICA_LAG_SECONDS,
        Unit::Seconds,
        "How far a replica is behind its primary."
    );
    describe_counter!(
        m::CLIENT_ERRORS_TOTAL,
        "Clients refused before their session started, by SQLSTATE."
    );
    describe_counter!(
        m::SLOW_QUERIES_TOTAL,
        "Statements slower than insights.slow_query_threshold."
    );
    describe_counter!(m::N_PLUS_ONE_TOTAL, "N+1 patterns reported.");
    describe_counter!(
        m::CACHE_HITS_TOTAL,
        "Statements answered from the result cache."
    );
    describe_counter!(
        m::CACHE_MISSES_TOTAL,
        "Cacheable statements that went to a backend."
    );
    describe_gauge!(
        m::CACHE_BYTES,
        Unit::Bytes,
        "Memory held by the result cache."
    );
}
