use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

fn key(fp: u64, param: &str) -> Key {
    Key {
        database: "app".into(),
        user: "app".into(),
        settings: "search_path\0\"$user\", public\0".into(),
        text: format!("SELECT {fp}"),
        param_types: vec![],
        params: vec![Some(param.as_bytes().to_vec())],
        param_formats: vec![0],
        result_formats: vec![0],
        simple: false,
        describe: 0,
    }
}

fn policy(tables: &[&str]) -> Policy {
    Policy {
        ttl: Duration::from_secs(60),
        rule: 0,
        tables: tables.iter().map(|s| s.to_string()).collect(),
        counters: Arc::default(),
    }
}

fn reply(n: usize) -> Bytes {
    Bytes::from(vec![b'D'; n])
}

async fn fill(store: &Store, k: Key, p: &Policy, bytes: Bytes) -> bool {
    match store.get_or_wait(k, p).await {
        Lookup::Miss(g) => g.fill(bytes),
        Lookup::Hit(_) => panic!("expected a miss"),
    }
}

async fn is_hit(store: &Store, k: Key, p: &Policy) -> bool {
    matches!(store.get_or_wait(k, p).await, Lookup::Hit(_))
}

#[tokio::test]
async fn a_filled_entry_is_hit_until_its_ttl() {
    let store = Store::new(1 << 20);
    let mut p = policy(&["users"]);
    p.ttl = Duration::from_millis(100);
    assert!(fill(&store, key(1, "a"), &p, reply(10)).await);
    match store.get_or_wait(key(1, "a"), &p).await {
        Lookup::Hit(e) => {
            assert_eq!(e.reply, reply(10));
            assert_eq!(e.tables, ["users"]);
        }
        Lookup::Miss(_) => panic!("expected a hit"),
    }
    assert!(!is_hit(&store, key(1, "b"), &p).await, "other parameters");
    let mut other = key(1, "a");
    other.result_formats = vec![1];
    assert!(!is_hit(&store, other, &p).await, "other result formats");
    let mut other = key(1, "a");
    other.settings = "search_path\0app\0".into();
    assert!(!is_hit(&store, other, &p).await, "other search_path");
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_hit(&store, key(1, "a"), &p).await {
        assert!(Instant::now() < deadline, "entry outlived its TTL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Misses: the fill, three other keys, the expired lookup; hits: the rest.
    assert_eq!(p.counters.misses.load(Ordering::Relaxed), 5);
    assert!(p.counters.hits.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn oversized_replies_and_offline_caches_store_nothing() {
    let store = Store::new(64 * 1024);
    let p = policy(&["t"]);
    assert_eq!(store.max_entry_bytes(), 1024);
    assert!(!fill(&store, key(1, "big"), &p, reply(1025)).await);
    assert!(fill(&store, key(1, "ok"), &p, reply(1024)).await);
    store.set_online(false);
    assert!(!is_hit(&store, key(1, "ok"), &p).await, "flushed and off");
    assert!(!fill(&store, key(1, "ok"), &p, reply(10)).await);
    store.set_online(true);
    assert!(fill(&store, key(1, "ok"), &p, reply(10)).await);
    assert!(is_hit(&store, key(1, "ok"), &p).await);
}

#[tokio::test]
async fn memory_stays_under_max_memory_for_100k_keys() {
    const MAX: u64 = 8 << 20;
    let store = Store::new(MAX);
    let p = policy(&["public.products"]);
    let started = Instant::now();
    let mut peak = 0u64;
    // Between moka's maintenance passes the held bytes may run over briefly.
    let mut transient = 0u64;
    for i in 0..100_000u64 {
        let k = key(7, &i.to_string());
        // 300..1300 bytes: a typical point-query reply.
        let g = match store.get_or_wait(k, &p).await {
            Lookup::Miss(g) => g,
            Lookup::Hit(_) => panic!("distinct keys never hit"),
        };
        g.fill(reply(300 + (i as usize * 37) % 1000));
        transient = transient.max(store.bytes());
        if i % 10_000 == 9_999 {
            store.run_pending_tasks();
            peak = peak.max(store.weighted_size());
            assert!(
                store.weighted_size() <= MAX,
                "{} > {MAX}",
                store.weighted_size()
            );
        }
    }
    store.run_pending_tasks();
    let (weighted, own, entries) = (store.weighted_size(), store.bytes(), store.entry_count());
    eprintln!(
        "100k keys in {:?}: weighted_size {weighted} (own count {own}), peak {peak}, \
         transient peak {transient}, \
         {entries} entries, {} index refs, max_memory {MAX}",
        started.elapsed(),
        store.index_refs()
    );
    assert!(weighted <= MAX && own <= MAX);
    // moka applies writes in batches: the overshoot before a pass is a few entries' worth.
    assert!(transient <= MAX + MAX / 10, "transient {transient}");
    assert!(entries > 1_000, "the cache is used: {entries}");
    assert_eq!(store.index_refs() as u64, entries, "no index leak");
    assert_eq!(store.entries(), entries);
    let c = &p.counters;
    assert_eq!(c.entries.load(Ordering::Relaxed) as u64, entries);
    assert_eq!(c.bytes.load(Ordering::Relaxed) as u64, own);
}

#[tokio::test]
async fn invalidation_respects_schemas_conservatively() {
    let store = Store::new(1 << 20);
    let (pa, pb, pbare) = (policy(&["a.t"]), policy(&["b.t"]), policy(&["t"]));
    let fill_all = || async {
        assert!(fill(&store, key(1, "a"), &pa, reply(8)).await);
        assert!(fill(&store, key(2, "b"), &pb, reply(8)).await);
        assert!(fill(&store, key(3, "bare"), &pbare, reply(8)).await);
    };
    fill_all().await;
    // a.t: entries that read a.t, and those that read a bare t (it may be a.t).
    assert_eq!(store.invalidate_tables(&["a.t".into()]), 2);
    assert!(!is_hit(&store, key(1, "a"), &pa).await);
    assert!(!is_hit(&store, key(3, "bare"), &pbare).await);
    assert!(
        is_hit(&store, key(2, "b"), &pb).await,
        "b.t is another table"
    );
    store.clear();
    fill_all().await;
    // A bare t may be either schema's: everything named t goes.
    assert_eq!(store.invalidate_tables(&["t".into()]), 3);
    for (k, p) in [
        (key(1, "a"), &pa),
        (key(2, "b"), &pb),
        (key(3, "bare"), &pbare),
    ] {
        assert!(!is_hit(&store, k, p).await);
    }
    assert_eq!(store.index_refs(), 0);
}

#[tokio::test]
async fn invalidation_matches_quoted_and_qualified_spellings() {
    let store = Store::new(1 << 20);
    let reads = policy(&["users", "orders"]);
    for (i, written) in [
        "users",
        "public.users",
        "\"users\"",
        "PUBLIC.USERS",
        "orders",
    ]
    .iter()
    .enumerate()
    {
        assert!(fill(&store, key(1, &i.to_string()), &reads, reply(8)).await);
        assert_eq!(
            store.invalidate_tables(&[written.to_string()]),
            1,
            "{written}"
        );
        assert!(!is_hit(&store, key(1, &i.to_string()), &reads).await);
    }
    assert!(fill(&store, key(1, "x"), &reads, reply(8)).await);
    assert_eq!(
        store.invalidate_tables(&["\"Users\"".into(), "app.users_v".into()]),
        0
    );
    assert!(is_hit(&store, key(1, "x"), &reads).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_one_key_run_once() {
    const N: usize = 16;
    let store = Store::new(1 << 20);
    let p = policy(&["products"]);
    let first = match store.get_or_wait(key(9, "1"), &p).await {
        Lookup::Miss(g) => g,
        Lookup::Hit(_) => panic!("empty cache"),
    };
    assert!(first.is_leader());
    let waiters: Vec<_> = (1..N)
        .map(|_| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move { store.get_or_wait(key(9, "1"), &p).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.waiters() < N - 1 {
        assert!(Instant::now() < deadline, "{} waiting", first.waiters());
        tokio::task::yield_now().await;
    }
    assert!(first.fill(reply(20)));
    for w in waiters {
        match w.await.expect("task") {
            Lookup::Hit(e) => assert_eq!(e.reply.len(), 20),
            Lookup::Miss(_) => panic!("a waiter missed"),
        }
    }
    assert_eq!(p.counters.misses.load(Ordering::Relaxed), 1);
    assert_eq!(p.counters.hits.load(Ordering::Relaxed), (N - 1) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_run_their_own_query_when_the_first_gives_up() {
    let store = Store::new(1 << 20);
    let p = policy(&["products"]);
    let Lookup::Miss(first) = store.get_or_wait(key(9, "1"), &p).await else {
        panic!("empty cache")
    };
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move { store.get_or_wait(key(9, "1"), &p).await })
        })
        .collect();
    while first.waiters() < 3 {
        tokio::task::yield_now().await;
    }
    drop(first); // the query failed
    for w in waiters {
        match w.await.expect("task") {
            Lookup::Miss(g) => assert!(!g.is_leader()),
            Lookup::Hit(_) => panic!("nothing was filled"),
        }
    }
    // The key is free again: the next miss leads.
    let Lookup::Miss(g) = store.get_or_wait(key(9, "1"), &p).await else {
        panic!("nothing was filled")
    };
    assert!(g.is_leader());
}

#[tokio::test]
async fn waiting_is_bounded() {
    let store = Store::with_wait(1 << 20, Duration::from_millis(50));
    let p = policy(&["t"]);
    let Lookup::Miss(_first) = store.get_or_wait(key(1, "1"), &p).await else {
        panic!("empty cache")
    };
    let Lookup::Miss(own) = store.get_or_wait(key(1, "1"), &p).await else {
        panic!("nothing was filled")
    };
    assert!(!own.is_leader());
    assert!(own.fill(reply(4)), "a waiter's own fill is stored");
}

#[tokio::test]
async fn a_fill_that_raced_an_invalidation_is_not_stored() {
    let store = Store::new(1 << 20);
    let p = policy(&["public.accounts", "plans"]);
    // The read runs (guard made), a write to accounts commits and invalidates, the read's
    // (pre-write) result arrives: it must not be kept.
    let Lookup::Miss(g) = store.get_or_wait(key(1, "1"), &p).await else {
        panic!("empty cache")
    };
    store.invalidate_tables(&["accounts".into()]);
    assert!(!g.fill(reply(8)));
    assert!(!is_hit(&store, key(1, "1"), &p).await);
    // A write to an unrelated table does not spoil the fill.
    let Lookup::Miss(g) = store.get_or_wait(key(1, "1"), &p).await else {
        panic!("nothing stored")
    };
    store.invalidate_tables(&["orders".into()]);
    assert!(g.fill(reply(8)));
    assert!(is_hit(&store, key(1, "1"), &p).await);
    // A flush spoils every fill in flight.
    let Lookup::Miss(g) = store.get_or_wait(key(2, "1"), &p).await else {
        panic!("empty")
    };
    store.clear();
    assert!(!g.fill(reply(8)));
}

#[tokio::test]
async fn rule_counters_follow_entries_in_and_out() {
    let store = Store::new(1 << 20);
    let p = policy(&["t"]);
    assert!(fill(&store, key(1, "1"), &p, reply(100)).await);
    assert!(fill(&store, key(1, "2"), &p, reply(100)).await);
    assert!(is_hit(&store, key(1, "1"), &p).await);
    let c = &p.counters;
    assert_eq!(c.entries.load(Ordering::Relaxed), 2);
    let bytes = c.bytes.load(Ordering::Relaxed);
    assert!(bytes >= 200 + 2 * ENTRY_OVERHEAD as i64, "{bytes}");
    assert_eq!(store.bytes() as i64, bytes);
    // Replacing an entry keeps one entry's worth.
    let Lookup::Miss(g) = store.get_or_wait(key(1, "3"), &p).await else {
        panic!()
    };
    assert!(g.fill(reply(100)));
    store.invalidate_tables(&["t".into()]);
    store.run_pending_tasks();
    assert_eq!(c.entries.load(Ordering::Relaxed), 0);
    assert_eq!(c.bytes.load(Ordering::Relaxed), 0);
    assert_eq!(store.bytes(), 0);
    assert_eq!(c.hits.load(Ordering::Relaxed), 1);
    assert_eq!(c.misses.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_client_takes_only_entries_read_at_or_past_its_position() {
    let store = Store::new(1 << 20);
    let p = policy(&["users"]);
    match store.get_or_wait(key(1, "a"), &p).await {
        Lookup::Miss(mut g) => {
            g.set_source(Source::Primary(100));
            assert!(g.fill(reply(10)));
        }
        Lookup::Hit(_) => panic!("expected a miss"),
    }
    assert!(matches!(
        store.get_or_wait_at(key(1, "a"), &p, 100).await,
        Lookup::Hit(e) if e.lsn == 100
    ));
    assert!(
        matches!(
            store.get_or_wait_at(key(1, "a"), &p, 101).await,
            Lookup::Miss(_)
        ),
        "read before the client's write"
    );
    assert!(matches!(
        store.get_or_wait_at(key(1, "a"), &p, u64::MAX).await,
        Lookup::Miss(_)
    ));
}

#[tokio::test]
async fn replica_fills_wait_for_the_floor_and_unusable_sources_store_nothing() {
    let floors: Arc<super::Floors> = Arc::default();
    let store = Store::with_floors(1 << 20, DEFAULT_WAIT, floors.clone());
    let p = policy(&["public.users"]);
    let fill_from = |source: Source| {
        let store = store.clone();
        let p = p.clone();
        async move {
            match store.get_or_wait(key(1, "a"), &p).await {
                Lookup::Miss(mut g) => {
                    g.set_source(source);
                    g.fill(reply(10))
                }
                Lookup::Hit(_) => panic!("expected a miss"),
            }
        }
    };
    assert!(!fill_from(Source::Unusable).await);
    let seq = floors.mark_local(&["users".to_string()], false);
    assert!(
        !fill_from(Source::Replica(1_000)).await,
        "the write's position is pending"
    );
    floors.confirm(&["users".to_string()], false, seq, 500);
    assert!(!fill_from(Source::Replica(499)).await, "behind the write");
    assert!(fill_from(Source::Replica(500)).await);
    store.invalidate_tables(&["users".to_string()]);
    assert!(
        fill_from(Source::Primary(0)).await,
        "the primary is never behind"
    );
}
