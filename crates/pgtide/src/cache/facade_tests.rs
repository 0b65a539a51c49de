use std::time::Duration;

use bytes::Bytes;
use pgtide_config::{CacheConfig, CacheRule};
use pgtide_sql::Classifier;

use super::*;

fn config() -> CacheConfig {
    CacheConfig {
        rules: vec![CacheRule {
            tables: Some(vec!["countries".into()]),
            ttl: Some(Duration::from_secs(60)),
            ..CacheRule::default()
        }],
        max_memory: 1 << 20,
        ..CacheConfig::default()
    }
}

const SQL: &str = "SELECT * FROM countries WHERE code = 'fr'";

fn key() -> Key {
    Key {
        database: "app".into(),
        user: "app".into(),
        settings: String::new(),
        text: SQL.into(),
        param_types: vec![],
        params: vec![Some(b"fr".to_vec())],
        param_formats: vec![],
        result_formats: vec![],
        simple: true,
        describe: 0,
    }
}

fn policy(cache: &ResultCache) -> Option<Policy> {
    let c = Classifier::new(&[]).classify(SQL);
    cache.policy(pgtide_sql::fingerprint(SQL).id, &c, Hint::of(SQL))
}

/// Looks the key up, filling on a miss; true on a hit.
async fn lookup(cache: &ResultCache) -> bool {
    let p = policy(cache).expect("cacheable");
    match cache.get_or_wait(key(), &p).await {
        Lookup::Hit(_) => true,
        Lookup::Miss(g) => {
            assert!(g.fill(Bytes::from_static(b"reply")));
            false
        }
    }
}

#[test]
fn the_facade_is_shareable_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<ResultCache>();
    send_sync::<FillGuard>();
    send_sync::<Lookup>();
    let cache = ResultCache::new(&config());
    let p = policy(&cache).expect("cacheable");
    send(&cache.get_or_wait(key(), &p));
}

#[tokio::test]
async fn stats_and_totals_count_lookups() {
    let cache = ResultCache::new(&config());
    assert!(cache.enabled());
    assert!(!lookup(&cache).await);
    assert!(lookup(&cache).await);
    assert!(lookup(&cache).await);
    let stats = cache.stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].rule, "tables: countries");
    assert_eq!(
        (stats[0].hits, stats[0].misses, stats[0].entries),
        (2, 1, 1)
    );
    assert!(stats[0].bytes > 5);
    assert!((cache.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    let t = cache.totals();
    assert_eq!(
        (t.hits, t.misses, t.entries, t.max_memory),
        (2, 1, 1, 1 << 20)
    );
    assert_eq!(t.bytes, stats[0].bytes);
    assert_eq!(cache.clear_table("public.countries"), 1);
    assert!(!lookup(&cache).await);
    cache.clear();
    assert!(!lookup(&cache).await);
}

#[tokio::test]
async fn reconfigure_flushes_on_rule_changes_only() {
    let cache = ResultCache::new(&config());
    assert!(!lookup(&cache).await);
    let mut same = config();
    same.invalidate_channel = "other".into();
    cache.reconfigure(&same);
    assert!(lookup(&cache).await, "a channel change keeps entries");

    let mut longer = same.clone();
    longer.rules[0].ttl = Some(Duration::from_secs(600));
    cache.reconfigure(&longer);
    assert!(!lookup(&cache).await, "new rules flush");
    assert_eq!(cache.stats()[0].ttl, Duration::from_secs(600));
    assert_eq!(
        cache.stats()[0].misses,
        1,
        "counters restart with the rules"
    );

    let mut bigger = longer.clone();
    bigger.max_memory = 4 << 20;
    cache.reconfigure(&bigger);
    assert_eq!(cache.store().max_entry_bytes(), (4 << 20) / 64);
    assert!(!lookup(&cache).await, "a new store starts empty");
    assert!(lookup(&cache).await);

    let mut off = bigger.clone();
    off.enabled = false;
    cache.reconfigure(&off);
    assert!(!cache.enabled());
    assert!(policy(&cache).is_none());
}

#[tokio::test]
async fn publishing_without_a_listener_is_local_only() {
    let cache = ResultCache::new(&config());
    assert!(!lookup(&cache).await);
    assert_eq!(cache.invalidate_tables(&["countries".into()]), 1);
    cache.invalidate_all();
    let st = cache.listener_status();
    assert!(!st.started && !st.listening);
    assert_eq!(st.published, 0);
    assert!(!lookup(&cache).await);
    assert!(lookup(&cache).await, "no listener: the cache serves");
}

/// Lookups need rules or entries (or a hint, checked by the caller); writes are tracked with
/// rules, or from the first lookup on even while nothing is stored (a fill may be in flight),
/// and a reload keeps that.
#[tokio::test]
async fn write_tracking_starts_with_rules_or_the_first_lookup() {
    let hints_only = CacheConfig {
        rules: vec![],
        ..config()
    };
    let cache = ResultCache::new(&hints_only);
    assert!(cache.enabled() && !cache.in_use() && !cache.tracks_writes());
    let hinted = format!("/* pgtide:cache */ {SQL}");
    let c = Classifier::new(&[]).classify(&hinted);
    let p = cache
        .policy(pgtide_sql::fingerprint(&hinted).id, &c, Hint::of(&hinted))
        .expect("a hint makes it cacheable");
    let Lookup::Miss(guard) = cache.get_or_wait(key(), &p).await else {
        panic!("nothing is cached yet");
    };
    // The fill is in flight: nothing stored, writes tracked already.
    assert!(cache.tracks_writes() && !cache.in_use());
    assert!(guard.fill(Bytes::from_static(b"reply")));
    assert!(cache.in_use() && cache.tracks_writes());
    cache.reconfigure(&CacheConfig {
        default_ttl: Duration::from_secs(5),
        ..hints_only.clone()
    });
    assert!(cache.tracks_writes(), "a reload keeps it");
    cache.reconfigure(&CacheConfig {
        enabled: false,
        ..hints_only
    });
    assert!(!cache.enabled() && !cache.tracks_writes() && !cache.in_use());
    let with_rules = ResultCache::new(&config());
    assert!(with_rules.in_use() && with_rules.tracks_writes());
}
