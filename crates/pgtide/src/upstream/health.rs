//! Background health checks of every backend of a database, on `health_check_interval`: one
//! kept connection per backend runs `pg_is_in_recovery()` and the WAL positions; a backend is
//! out after `unhealthy_after` failed checks and back after one that passes. Routing reads
//! what the last round found and never checks at checkout.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pgtide_config::{BackendUrl, Config, Secret};

use crate::metrics_names as m;
use crate::upstream::conn::{BackendConn, BackendTarget};
use crate::upstream::tls::BackendTls;
use crate::upstream::topology::{parse_lsn, Backend, Health, Topology};

const CHECK_SQL: &str = "SELECT pg_is_in_recovery()::text, \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, \
     COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::text";

/// Runs the checks of `topology` until it is dropped (a reload replaced it) or `config`
/// says otherwise; `config` is read each round so reloads of the interval apply.
pub(crate) fn spawn(topology: &Arc<Topology>, config: impl Fn() -> Arc<Config> + Send + 'static) {
    let weak: Weak<Topology> = Arc::downgrade(topology);
    tokio::spawn(async move {
        let mut conns: Vec<Option<BackendConn>> = Vec::new();
        loop {
            let Some(topology) = weak.upgrade() else {
                return;
            };
            let config = config();
            conns.resize_with(topology.backends.len(), || None);
            check_round(&topology, &config, &mut conns).await;
            let interval = config.routing.health_check_interval;
            drop(topology);
            tokio::time::sleep(interval).await;
        }
    });
}

/// One round: every backend checked concurrently, then lag computed against the primary's
/// WAL position of the same round.
pub(crate) async fn check_round(
    topology: &Topology,
    config: &Config,
    conns: &mut [Option<BackendConn>],
) {
    let tls = config
        .database(&topology.database)
        .map(BackendTls::of)
        .unwrap_or_default();
    let checks = topology
        .backends
        .iter()
        .zip(conns.iter_mut())
        .map(|(backend, conn)| {
            let timeout = check_timeout(config, backend.health().checked);
            check_one(backend, config, &tls, conn, timeout)
        });
    let results = futures_util::future::join_all(checks).await;
    let primary_lsn = topology
        .backends
        .iter()
        .zip(&results)
        .find_map(|(_, r)| match r {
            Ok(p) if !p.in_recovery => p.lsn,
            _ => None,
        });
    for (backend, result) in topology.backends.iter().zip(results) {
        let mut health = backend.health();
        health.checked = true;
        health.checked_at = Some(Instant::now());
        match result {
            Ok(probe) => {
                health.healthy = true;
                health.failures = 0;
                health.in_recovery = probe.in_recovery;
                health.lsn = probe.lsn;
                health.last_error = None;
                health.lag = Some(if !probe.in_recovery {
                    Duration::ZERO
                } else {
                    match (probe.lsn, primary_lsn) {
                        // Replayed everything the primary has written: no lag, however long
                        // ago the last transaction was.
                        (Some(replayed), Some(written)) if replayed >= written => Duration::ZERO,
                        _ => probe.replay_age,
                    }
                });
            }
            Err(reason) => {
                health.failures = health.failures.saturating_add(1);
                if health.failures >= config.routing.unhealthy_after.max(1) {
                    if health.healthy {
                        tracing::warn!(backend = %backend.label, %reason, "backend out of rotation");
                    }
                    health.healthy = false;
                }
                health.last_error = Some(reason);
            }
        }
        let labels = [("backend", backend.label.clone())];
        metrics::gauge!(m::BACKEND_HEALTHY, &labels).set(if health.healthy { 1.0 } else { 0.0 });
        if let Some(lag) = health.lag {
            metrics::gauge!(m::REPLICA_LAG_SECONDS, &labels).set(lag.as_secs_f64());
        }
        backend.set_health(health);
    }
    topology.recheck_primary();
    topology.first_round_done();
}

/// How long one check (connect and query) may take: a round ends within it. A backend never
/// checked before gets as long as a pool takes to connect (a slow first login must not leave a
/// healthy replica out until a later round); the first round ends within that.
pub(crate) fn check_timeout(config: &Config, checked_before: bool) -> Duration {
    let round = config
        .routing
        .health_check_interval
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    if checked_before {
        round
    } else {
        round.max(crate::server::shared::pool_settings(config).connect_timeout)
    }
}

struct Probe {
    in_recovery: bool,
    lsn: Option<u64>,
    replay_age: Duration,
}

async fn check_one(
    backend: &Backend,
    config: &Config,
    tls: &BackendTls,
    conn: &mut Option<BackendConn>,
    timeout: Duration,
) -> Result<Probe, String> {
    let outcome = tokio::time::timeout(timeout, async {
        if conn.is_none() {
            let target = Arc::new(check_target(&backend.url, config, tls)?);
            let c = BackendConn::connect(
                target,
                &[("application_name", "pgtide health check")],
                timeout,
                1,
            )
            .await
            .map_err(|e| e.to_string())?;
            *conn = Some(c);
        }
        let c = conn.as_mut().ok_or("no connection")?;
        c.query_row(CHECK_SQL).await.map_err(|e| e.to_string())
    })
    .await;
    let row = match outcome {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e);
        }
        Err(_) => {
            *conn = None;
            return Err(format!("no answer within {timeout:?}"));
        }
    };
    let text = |i: usize| row.get(i).cloned().flatten();
    Ok(Probe {
        in_recovery: text(0).as_deref() == Some("true"),
        lsn: text(1).as_deref().and_then(parse_lsn),
        replay_age: text(2)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_default(),
    })
}

/// Health checks log in with the backend URL's credentials, else as the first configured
/// user with a plain-text password.
fn check_target(
    url: &BackendUrl,
    config: &Config,
    tls: &BackendTls,
) -> Result<BackendTarget, String> {
    let (user, password) = match &url.user {
        Some(u) => (u.clone(), url.password.clone()),
        None => config
            .effective_users()
            .into_iter()
            .find_map(|u| match u.secret() {
                Secret::Plain(p) => Some((u.name.clone(), Some(p))),
                _ => None,
            })
            .ok_or("no credentials for health checks (give the backend URL a user)")?,
    };
    Ok(BackendTarget {
        host: url.host.clone(),
        port: url.port,
        user,
        password,
        database: url.dbname.clone().unwrap_or_else(|| "postgres".into()),
        tls: tls.clone(),
        pass_through: None,
    })
}

impl Health {
    /// For logs and the admin console: up, in recovery, lag.
    pub fn summary(&self) -> String {
        if !self.checked {
            return "unchecked".into();
        }
        if !self.healthy {
            return format!(
                "down ({})",
                self.last_error.as_deref().unwrap_or("no answer")
            );
        }
        let role = if self.in_recovery {
            "replica"
        } else {
            "primary"
        };
        format!("{role}, lag {:?}", self.lag.unwrap_or_default())
    }
}
