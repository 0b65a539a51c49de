//! Issue 11, item 11: a client that writes without reading never makes pgtide hold more than a
//! bounded amount for it. Replies from a backend were always bounded (the backend is not read
//! while the client's buffer is over the high-water mark); this is about the replies pgtide
//! writes itself, without a backend: cache hits and answers to Sync.
//!
//! The bound: pgtide stops taking a client's frames while what waits for it is over its
//! high-water mark (256 KiB), so it holds at most that plus one reply (the largest pgtide
//! writes itself, here one 4 MiB cached result) and the unread frames of one read. The test
//! measures the test process's RSS (pgtide runs in it) before and after and allows
//! `RSS_BOUND` of growth; on main a client asking for the 4 MiB entry 100 times without reading
//! made pgtide hold all 400 MiB of answers.

use std::time::Duration;

use pgtide_config::{CacheRule, PoolMode};
use pgtide_suite as s;
use s::raw::{add_trust_user, query, startup_message, Raw, RAW_USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The cached entry's payload.
const ENTRY: usize = 4 << 20;
/// Requests for it a client sends without reading (400 MiB of answers).
const REQUESTS: usize = 100;
/// Syncs a client sends without reading (20 MB in, 24 MB of ReadyForQuery out: far more than
/// the kernel's socket buffers hold).
const SYNCS: usize = 4_000_000;
/// Allowed RSS growth: the high-water mark, one 4 MiB reply and its copy, and allocator slack.
const RSS_BOUND: u64 = 48 << 20;
const SQL: &str = "SELECT payload FROM big WHERE id = 1";

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// pgtide_client_read_pauses_total from /metrics (0 before the first pause).
async fn pauses(server: &s::ServerHandle) -> u64 {
    let addr = server.http_addr.expect("http_listen is on in tests");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("http");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body.lines()
        .find(|l| l.starts_with("pgtide_client_read_pauses_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits until pgtide paused a client once more than `before`, or until RSS grew past the
/// bound (what main did); returns the growth since `baseline` at that point.
async fn growth_once_paused(server: &s::ServerHandle, before: u64, baseline: u64) -> u64 {
    let settled = s::eventually(Duration::from_secs(60), || async {
        pauses(server).await > before || rss().saturating_sub(baseline) > 4 * RSS_BOUND
    })
    .await;
    assert!(settled, "pgtide neither paused the client nor grew");
    rss().saturating_sub(baseline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_to_a_bounded_backlog() {
    let cluster = s::cluster_with_schema(&format!(
        "CREATE TABLE big (id int, payload text);
         INSERT INTO big SELECT 1, repeat('x', {ENTRY});
         GRANT ALL ON big TO PUBLIC;"
    ))
    .await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    add_trust_user(&mut config);
    config.cache.max_memory = 1 << 30; // one entry may be max_memory / 64
    config.cache.rules = vec![CacheRule {
        tables: Some(vec!["big".into()]),
        ttl: Some(Duration::from_secs(600)),
        ..Default::default()
    }];
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    // Fill the entry, read a hit in full, and settle the allocator.
    let mut warm = Raw::login(&server).await;
    for _ in 0..3 {
        assert_eq!(warm.simple(SQL).await.len(), ENTRY);
    }

    // Cache hits: 100 requests in one write, nothing read.
    let baseline = rss();
    let mut mute = Raw::login(&server).await;
    let requests: Vec<u8> = (0..REQUESTS).flat_map(|_| query(SQL)).collect();
    mute.send(&requests).await;
    let grown = growth_once_paused(&server, 0, baseline).await;
    eprintln!(
        "cache hits: RSS grew {} KiB while the client did not read",
        grown >> 10
    );
    assert!(
        grown <= RSS_BOUND,
        "pgtide held {} MiB for a client that does not read (bound {} MiB)",
        grown >> 20,
        RSS_BOUND >> 20
    );
    // Once it reads, every answer arrives, in full and in order.
    for i in 0..REQUESTS {
        let reply = mute.reader.until_ready().await.expect("a reply");
        let rows = s::raw::first_column(&reply);
        assert!(rows.len() == 1 && rows[0].len() == ENTRY, "reply {i}");
    }

    // Answers to Sync: 4 million of them written by a client that reads nothing meanwhile.
    let paused_before = pauses(&server).await;
    let baseline = rss();
    let mut stream = tokio::net::TcpStream::connect(server.local_addr)
        .await
        .expect("connect");
    stream
        .write_all(&startup_message(RAW_USER, s::APP_DB))
        .await
        .expect("startup");
    let mut greeting = Vec::new();
    while !greeting.ends_with(b"Z\0\0\0\x05I") {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.expect("greeting");
        assert!(n > 0, "closed during the greeting");
        greeting.extend_from_slice(&chunk[..n]);
    }
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        let syncs = s::raw::msg(b'S', &[]).repeat(SYNCS / 100);
        for _ in 0..100 {
            w.write_all(&syncs).await.expect("write Syncs");
        }
        w
    });
    let grown = growth_once_paused(&server, paused_before, baseline).await;
    eprintln!(
        "Syncs: RSS grew {} KiB while the client did not read",
        grown >> 10
    );
    assert!(
        grown <= RSS_BOUND,
        "pgtide held {} MiB for a client that does not read (bound {} MiB)",
        grown >> 20,
        RSS_BOUND >> 20
    );
    // Reading drains it all: one ReadyForQuery per Sync.
    let want = SYNCS * 6;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let mut tail = Vec::new();
    while got < want {
        let n = s::within(
            "ReadyForQuery stream",
            Duration::from_secs(30),
            r.read(&mut buf),
        )
        .await
        .expect("read");
        assert!(n > 0, "closed after {got} bytes");
        tail.extend_from_slice(&buf[..n]);
        let whole = tail.len() - tail.len() % 6;
        assert!(
            tail[..whole].chunks(6).all(|z| z == b"Z\0\0\0\x05I"),
            "only ReadyForQuery 'I' expected"
        );
        tail.drain(..whole);
        got += n;
    }
    let w = writer.await.expect("writer");
    drop((r, w));
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Times one pipeline prepares and closes the same statement: pgtide answers all but the first
/// Parse itself (and the Closes), queued behind the first Parse's reply, which PostgreSQL only
/// sends at a Flush or Sync (400 KB of answers, over the high-water mark).
const ROUNDS: usize = 40_000;

/// Writes ROUNDS Parse + Close and a Sync while reading: the replies' tags, counted, and the
/// last one.
async fn many_parses(addr: std::net::SocketAddr, user: &str) -> (usize, usize, u8) {
    let raw = Raw::login_to(addr, user, s::APP_DB).await;
    let mut batch = Vec::new();
    for _ in 0..ROUNDS {
        batch.extend(s::raw::parse("again", "SELECT 1"));
        batch.extend(s::raw::msg(b'C', b"Sagain\0"));
    }
    batch.extend(s::raw::msg(b'S', &[]));
    let (mut reader, mut w) = (raw.reader, raw.w);
    // Written while the replies are read, as a pipelining client does once it blocks.
    let writer = tokio::spawn(async move {
        w.write_all(&batch).await.expect("write the pipeline");
        w
    });
    let (mut parsed, mut closed) = (0, 0);
    let last = loop {
        match reader.next().await {
            Some((b'1', _)) => parsed += 1,
            Some((b'3', _)) => closed += 1,
            Some((tag, _)) => break tag,
            None => break b'!',
        }
    };
    drop(writer.await.expect("writer"));
    (parsed, closed, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pipeline_of_answers_pgtide_writes_itself_is_not_stalled() {
    let cluster = s::cluster_with_schema("SELECT 1").await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()));
    let want = many_parses(direct, "trustuser").await;
    assert_eq!(want, (ROUNDS, ROUNDS, b'Z'), "PostgreSQL itself");
    let got = s::within(
        "the pipeline through pgtide",
        Duration::from_secs(60),
        many_parses(server.local_addr, RAW_USER),
    )
    .await;
    assert_eq!(got, want, "through pgtide");
    assert!(
        pauses(&server).await >= 1,
        "the backlog never reached the mark"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
