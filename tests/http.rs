//! HTTP on `server.http_listen` (docs/reference/metrics.md): Prometheus text on /metrics, /healthz,
//! /readyz following the primary, the JSON API, and the dashboard rendered in headless
//! Chromium with live data.
//!
//! The browser is installed by `scripts/install-browser`. When it is missing the dashboard
//! test fails naming that script; with PGTIDE_BROWSER_OPTIONAL=1 it is skipped instead (a
//! "SKIPPED:" line on stderr). PGTIDE_BROWSER=/path/to/chromium picks another browser.

use std::path::PathBuf;
use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use serde_json::Value;

#[path = "http_support/common.rs"]
mod common;
use common::{dead_primary_config, get, get_with, raw, request};

/// Statements whose traces the API and the dashboard must show: a parameterised lookup, a
/// fingerprint full of markup and quotes, a slow one and an N+1 loop inside a transaction.
async fn workload(c: &tokio_postgres::Client) {
    c.batch_execute(
        "CREATE TABLE http_probe (id int PRIMARY KEY, note text);
         INSERT INTO http_probe SELECT g, 'note ' || g FROM generate_series(1, 50) g;",
    )
    .await
    .expect("schema");
    for i in 1..=30i32 {
        c.query("SELECT id, note FROM http_probe WHERE id = $1", &[&i])
            .await
            .expect("lookup");
    }
    for _ in 0..3 {
        c.simple_query(
            r#"SELECT count(*) AS "<b id=xss>" FROM http_probe WHERE note <> 'it''s "quoted" <i>'"#,
        )
        .await
        .expect("markup in a fingerprint");
    }
    c.simple_query("SELECT pg_sleep(0.15)").await.expect("slow");
    c.batch_execute("BEGIN").await.expect("begin");
    let ids = c
        .query("SELECT id FROM http_probe ORDER BY id LIMIT 12", &[])
        .await
        .expect("parent");
    for row in ids {
        let id: i32 = row.get(0);
        c.query("SELECT note FROM http_probe WHERE id = $1", &[&id])
            .await
            .expect("child");
    }
    c.batch_execute("COMMIT").await.expect("commit");
}

/// Every non-comment line is `name{labels} value`, and prometheus-parse reads the whole text.
fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let prometheus_parse::LineInfo::Ignored = prometheus_parse::LineInfo::parse(line) {
            panic!("not Prometheus text: {line:?}\n{text}");
        }
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
}

fn series<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &str,
) -> Vec<&'a prometheus_parse::Sample> {
    scrape.samples.iter().filter(|s| s.metric == name).collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

fn assert_has_keys(v: &Value, want: &[&str]) {
    let have = keys(v);
    for k in want {
        assert!(have.contains(k), "{k} missing from {v}");
    }
}

