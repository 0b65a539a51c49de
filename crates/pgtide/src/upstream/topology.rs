//! The backends of one database — its primary and its replicas — with what the background
//! health checks last saw of each (up, in recovery, replayed WAL position, lag), and the
//! choice of a replica for a read: smooth weighted round-robin over the healthy replicas that
//! are close enough and, for read-your-writes, have replayed far enough.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgtide_config::{BackendUrl, DatabaseConfig, PrimaryReads};
use tokio::sync::watch;

use crate::upstream::pool::lock;

/// What the last health checks found about one backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// At least one check has finished.
    pub checked: bool,
    pub healthy: bool,
    /// Consecutive failed checks.
    pub failures: u32,
    pub in_recovery: bool,
    /// WAL replayed (replica) or written (primary), as a byte position.
    pub lsn: Option<u64>,
    /// How far behind the primary a replica is.
    pub lag: Option<Duration>,
    pub last_error: Option<String>,
    pub checked_at: Option<Instant>,
}

#[derive(Debug)]
pub struct Backend {
    /// Position in [`Topology::backends`]; 0 is the configured primary.
    pub index: usize,
    /// host:port, for logs, metrics and the admin console.
    pub label: String,
    pub url: BackendUrl,
    pub weight: u32,
    health: Mutex<Health>,
    /// Reads routed here, for the share of reads the admin console shows.
    pub reads: AtomicU64,
}

impl Backend {
    pub fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    pub fn set_health(&self, health: Health) {
        *lock(&self.health) = health;
    }
}

/// Which reads may go where, for one decision.
#[derive(Debug, Clone, Copy)]
pub struct ReadPolicy {
    pub max_lag: Duration,
    /// Read-your-writes: only replicas that replayed at least this far.
    pub min_lsn: Option<u64>,
    pub primary_reads: PrimaryReads,
}

#[derive(Debug)]
pub struct Topology {
    pub database: String,
    pub backends: Vec<Arc<Backend>>,
    /// The backend writes go to: the configured primary until another backend is found
    /// promoted (not in recovery) while it is not.
    primary: AtomicUsize,
    /// Smooth weighted round-robin state: each backend's current weight.
    wrr: Mutex<Vec<i64>>,
    /// True once a first round of health checks has finished: before it no replica is known
    /// to be usable, and reads wait for it (bounded) instead of going to the primary.
    first_round: watch::Sender<bool>,
}

impl Topology {
    pub fn new(db: &DatabaseConfig) -> Arc<Topology> {
        let mut backends = vec![Arc::new(Backend {
            index: 0,
            label: url_label(&db.primary),
            url: db.primary.clone(),
            weight: 1,
            health: Mutex::new(Health::default()),
            reads: AtomicU64::new(0),
        })];
        for (i, r) in db.replicas.iter().enumerate() {
            backends.push(Arc::new(Backend {
                index: i + 1,
                label: url_label(&r.url),
                url: r.url.clone(),
                weight: r.weight.max(1),
                health: Mutex::new(Health::default()),
                reads: AtomicU64::new(0),
            }));
        }
        let n = backends.len();
        Arc::new(Topology {
            database: db.name.clone(),
            backends,
            primary: AtomicUsize::new(0),
            wrr: Mutex::new(vec![0; n]),
            first_round: watch::channel(false).0,
        })
    }

    /// Whether this topology was built from the same backends as `db` (reloads keep it).
    pub fn matches(&self, db: &DatabaseConfig) -> bool {
        let configured: Vec<(&BackendUrl, u32)> = std::iter::once((&db.primary, 1))
            .chain(db.replicas.iter().map(|r| (&r.url, r.weight.max(1))))
            .collect();
        configured.len() == self.backends.len()
            && configured
                .iter()
                .zip(&self.backends)
                .all(|((url, w), b)| **url == b.url && *w == b.weight)
    }

    /// A round of health checks has finished.
    pub fn first_round_done(&self) {
        self.first_round.send_replace(true);
    }

    /// Whether a round of health checks has finished.
    pub fn checked_once(&self) -> bool {
        *self.first_round.borrow()
    }

    /// Waits up to `limit` for the first round of health checks; whether it finished.
    pub async fn first_round(&self, limit: Duration) -> bool {
        let mut rx = self.first_round.subscribe();
        let done = tokio::time::timeout(limit, rx.wait_for(|done| *done)).await;
        matches!(done, Ok(Ok(_)))
    }

    pub fn has_replicas(&self) -> bool {
        self.backends.len() > 1
    }

