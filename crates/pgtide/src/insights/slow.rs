//! The slow-query log: statements above `slow_query_threshold` go to a bounded ring (SHOW
//! SLOW_QUERIES) and, rate-limited, to the log as a structured warning. The warning carries the
//! fingerprint, never the statement text (literals can be personal data); the text is logged at
//! debug level, and only with `insights.sample_literals`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::fingerprints::Fp;
use super::{hex_id, lock, truncate_chars, Execution};
use crate::metrics_names as m;

/// Slow queries kept for SHOW SLOW_QUERIES.
const RING: usize = 200;
/// Slow-query warnings logged per second at most; the rest are counted and the count logged
/// with the next warning.
const LOG_PER_SECOND: u32 = 10;
/// Characters of a fingerprint put in a log line.
const LOG_FINGERPRINT_CHARS: usize = 2000;

/// One statement that ran longer than the threshold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlowQuery {
    pub at_unix_ms: u64,
    pub fingerprint: String,
    pub id: String,
    pub duration_ms: f64,
    pub backend: String,
    pub database: String,
    pub user: String,
    pub application_name: String,
}

/// At most `per_second` events per one-second window; counts the ones it turns away.
#[derive(Debug)]
pub(super) struct RateLimiter {
    per_second: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub(super) fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log this event, and say that `n` were suppressed since the last one logged.
    /// `None`: suppressed (counted).
    pub(super) fn admit(&mut self, now: Instant) -> Option<u64> {
        let new_window = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if new_window {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= self.per_second {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

pub(super) struct SlowLog {
    ring: Mutex<VecDeque<SlowQuery>>,
    limiter: Mutex<RateLimiter>,
}

impl SlowLog {
    pub(super) fn new() -> SlowLog {
        SlowLog {
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            limiter: Mutex::new(RateLimiter::new(LOG_PER_SECOND)),
        }
    }

    /// `sample_literals`: the statement as written may go to the (debug) log too.
    pub(super) fn record(
        &self,
        fp: &Fp,
        e: &Execution<'_>,
        sample_literals: bool,
        now: Instant,
        now_ms: u64,
    ) {
        metrics::counter!(m::SLOW_QUERIES_TOTAL).increment(1);
        let q = SlowQuery {
            at_unix_ms: now_ms,
            fingerprint: fp.text.to_string(),
            id: hex_id(fp.id),
            duration_ms: e.duration.as_secs_f64() * 1e3,
            backend: e.backend.to_owned(),
            database: e.database.to_owned(),
            user: e.user.to_owned(),
            application_name: e.application_name.to_owned(),
        };
        let admitted = lock(&self.limiter).admit(now);
        if let Some(suppressed) = admitted {
            tracing::warn!(
                fingerprint = truncate_chars(&q.fingerprint, LOG_FINGERPRINT_CHARS),
                id = %q.id,
                duration_ms = q.duration_ms,
                backend = %q.backend,
                database = %q.database,
                user = %q.user,
                application_name = %q.application_name,
                route = e.route.as_str(),
                error = e.error,
                suppressed,
                "slow query"
            );
            if sample_literals {
                tracing::debug!(id = %q.id, sql = e.sql, "slow query statement");
            }
        }
        let mut ring = lock(&self.ring);
        if ring.len() >= RING {
            ring.pop_back();
        }
        ring.push_front(q);
    }

    pub(super) fn list(&self) -> Vec<SlowQuery> {
        lock(&self.ring).iter().cloned().collect()
    }

    pub(super) fn clear(&self) {
        lock(&self.ring).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_admits_n_per_second_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(3);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(l.admit(at(0)), Some(0));
        assert_eq!(l.admit(at(10)), Some(0));
        assert_eq!(l.admit(at(20)), Some(0));
        for i in 0..5 {
            assert_eq!(l.admit(at(30 + i)), None);
        }
        // A new window: logged again, with the count of what was dropped.
        assert_eq!(l.admit(at(1000)), Some(5));
        assert_eq!(l.admit(at(1001)), Some(0));
        assert_eq!(l.admit(at(1002)), Some(0));
        assert_eq!(l.admit(at(1003)), None);
        assert_eq!(l.admit(at(5000)), Some(1));
    }
}