const QUERY_KEYS: &[&str] = &[
    "fingerprint",
    "id",
    "sample",
    "calls",
    "errors",
    "rows",
    "total_ms",
    "min_ms",
    "max_ms",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "primary",
    "replica",
    "cache",
    "cache_hits",
    "last_seen_unix_ms",
];
const SLOW_KEYS: &[&str] = &[
    "at_unix_ms",
    "fingerprint",
    "id",
    "duration_ms",
    "backend",
    "database",
    "user",
    "application_name",
];
const N_PLUS_ONE_KEYS: &[&str] = &[
    "parent",
    "repeated",
    "repeated_id",
    "count",
    "total_ms",
    "application_name",
    "database",
    "first_seen_unix_ms",
    "last_seen_unix_ms",
    "suggestion",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_readiness_and_api_follow_a_real_primary() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 4);
    config.insights.slow_query_threshold = Duration::from_millis(100);
    let server = s::start(config).await;
    let http = server.http_addr.expect("HTTP is on (http_listen)");
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    workload(&c).await;

    let health = get(http, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(http, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Prometheus text with the series of docs/reference/metrics.md that the workload produced.
    let metrics = get(http, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let scrape = parse_metrics(&metrics.body);
    let clients = series(&scrape, "pgtide_client_connections");
    assert!(
        clients
            .iter()
            .any(|s| s.value == prometheus_parse::Value::Gauge(1.0)),
        "one client is connected: {clients:?}"
    );
    let backends = series(&scrape, "pgtide_backend_connections");
    let label = format!("{}:{}", cluster.primary().host(), cluster.primary().port());
    let label = label.as_str();
    for state in ["idle", "in_use"] {
        assert!(
            backends
                .iter()
                .any(|s| s.labels.get("db") == Some(s::APP_DB)
                    && s.labels.get("backend") == Some(label)
                    && s.labels.get("state") == Some(state)),
            "pgtide_backend_connections{{db=app,backend={label},state={state}}} in {backends:?}"
        );
    }
    let waits = series(&scrape, "pgtide_pool_wait_seconds");
    assert!(
        waits
            .iter()
            .any(|s| matches!(&s.value, prometheus_parse::Value::Histogram(b)
            if b.iter().any(|b| b.less_than.is_infinite() && b.count >= 1.0))),
        "pgtide_pool_wait_seconds is a histogram with the checkouts: {waits:?}"
    );

    // The JSON API.
    let pools = get(http, "/api/pools").await.json();
    let pool = pools
        .as_array()
        .and_then(|p| p.first())
        .unwrap_or_else(|| panic!("one pool: {pools}"));
    assert_eq!(
        keys(pool),
        ["backend", "database", "idle", "in_use", "open", "size", "user", "waiting"]
    );
    assert_eq!(
        (pool["database"].as_str(), pool["user"].as_str()),
        (Some("app"), Some("app"))
    );
    assert_eq!(pool["backend"].as_str(), Some(label));
    assert_eq!(pool["size"].as_u64(), Some(4));
    assert!(pool["open"].as_u64() >= Some(1), "{pool}");

    let dbs = get(http, "/api/backends").await.json();
    let db = &dbs[0];
    assert_eq!(db["database"].as_str(), Some("app"), "{dbs}");
    let primary = &db["backends"][0];
    assert_has_keys(
        primary,
        &[
            "label",
            "role",
            "healthy",
            "in_recovery",
            "lag_ms",
            "weight",
            "reads",
            "read_share",
            "last_error",
        ],
    );
    assert_eq!(primary["label"].as_str(), Some(label));
    assert_eq!(primary["role"].as_str(), Some("primary"));
    assert_eq!(primary["healthy"].as_bool(), Some(true), "{primary}");
    assert_eq!(primary["in_recovery"].as_bool(), Some(false));
    assert!(primary["last_error"].is_null());

    let summary = get(http, "/api/summary").await.json();
    assert_has_keys(
        &summary,
        &[
            "version",
            "uptime_seconds",
            "clients",
            "queries",
            "cache_hit_rate",
        ],
    );
    assert_eq!(summary["clients"].as_u64(), Some(1));
    assert!(summary["uptime_seconds"].as_f64().is_some());

    // Insights: the documented shapes, and once statements are recorded the query series.
    let queries = get(http, "/api/queries").await.json();
    let queries = queries
        .as_array()
        .expect("/api/queries is an array")
        .clone();
    for q in &queries {
        assert_has_keys(q, QUERY_KEYS);
    }
    let slow = get(http, "/api/slow_queries").await.json();
    for q in slow.as_array().expect("/api/slow_queries is an array") {
        assert_has_keys(q, SLOW_KEYS);
    }
    let n1 = get(http, "/api/n_plus_one").await.json();
    for n in n1.as_array().expect("/api/n_plus_one is an array") {
        assert_has_keys(n, N_PLUS_ONE_KEYS);
    }
    if queries.is_empty() {
        eprintln!("NOTE: insights recorded nothing yet; the query series are not checked");
    } else {
        let one = get(http, "/api/queries?limit=1").await.json();
        assert_eq!(one.as_array().map(Vec::len), Some(1), "?limit=1: {one}");
        assert_eq!(
            one[0], queries[0],
            "the first row is the one with the most total time"
        );
        let scrape = parse_metrics(&get(http, "/metrics").await.body);
        assert!(
            !series(&scrape, "pgtide_queries_total").is_empty(),
            "pgtide_queries_total"
        );
        assert!(
            !series(&scrape, "pgtide_query_duration_seconds").is_empty(),
            "pgtide_query_duration_seconds"
        );
        let counted = |name: &str| {
            series(&scrape, name)
                .iter()
                .any(|s| matches!(s.value, prometheus_parse::Value::Counter(n) if n >= 1.0))
        };
        // The workload has one statement over the threshold and one N+1 loop.
        let slow = slow.as_array().expect("array");
        assert!(
            slow.iter().any(|q| q["fingerprint"]
                .as_str()
                .is_some_and(|f| f.contains("pg_sleep"))),
            "the slow pg_sleep: {slow:?}"
        );
        assert!(
            !n1.as_array().is_some_and(Vec::is_empty),
            "the N+1 loop: {n1}"
        );
        assert!(
            counted("pgtide_slow_queries_total"),
            "pgtide_slow_queries_total"
        );
        assert!(
            counted("pgtide_n_plus_one_total"),
            "pgtide_n_plus_one_total"
        );
    }

    // The primary goes away: not ready any more, and the reason says which.
    drop(c);
    let mut cluster = cluster;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.primary_mut().stop().expect("stop the primary");
        cluster
    })
    .await
    .expect("stop task");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let last = loop {
        let r = get(http, "/readyz").await;
        if r.status == 503 {
            break r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed ready with the primary stopped: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(last.contains("unreachable"), "{last}");
    assert_eq!(get(http, "/healthz").await.status, 200);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_primary_bad_requests_and_unknown_paths() {
    let server = s::start(dead_primary_config()).await;
    let http = server.http_addr.expect("HTTP is on");

    assert_eq!(get(http, "/healthz").await.status, 200);
    let ready = get(http, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("unreachable"), "{}", ready.body);
    // A page on another site (DNS rebinding) learns nothing but "not ready".
    let foreign = get_with(http, "/readyz", "attacker.example", &[]).await;
    assert_eq!(
        (foreign.status, foreign.body.as_str()),
        (503, "not ready\n")
    );

    let dbs = get(http, "/api/backends").await.json();
    let primary = &dbs[0]["backends"][0];
    assert_eq!(primary["healthy"].as_bool(), Some(false), "{dbs}");
    assert!(primary["last_error"].is_string(), "{dbs}");
    assert_eq!(get(http, "/api/pools").await.json(), Value::Array(vec![]));
    for path in ["/api/queries", "/api/slow_queries", "/api/n_plus_one"] {
        assert!(get(http, path).await.json().is_array(), "{path}");
    }

    let head = request(http, "HEAD", "/healthz").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = request(http, "POST", "/metrics").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    for path in [
        "/nope",
        "/api",
        "/api/queries/x",
        "/dashboard/",
        "/metrics.json",
    ] {
        assert_eq!(get(http, path).await.status, 404, "{path}");
    }
    assert_eq!(get(http, "/healthz?verbose=1").await.status, 200);

    // Garbage, oversized heads and bodies nobody reads: an answer, never a crash.
    assert_eq!(
        raw(http, b"\x16\x03\x01 not http at all\r\n\r\n")
            .await
            .status,
        400
    );
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let big = raw(http, huge.as_bytes()).await;
    assert!(matches!(big.status, 400 | 413 | 431), "{}", big.status);
    let with_body = raw(
        http,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\nabc",
    )
    .await;
    assert_eq!(with_body.status, 200);
    assert_eq!(get(http, "/healthz").await.status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_one_self_contained_page() {
    let server = s::start(dead_primary_config()).await;
    let page = get(server.http_addr.expect("HTTP is on"), "/dashboard").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.body.to_lowercase();
    for outside in [
        "http://", "https://", "//cdn", "<link", "@import", "url(", " src=",
    ] {
        assert!(
            !html.contains(outside),
            "the dashboard refers outside: {outside}"
        );
    }
    // Its fetches are relative to the page: the JSON API of this server.
    for api in [
        "api/summary",
        "api/queries",
        "api/pools",
        "api/backends",
        "api/slow_queries",
        "api/n_plus_one",
    ] {
        assert!(
            html.contains(&format!("'{api}'")) || html.contains(&format!("'{api}?limit=")),
            "{api}"
        );
    }
    // Text reaches the DOM as text: nothing is parsed as markup.
    for sink in [
        "innerhtml",
        "outerhtml",
        "insertadjacenthtml",
        "document.write",
        "eval(",
    ] {
        assert!(!html.contains(sink), "{sink} in the dashboard");
    }
}

/// The browser to render the dashboard with, or what is missing.
fn browser() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let find = |name: &str| {
        let direct = PathBuf::from(name);
        if name.contains('/') {
            return direct.is_file().then_some(direct);
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    if let Ok(b) = std::env::var("PGTIDE_BROWSER") {
        return find(&b).ok_or_else(|| {
            format!("PGTIDE_BROWSER={b} is not a program (or run scripts/install-browser)")
        });
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ]
    .into_iter()
    .find_map(find)
    .ok_or_else(|| {
        "no Chromium on PATH: run scripts/install-browser (Debian: apt-get install \
             chromium), or set PGTIDE_BROWSER"
            .into()
    })
}

/// Runs headless Chromium on `url` with `mode` (--dump-dom or --screenshot=...); its stdout.
async fn chromium(browser: &PathBuf, profile: &std::path::Path, mode: &str, url: &str) -> String {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(mode)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} {mode} took over 120 s", browser.display()))
        .unwrap_or_else(|e| panic!("running {}: {e}", browser.display()));
    assert!(
        out.status.success(),
        "{} {mode} failed ({:?}): {}",
        browser.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The part of `dom` from the element with `id` to the end of its table.
fn table<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let end = dom[start..]
        .find("</table>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_live_data_in_headless_chromium() {
    let browser = match browser() {
        Ok(b) => b,
        Err(missing) if std::env::var("PGTIDE_BROWSER_OPTIONAL").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED: dashboard in a browser: {missing}");
            return;
        }
        Err(missing) => panic!(
            "the dashboard cannot be rendered: {missing}. \
             (PGTIDE_BROWSER_OPTIONAL=1 skips this test instead of failing.)"
        ),
    };
    // With a replica, so the backends table and the lag chart have one to show.
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = s::cluster(1);
        cluster.wait_for_replicas().expect("replica streaming");
        cluster
    })
    .await
    .expect("cluster task");
    let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 4, &[1]);
    config.insights.slow_query_threshold = Duration::from_millis(100);
    let server = s::start(config).await;
    let http = server.http_addr.expect("HTTP is on");
    let replica_up = s::eventually(Duration::from_secs(10), || async {
        let dbs: Value =
            serde_json::from_str(&get(http, "/api/backends").await.body).unwrap_or_default();
        let replica = &dbs[0]["backends"][1];
        replica["role"] == "replica"
            && replica["healthy"] == true
            && replica["in_recovery"] == true
            && replica["lag_ms"].is_number()
    })
    .await;
    assert!(
        replica_up,
        "the replica never showed up healthy: {}",
        get(http, "/api/backends").await.body
    );
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    workload(&c).await;
    let recorded = s::eventually(Duration::from_secs(10), || async {
        get(http, "/api/queries").await.body.contains("http_probe")
    })
    .await;
    assert!(
        recorded,
        "insights recorded none of the workload (/api/queries: {}): is Shared.insights read by \
         crates/pgtide/src/http/insights_view.rs?",
        get(http, "/api/queries").await.body
    );

    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let profile = target.join(format!("http-test-chromium-{}", std::process::id()));
    let url = format!("http://{http}/dashboard");
    let dom = chromium(&browser, &profile, "--dump-dom", &url).await;
    let queries = table(&dom, "queries-table");
    assert!(
        queries.contains("http_probe"),
        "top queries without data:\n{queries}"
    );
    assert!(!queries.contains("No statements recorded yet"), "{queries}");
    assert!(
        table(&dom, "pools-table").contains(s::APP_DB),
        "pools table"
    );
    let backends = table(&dom, "backends-table");
    let replica = format!("127.0.0.1:{}", cluster.replicas()[0].port());
    assert!(
        backends.contains(&replica) && backends.contains("in recovery"),
        "backends table without the replica {replica}:\n{backends}"
    );
    assert!(dom.contains("aria-label=\"replica lag\""), "no lag chart");
    assert!(
        dom.contains("updated "),
        "the page never finished a refresh:\n{dom}"
    );
    assert!(
        !dom.contains("id=\"status\" class=\"error\""),
        "the page reports errors:\n{dom}"
    );
    // Markup inside fingerprints stays text.
    assert!(
        !dom.contains("<b id=\"xss\"") && !dom.contains("<i>"),
        "markup leaked:\n{dom}"
    );

    let shot = target.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &browser,
        &profile,
        &format!("--screenshot={}", shot.display()),
        &url,
    )
    .await;
    let size = std::fs::metadata(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()))
        .len();
    assert!(size > 20_000, "screenshot is only {size} bytes");
    eprintln!("dashboard screenshot: {} ({size} bytes)", shot.display());
    let _ = std::fs::remove_dir_all(&profile);
    drop(cluster);
}
