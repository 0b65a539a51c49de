//! Cross-instance cache invalidation against a real PostgreSQL: two `ResultCache`s (two pgtide
//! instances) share one LISTEN/NOTIFY channel; a write published by one drops the other's
//! entries, and losing the listening connection flushes the cache and reconnects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pgtide::internals::{Hint, Key, Lookup, Policy, ResultCache};
use pgtide_config::{CacheConfig, CacheRule, PoolMode};
use pgtide_suite as s;

const WAIT: Duration = Duration::from_secs(20);

fn cache_config() -> CacheConfig {
    CacheConfig {
        // Mixed case: LISTEN and pg_notify must agree on the exact name.
        invalidate_channel: "PgTide_Inval".into(),
        rules: vec![CacheRule {
            tables: Some(vec!["users".into(), "\"Odd Name\"".into()]),
            ..CacheRule::default()
        }],
        ..CacheConfig::default()
    }
}

fn policy(cache: &ResultCache, sql: &str) -> Policy {
    let c = pgtide_sql::Classifier::new(&[]).classify(sql);
    let fp = pgtide_sql::fingerprint(sql);
    cache
        .policy(fp.id, &c, Hint::of(sql))
        .expect("the rule admits it")
}

fn key(sql: &str, param: &str) -> Key {
    Key {
        database: s::APP_DB.into(),
        user: s::APP_USER.into(),
        settings: String::new(),
        text: sql.into(),
        param_types: vec![],
        params: vec![Some(param.as_bytes().to_vec())],
        param_formats: vec![],
        result_formats: vec![],
        simple: true,
        describe: 0,
    }
}

/// Looks `k` up; on a miss fills it with `reply` when `fill` is set. Returns whether it hit.
async fn lookup(cache: &ResultCache, k: Key, p: &Policy, fill: bool) -> bool {
    match cache.get_or_wait(k, p).await {
        Lookup::Hit(_) => true,
        Lookup::Miss(g) => {
            if fill {
                g.fill(Bytes::from_static(b"T...D...C..."));
            }
            false
        }
    }
}

async fn listening(cache: &ResultCache, connects: u64) -> bool {
    s::eventually(WAIT, || async {
        let st = cache.listener_status();
        st.listening && st.connects >= connects
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_invalidates_other_instances_and_reconnects_after_loss() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let config = s::config(&cluster, PoolMode::Transaction, 1);
    let target = pgtide::internals::primary_target(&config.databases[0], &config.users[0]);

    let a = Arc::new(ResultCache::new(&cache_config()));
    let b = Arc::new(ResultCache::new(&cache_config()));
    a.spawn_listener(target.clone());
    b.spawn_listener(target.clone());
    assert!(
        listening(&a, 1).await,
        "a listens: {:?}",
        a.listener_status()
    );
    assert!(
        listening(&b, 1).await,
        "b listens: {:?}",
        b.listener_status()
    );

    let users = "SELECT * FROM users WHERE id = 1";
    let odd = "SELECT * FROM \"Odd Name\"";
    let (pu, po) = (policy(&b, users), policy(&b, odd));
    assert!(!lookup(&b, key(users, "1"), &pu, true).await);
    assert!(!lookup(&b, key(odd, ""), &po, true).await);
    assert!(lookup(&b, key(users, "1"), &pu, false).await, "b caches");
    assert!(!lookup(&a, key(users, "1"), &policy(&a, users), true).await);

    // A write through instance a to public.users: a drops its entry at once, b on NOTIFY.
    assert_eq!(a.invalidate_tables(&["public.users".into()]), 1);
    let gone = s::eventually(WAIT, || async {
        !lookup(&b, key(users, "1"), &pu, false).await
    })
    .await;
    assert!(gone, "b still serves users: {:?}", b.listener_status());
    assert!(
        lookup(&b, key(odd, ""), &po, false).await,
        "other tables stay"
    );
    assert_eq!(a.listener_status().received, 0, "a ignores its own message");
    assert!(b.listener_status().received >= 1);

    // A quoted name needing escapes travels intact.
    a.invalidate_tables(&["\"Odd Name\"".into()]);
    assert!(
        s::eventually(WAIT, || async {
            !lookup(&b, key(odd, ""), &po, false).await
        })
        .await,
        "quoted table name"
    );

    // Kill b's listening connection: b flushes, stops serving, reconnects, and works again.
    assert!(!lookup(&b, key(users, "2"), &pu, true).await);
    assert!(lookup(&b, key(users, "2"), &pu, false).await);
    let pid = b.listener_status().pid.expect("listener pid");
    tokio::task::block_in_place(|| {
        cluster
            .primary()
            .psql(&format!("SELECT pg_terminate_backend({pid})"))
            .expect("terminate the listener")
    });
    assert!(
        listening(&b, 2).await,
        "b reconnects: {:?}",
        b.listener_status()
    );
    assert_ne!(b.listener_status().pid, Some(pid));
    assert!(
        !lookup(&b, key(users, "2"), &pu, true).await,
        "the entry from before the loss was flushed"
    );
    assert!(
        lookup(&b, key(users, "2"), &pu, false).await,
        "caching again"
    );
    a.invalidate_tables(&["users".into()]);
    assert!(
        s::eventually(WAIT, || async {
            !lookup(&b, key(users, "2"), &pu, false).await
        })
        .await,
        "b hears a again after its reconnect"
    );

    // A write published while a's own connection is being lost is not lost: it goes out on
    // the old connection or, queued, after a's reconnect.
    assert!(!lookup(&b, key(users, "3"), &pu, true).await);
    assert!(lookup(&b, key(users, "3"), &pu, false).await);
    let a_pid = a.listener_status().pid.expect("listener pid");
    tokio::task::block_in_place(|| {
        cluster
            .primary()
            .psql(&format!("SELECT pg_terminate_backend({a_pid})"))
            .expect("terminate a's listener")
    });
    a.invalidate_tables(&["users".into()]);
    assert!(
        s::eventually(WAIT, || async {
            !lookup(&b, key(users, "3"), &pu, false).await
        })
        .await,
        "the queued invalidation reaches b: a {:?}",
        a.listener_status()
    );
    assert!(listening(&a, 2).await);
}
