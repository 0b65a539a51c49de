//! `/readyz`: ready while every configured database has a reachable, writable primary.
//!
//! A database with replicas is checked in the background by `upstream/health.rs` (started with its
//! topology); this reads what the last round found. A database with only a primary has no
//! background checker, so the same check (`health::check_round`, on its own connection, never
//! a pool's) runs here on demand, at most once per `health_check_interval`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pgtide_config::{Config, DatabaseConfig};

use crate::server::shared::{Phase, Shared};
use crate::upstream::conn::BackendConn;
use crate::upstream::topology::Topology;

/// Right after start the background checker may not have finished its first round.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(super) struct Readiness {
    /// On-demand checks of databases without replicas, by database name.
    probes: tokio::sync::Mutex<HashMap<String, Probe>>,
}

struct Probe {
    topology: Weak<Topology>,
    conns: Vec<Option<BackendConn>>,
    last: Option<Instant>,
}

impl Readiness {
    pub(super) async fn check(&self, shared: &Arc<Shared>) -> Result<(), String> {
        match shared.phase() {
            Phase::Running => {}
            Phase::Draining => return Err("draining: shutting down".into()),
            Phase::Stopping => return Err("stopping".into()),
        }
        let config = shared.config.load_full();
        if config.databases.is_empty() {
            return Err("no databases configured".into());
        }
        let mut problems = Vec::new();
        for db in &config.databases {
            let topology = self.topology(shared, &config, db).await;
            if let Err(e) = primary_reachable(&topology) {
                problems.push(format!("database {}: {e}", db.name));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// `db`'s backends with up-to-date health: checked here when nothing checks them in the
    /// background, else (right after start) given a moment for the first round.
    pub(super) async fn topology(
        &self,
        shared: &Arc<Shared>,
        config: &Config,
        db: &DatabaseConfig,
    ) -> Arc<Topology> {
        let topology = shared.topology(db);
        if topology.has_replicas() {
            let deadline = Instant::now() + FIRST_CHECK_WAIT;
            while !topology.backends[topology.primary()].health().checked
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            self.probe(&db.name, &topology, config).await;
        }
        topology
    }

    async fn probe(&self, name: &str, topology: &Arc<Topology>, config: &Config) {
        let interval = config
            .routing
            .health_check_interval
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let mut probes = self.probes.lock().await;
        // Databases gone after a reload take their connections with them.
        probes.retain(|db, p| db == name || p.topology.strong_count() > 0);
        let probe = probes.entry(name.to_string()).or_insert_with(|| Probe {
            topology: Weak::new(),
            conns: Vec::new(),
            last: None,
        });
        if !probe
            .topology
            .upgrade()
            .is_some_and(|t| Arc::ptr_eq(&t, topology))
        {
            *probe = Probe {
                topology: Arc::downgrade(topology),
                conns: Vec::new(),
                last: None,
            };
        }
        if probe.last.is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        probe.conns.resize_with(topology.backends.len(), || None);
        crate::upstream::health::check_round(topology, config, &mut probe.conns).await;
        probe.last = Some(Instant::now());
    }
}

fn primary_reachable(topology: &Topology) -> Result<(), String> {
    let backend = &topology.backends[topology.primary()];
    let health = backend.health();
    if !health.checked {
        return Err(format!("primary {} not checked yet", backend.label));
    }
    if !health.healthy {
        let reason = health.last_error.as_deref().unwrap_or("failed its checks");
        return Err(format!("primary {} unreachable: {reason}", backend.label));
    }
    if health.in_recovery {
        return Err(format!(
            "{} is in recovery: no writable primary",
            backend.label
        ));
    }
    Ok(())
}