    /// The backend writes go to now.
    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Relaxed)
    }

    /// After a round of health checks: the configured primary keeps writes unless it is down
    /// or in recovery while another backend is up and out of recovery (it was promoted).
    pub fn recheck_primary(&self) {
        let current = self.primary();
        let is_primary = |b: &Backend| {
            let h = b.health();
            h.checked && h.healthy && !h.in_recovery
        };
        if self.backends.get(current).is_some_and(|b| is_primary(b)) {
            return;
        }
        if let Some(b) = self.backends.iter().find(|b| is_primary(b)) {
            tracing::warn!(
                database = %self.database,
                from = %self.backends[current].label,
                to = %b.label,
                "writes follow the new primary"
            );
            self.primary.store(b.index, Ordering::Relaxed);
        }
    }

    /// The backend for a read: a replica by smooth weighted round-robin among those healthy,
    /// in recovery, within max_lag and (read-your-writes) past min_lsn; the primary too when
    /// primary_reads = always. None means: no replica may take it (the caller applies
    /// primary_reads fallback/never).
    pub fn choose_for_read(&self, policy: &ReadPolicy) -> Option<usize> {
        let primary = self.primary();
        let eligible: Vec<(usize, i64)> = self
            .backends
            .iter()
            .filter_map(|b| {
                if b.index == primary {
                    return (policy.primary_reads == PrimaryReads::Always)
                        .then_some((b.index, i64::from(b.weight)));
                }
                let h = b.health();
                let fresh = h.lag.is_some_and(|lag| lag <= policy.max_lag);
                let caught_up = match policy.min_lsn {
                    Some(min) => h.lsn.is_some_and(|lsn| lsn >= min),
                    None => true,
                };
                (h.checked && h.healthy && h.in_recovery && fresh && caught_up)
                    .then_some((b.index, i64::from(b.weight)))
            })
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let total: i64 = eligible.iter().map(|(_, w)| w).sum();
        let mut current = lock(&self.wrr);
        let mut best: Option<usize> = None;
        for &(i, w) in &eligible {
            current[i] += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        current[chosen] -= total;
        drop(current);
        self.backends[chosen].reads.fetch_add(1, Ordering::Relaxed);
        Some(chosen)
    }

    /// A read went to the primary (fallback or policy): counted for the share of reads.
    pub fn note_primary_read(&self) {
        self.backends[self.primary()]
            .reads
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn url_label(url: &BackendUrl) -> String {
    if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    }
}

/// Parses PostgreSQL's `XXXXXXXX/YYYYYYYY` WAL position.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some((hi << 32) | lo)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pgtide_config::ReplicaConfig;

    pub(crate) fn healthy_topology(weights: &[u32]) -> Arc<Topology> {
        let url = |port: u16| {
            BackendUrl::parse(&format!("postgres://u:p@127.0.0.1:{port}/db")).expect("url")
        };
        let mut db = DatabaseConfig::new("db", url(5432));
        for (i, w) in weights.iter().enumerate() {
            db.replicas.push(ReplicaConfig {
                url: url(5433 + i as u16),
                weight: *w,
            });
        }
        let t = Topology::new(&db);
        for b in &t.backends {
            b.set_health(Health {
                checked: true,
                healthy: true,
                in_recovery: b.index != 0,
                lsn: Some(100),
                lag: Some(Duration::ZERO),
                ..Default::default()
            });
        }
        t
    }

    fn topology(weights: &[u32]) -> Arc<Topology> {
        healthy_topology(weights)
    }

    fn policy() -> ReadPolicy {
        ReadPolicy {
            max_lag: Duration::from_secs(5),
            min_lsn: None,
            primary_reads: PrimaryReads::Fallback,
        }
    }

    #[test]
    fn smooth_weighted_round_robin_follows_the_weights() {
        let t = topology(&[3, 1]);
        let picks: Vec<usize> = (0..8)
            .map(|_| t.choose_for_read(&policy()).expect("a replica"))
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 6);
        assert_eq!(picks.iter().filter(|&&i| i == 2).count(), 2);
        // Smooth: the light replica is not starved into a burst at the end.
        assert!(picks[..4].contains(&2), "{picks:?}");
    }

    #[test]
    fn unhealthy_lagging_or_behind_replicas_are_skipped() {
        let t = topology(&[1, 1]);
        let mut h = t.backends[1].health();
        h.healthy = false;
        t.backends[1].set_health(h);
        assert_eq!(t.choose_for_read(&policy()), Some(2));
        let mut h = t.backends[2].health();
        h.lag = Some(Duration::from_secs(60));
        t.backends[2].set_health(h);
        assert_eq!(t.choose_for_read(&policy()), None, "too far behind");
        let mut h = t.backends[2].health();
        h.lag = Some(Duration::ZERO);
        t.backends[2].set_health(h);
        let ryw = ReadPolicy {
            min_lsn: Some(101),
            ..policy()
        };
        assert_eq!(t.choose_for_read(&ryw), None, "not replayed past the write");
        let always = ReadPolicy {
            primary_reads: PrimaryReads::Always,
            ..ryw
        };
        assert_eq!(t.choose_for_read(&always), Some(0));
    }

    #[test]
    fn writes_follow_a_promoted_replica() {
        let t = topology(&[1]);
        t.recheck_primary();
        assert_eq!(t.primary(), 0);
        let mut h = t.backends[0].health();
        h.healthy = false;
        t.backends[0].set_health(h);
        let mut h = t.backends[1].health();
        h.in_recovery = false;
        t.backends[1].set_health(h);
        t.recheck_primary();
        assert_eq!(t.primary(), 1);
    }

    #[test]
    fn lsn_text() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("garbage"), None);
    }
}
