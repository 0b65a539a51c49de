//! These start real servers; each test owns its cluster, so they run in parallel.

use crate::{sample_schema, Cluster, ClusterOptions};

/// Pids of processes whose command line looks like a postgres server on `port`.
fn postgres_on_port(port: u16) -> Vec<String> {
    let port = port.to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_postgres = args.first().is_some_and(|a| a.ends_with(b"/postgres"));
        let on_port = args
            .windows(2)
            .any(|w| w[0] == b"-p" && w[1] == port.as_bytes());
        if is_postgres && on_port {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn primary_and_replica_lifecycle() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .expect("cluster starts");
    eprintln!("cluster with 1 replica started in {:?}", started.elapsed());
    let primary = cluster.primary();
    let replica = &cluster.replicas()[0];
    assert_ne!(primary.port(), replica.port());
    assert_eq!(primary.host(), "127.0.0.1");
    assert_eq!(
        primary.url("app", "s3cr@t", "app"),
        format!("postgres://app:s3cr%40t@127.0.0.1:{}/app", primary.port())
    );
    assert!(primary.log_file().exists());

    primary
        .psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')")
        .expect("write on primary");
    cluster.wait_for_replicas().expect("replica catches up");
    assert_eq!(
        replica.psql("SELECT v FROM t WHERE id = 1").expect("read"),
        "one"
    );
    assert_eq!(
        replica.psql("SELECT pg_is_in_recovery()").expect("query"),
        "t"
    );
    assert_eq!(
        primary.psql("SELECT pg_is_in_recovery()").expect("query"),
        "f"
    );
    let err = replica
        .psql("INSERT INTO t VALUES (9, 'nine')")
        .expect_err("replica is read-only");
    assert!(err.to_string().contains("read-only"), "{err}");

    // Stop and restart a replica on the same port; it catches up on what it missed.
    let port = replica.port();
    let r = cluster.replica_mut(0);
    r.stop().expect("stop");
    r.stop().expect("stop is idempotent");
    assert!(!r.is_running());
    assert!(postgres_on_port(port).is_empty());
    cluster
        .wait_for_replicas()
        .expect("stopped replicas are skipped");
    cluster
        .primary()
        .psql("INSERT INTO t VALUES (2, 'two')")
        .expect("write");
    let r = cluster.replica_mut(0);
    r.start().expect("restart");
    assert!(r.is_running());
    assert_eq!(r.port(), port);
    cluster.wait_for_replicas().expect("catch up after restart");
    assert_eq!(
        cluster.replicas()[0]
            .psql("SELECT count(*) FROM t")
            .expect("read"),
        "2"
    );

    let dir = cluster.dir().to_owned();
    let ports = [cluster.primary().port(), port];
    assert!(dir.exists());
    drop(cluster);
    assert!(!dir.exists(), "{} removed on drop", dir.display());
    for port in ports {
        assert_eq!(
            postgres_on_port(port),
            Vec::<String>::new(),
            "no server left on port {port}"
        );
    }
}

#[test]
fn clusters_start_concurrently() {
    let handles: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                Cluster::start(ClusterOptions::default()).expect("cluster starts")
            })
        })
        .collect();
    let clusters: Vec<Cluster> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_ne!(clusters[0].primary().port(), clusters[1].primary().port());
    assert_ne!(clusters[0].dir(), clusters[1].dir());
    for c in &clusters {
        assert_eq!(c.primary().psql("SELECT 1").expect("query"), "1");
        assert!(c.replicas().is_empty());
        c.wait_for_replicas()
            .expect("no replicas: nothing to wait for");
    }
}

#[test]
fn sample_schema_loads_twice() {
    let cluster = Cluster::start(ClusterOptions {
        settings: vec![("work_mem".into(), "8MB".into())],
        hba: vec!["host all reject_me 127.0.0.1/32 reject".into()],
        ..Default::default()
    })
    .expect("cluster starts");
    let p = cluster.primary();
    assert_eq!(p.psql("SHOW work_mem").expect("show"), "8MB");
    p.psql("CREATE DATABASE shop").expect("create database");
    for _ in 0..2 {
        p.psql_db("shop", sample_schema()).expect("schema loads");
    }
    let counts = p
        .psql_db(
            "shop",
            "SELECT (SELECT count(*) FROM countries) || ',' || (SELECT count(*) FROM users) || ',' \
             || (SELECT count(*) FROM products) || ',' || (SELECT count(*) FROM orders) || ',' \
             || (SELECT count(*) FROM order_items)",
        )
        .expect("counts");
    assert_eq!(counts, "20,300,200,500,1500");
}

#[test]
fn bad_setting_reports_server_log() {
    let err = Cluster::start(ClusterOptions {
        settings: vec![("shared_buffers".into(), "lots".into())],
        ..Default::default()
    })
    .err()
    .expect("start must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("server log tail") && msg.contains("shared_buffers"),
        "{msg}"
    );
}

const CHILD_ENV: &str = "PGTIDE_DEVCLUSTER_WATCHDOG_CHILD";

/// Helper for `servers_do_not_outlive_a_killed_owner`: does nothing unless run by it.
#[test]
#[ignore = "spawned by servers_do_not_outlive_a_killed_owner"]
fn watchdog_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .expect("cluster starts");
    println!(
        "CLUSTER {} {} {}",
        cluster.dir().display(),
        cluster.primary().port(),
        cluster.replicas()[0].port()
    );
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn servers_do_not_outlive_a_killed_owner() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::watchdog_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test");
    let stdout = child.stdout.take().expect("stdout");
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("CLUSTER "))
        .expect("child reports its cluster");
    let fields: Vec<&str> = line.split(' ').collect();
    let dir = std::path::PathBuf::from(fields[1]);
    let ports: Vec<u16> = fields[2..]
        .iter()
        .map(|p| p.parse().expect("port"))
        .collect();
    assert!(dir.exists());
    assert!(ports.iter().all(|p| !postgres_on_port(*p).is_empty()));

    child.kill().expect("SIGKILL the owner");
    child.wait().expect("reap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dir.exists() || ports.iter().any(|p| !postgres_on_port(*p).is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog cleaned up {}",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn handles_are_send_and_sync() {
    // Async tests keep clusters across .await points on multi-threaded runtimes.
    fn check<T: Send + Sync>() {}
    check::<Cluster>();
    check::<crate::Node>();
    check::<crate::Error>();
}
