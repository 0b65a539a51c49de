use std::time::Duration;

use pgtide_config::{CacheConfig, CacheRule};
use pgtide_sql::Classifier;

use super::*;

fn config(rules: Vec<CacheRule>) -> CacheConfig {
    CacheConfig {
        rules,
        default_ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    }
}

fn query_rule(q: &str, ttl: u64) -> CacheRule {
    CacheRule {
        query: Some(q.into()),
        tables: None,
        ttl: Some(Duration::from_secs(ttl)),
    }
}

fn tables_rule(t: &[&str], ttl: Option<u64>) -> CacheRule {
    CacheRule {
        query: None,
        tables: Some(t.iter().map(|s| s.to_string()).collect()),
        ttl: ttl.map(Duration::from_secs),
    }
}

/// The policy of `sql` under `rules`: (rule index, ttl seconds).
fn check(rules: &Rules, sql: &str) -> Option<(usize, u64)> {
    let c = Classifier::new(&[]).classify(sql);
    let fp = pgtide_sql::fingerprint(sql);
    rules
        .policy(fp.id, &c, Hint::of(sql))
        .map(|p| (p.rule, p.ttl.as_secs()))
}

#[test]
fn fingerprint_rules_ignore_literals_spacing_and_case() {
    let rules = Rules::new(&config(vec![query_rule(
        "SELECT * FROM products WHERE id = $1",
        60,
    )]));
    assert_eq!(
        check(&rules, "SELECT * FROM products WHERE id = $1"),
        Some((0, 60))
    );
    assert_eq!(
        check(&rules, "select *   from products\n where id=42"),
        Some((0, 60))
    );
    assert_eq!(
        check(
            &rules,
            "SELECT * FROM products WHERE id = '7' -- trailing comment"
        ),
        Some((0, 60))
    );
    assert_eq!(check(&rules, "SELECT * FROM products WHERE sku = 42"), None);
    assert_eq!(check(&rules, "SELECT * FROM orders WHERE id = 42"), None);
    let p = Rules::new(&config(vec![query_rule("SELECT 1", 5)]));
    assert_eq!(check(&p, "SELECT 2"), Some((0, 5)));
}

#[test]
fn table_rules_match_reads_only_within_the_set() {
    let rules = Rules::new(&config(vec![tables_rule(
        &["countries", "currencies"],
        None,
    )]));
    assert_eq!(check(&rules, "SELECT * FROM countries"), Some((0, 30)));
    assert_eq!(
        check(
            &rules,
            "SELECT * FROM countries c JOIN currencies x ON x.id = c.currency_id"
        ),
        Some((0, 30))
    );
    assert_eq!(
        check(&rules, "SELECT * FROM public.countries"),
        Some((0, 30))
    );
    assert_eq!(check(&rules, "SELECT * FROM \"countries\""), Some((0, 30)));
    assert_eq!(check(&rules, "SELECT * FROM COUNTRIES"), Some((0, 30)));
    assert_eq!(
        check(&rules, "SELECT * FROM countries JOIN users USING (id)"),
        None
    );
    assert_eq!(check(&rules, "SELECT * FROM \"Countries\""), None);
    assert_eq!(check(&rules, "SELECT 1"), None, "no relation read");
}

#[test]
fn qualified_rule_names_match_exactly() {
    let rules = Rules::new(&config(vec![tables_rule(&["app.users"], Some(9))]));
    assert_eq!(check(&rules, "SELECT * FROM app.users"), Some((0, 9)));
    assert_eq!(check(&rules, "SELECT * FROM App.\"users\""), Some((0, 9)));
    assert_eq!(check(&rules, "SELECT * FROM other.users"), None);
    assert_eq!(check(&rules, "SELECT * FROM users"), None);
}

#[test]
fn first_rule_in_file_order_wins() {
    let rules = Rules::new(&config(vec![
        tables_rule(&["products"], Some(1)),
        query_rule("SELECT * FROM products WHERE id = $1", 2),
    ]));
    assert_eq!(
        check(&rules, "SELECT * FROM products WHERE id = 3"),
        Some((0, 1))
    );
    let rules = Rules::new(&config(vec![
        query_rule("SELECT * FROM products WHERE id = $1", 2),
        tables_rule(&["products"], Some(1)),
    ]));
    assert_eq!(
        check(&rules, "SELECT * FROM products WHERE id = 3"),
        Some((0, 2))
    );
    assert_eq!(check(&rules, "SELECT name FROM products"), Some((1, 1)));
}

#[test]
fn hints_opt_in_and_out() {
    let rules = Rules::new(&config(vec![tables_rule(&["countries"], Some(60))]));
    assert_eq!(
        check(&rules, "/* pgtide:no-cache */ SELECT * FROM countries"),
        None
    );
    assert_eq!(
        check(&rules, "SELECT * FROM countries -- PGTIDE : NoCache"),
        None
    );
    assert_eq!(
        check(
            &rules,
            "/* pgtide:cache */ /* pgtide:no-cache */ SELECT * FROM countries"
        ),
        None,
        "no-cache wins"
    );
    // The cache hint admits a read without a rule, for default_ttl, counted as the hint row.
    assert_eq!(
        check(&rules, "/* app=web pgtide:cache */ SELECT * FROM users"),
        Some((1, 30))
    );
    assert_eq!(check(&rules, "SELECT * FROM users"), None);
    // A hint inside a string constant is data, not a hint.
    assert_eq!(
        check(
            &rules,
            "SELECT * FROM users WHERE note = '/* pgtide:cache */'"
        ),
        None
    );
    assert_eq!(Hint::of("SELECT 1 /* xpgtide:cache */"), Hint::None);
    assert_eq!(Hint::of("SELECT 1 /* pgtide:cached */"), Hint::None);
    assert_eq!(Hint::of("SELECT 1 /*pgtide:cache*/"), Hint::Cache);
}

#[test]
fn writes_volatile_and_locking_reads_are_never_cacheable() {
    let rules = Rules::new(&config(vec![tables_rule(&["t"], Some(60))]));
    for sql in [
        "/* pgtide:cache */ SELECT * FROM t FOR UPDATE",
        "/* pgtide:cache */ SELECT * FROM t FOR SHARE",
        "/* pgtide:cache */ SELECT now(), * FROM t",
        "/* pgtide:cache */ SELECT random() FROM t",
        "/* pgtide:cache */ SELECT nextval('s') FROM t",
        "/* pgtide:cache */ UPDATE t SET a = 1",
        "/* pgtide:cache */ DELETE FROM t",
        "/* pgtide:cache */ WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "/* pgtide:cache */ SELECT * FROM t; SELECT * FROM t",
        "/* pgtide:cache */ BEGIN",
        "/* pgtide:cache */ SET x = 1",
        "SELECT * FROM t FOR UPDATE",
        "SELECT current_timestamp FROM t",
    ] {
        assert_eq!(check(&rules, sql), None, "{sql}");
    }
}

#[test]
fn disabled_cache_caches_nothing() {
    let mut c = config(vec![tables_rule(&["t"], Some(60))]);
    c.enabled = false;
    let rules = Rules::new(&c);
    assert!(!rules.enabled());
    assert_eq!(check(&rules, "/* pgtide:cache */ SELECT * FROM t"), None);
}

#[test]
fn stats_have_a_row_per_rule_and_one_for_the_hint() {
    let rules = Rules::new(&config(vec![
        query_rule("select * from products where id = 5", 60),
        tables_rule(&["countries", "currencies"], None),
    ]));
    let stats = rules.stats();
    let labels: Vec<&str> = stats.iter().map(|s| s.rule.as_str()).collect();
    assert_eq!(
        labels,
        [
            "query: SELECT * FROM products WHERE id = $1",
            "tables: countries, currencies",
            "hint: /* pgtide:cache */"
        ]
    );
    assert_eq!(stats[1].ttl, Duration::from_secs(30));
    assert_eq!(stats[0].hit_rate, 0.0);
}
