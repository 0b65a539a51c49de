//! The driver matrix: mainstream client drivers run a realistic script through pgtide in
//! transaction mode, eight connections at once over a pool of two backends. Each script
//! (drivers/) uses the driver's server-side named prepared statements, commits and rolls back,
//! keeps its own search_path, recovers from errors inside transactions, uses COPY where the
//! driver has it and opens many short connections; it checks every result and exits non-zero on
//! the first mismatch. Meanwhile the primary is sampled to check pgtide never opens more
//! backends than the pool size.
//!
//! The drivers are installed by `scripts/install-drivers`. A missing one fails its test, naming
//! what to install; with PGTIDE_DRIVERS_OPTIONAL=1 it is skipped instead (a "SKIPPED:" line on
//! stderr). PGTIDE_DRIVERS_DIRECT=1 points the scripts at PostgreSQL itself, to tell a driver
//! script's mistake from a pgtide bug.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgtide_config::PoolMode;
use pgtide_devcluster::Cluster;
use pgtide_suite as s;

/// Backends pgtide may open; the scripts use 8 connections at once.
const POOL_SIZE: usize = 2;
/// A script that has not finished by then hangs (they take seconds; nextest stops a test at 3 min).
const SCRIPT_LIMIT: Duration = Duration::from_secs(150);
const INSTALL: &str = "run scripts/install-drivers";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn drivers_dir() -> PathBuf {
    repo().join("target").join("drivers")
}

/// How to run one driver's script, or what is missing to run it.
struct Script {
    program: PathBuf,
    args: Vec<String>,
}

/// Whether `program args` runs and exits 0 (a runtime or module is there).
async fn runs(program: &Path, args: &[&str]) -> bool {
    tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn python_script(module: &str, file: &str) -> Result<Script, String> {
    let python = drivers_dir().join("venv").join("bin").join("python");
    if !python.exists() {
        return Err(format!(
            "no Python venv at {} ({INSTALL}; it needs python3 with venv, Debian: python3-venv)",
            python.display()
        ));
    }
    if !runs(&python, &["-c", &format!("import {module}")]).await {
        return Err(format!(
            "{module} is not importable in {} ({INSTALL}: pip install -r drivers/python/requirements.txt)",
            python.display()
        ));
    }
    Ok(Script {
        program: python,
        args: vec![repo()
            .join("drivers/python")
            .join(file)
            .display()
            .to_string()],
    })
}

async fn node_script() -> Result<Script, String> {
    let node = PathBuf::from("node");
    if !runs(&node, &["--version"]).await {
        return Err("node is not on PATH (Debian: apt-get install nodejs npm)".into());
    }
    let dir = repo().join("drivers/node");
    if !dir.join("node_modules/pg/package.json").exists() {
        return Err(format!(
            "node-postgres is not installed in {} ({INSTALL}: npm ci there)",
            dir.display()
        ));
    }
    Ok(Script {
        program: node,
        args: vec![dir.join("matrix.js").display().to_string()],
    })
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn java_script() -> Result<Script, String> {
    let java = PathBuf::from("java");
    if !runs(&java, &["-version"]).await {
        return Err("java is not on PATH (Debian: apt-get install default-jdk-headless)".into());
    }
    let jar = Path::new("/usr/share/java/postgresql.jar");
    if !jar.exists() {
        return Err(format!(
            "pgjdbc is missing at {} ({INSTALL}, or apt-get install libpostgresql-jdbc-java)",
            jar.display()
        ));
    }
    let classes = drivers_dir().join("java");
    let class = classes.join("Matrix.class");
    let source = repo().join("drivers/java/Matrix.java");
    match (modified(&class), modified(&source)) {
        (None, _) => {
            return Err(format!(
                "{} is not compiled ({INSTALL}; it needs javac)",
                source.display()
            ))
        }
        (Some(c), Some(s)) if c < s => {
            return Err(format!(
                "{} is older than its source ({INSTALL} to recompile)",
                class.display()
            ))
        }
        _ => {}
    }
    Ok(Script {
        program: java,
        args: vec![
            // A small JVM: two cores are shared with PostgreSQL, pgtide and another test.
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-cp".into(),
            format!("{}:{}", classes.display(), jar.display()),
            "Matrix".into(),
        ],
    })
}

/// Counts the backends the `app` role has open on the primary, every 20 ms, keeping the highest.
struct BackendSampler {
    max: Arc<AtomicI64>,
    samples: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl BackendSampler {
    async fn start(cluster: &Cluster) -> BackendSampler {
        let url = cluster.primary().url("postgres", "", "postgres");
        let client = s::connect(&url)
            .await
            .expect("superuser connection to the primary");
        let (max, samples) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
        let (m, n) = (max.clone(), samples.clone());
        let task = tokio::spawn(async move {
            loop {
                let row = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE usename = $1 AND backend_type = 'client backend'",
                        &[&s::APP_USER],
                    )
                    .await
                    .expect("sample pg_stat_activity");
                m.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
                n.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        BackendSampler { max, samples, task }
    }

    /// Stops sampling; returns (highest count seen, number of samples).
    fn stop(self) -> (i64, i64) {
        self.task.abort();
        (
            self.max.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Runs one driver's script through pgtide (transaction mode, POOL_SIZE backends) and asserts it
/// succeeded and that pgtide never had more than POOL_SIZE backends open.
async fn run_driver(driver: &str, script: Result<Script, String>) {
    let script = match script {
        Ok(script) => script,
        Err(missing) if flag("PGTIDE_DRIVERS_OPTIONAL") => {
            eprintln!("SKIPPED: {driver}: {missing}");
            return;
        }
        Err(missing) => panic!(
            "{driver} cannot run: {missing}. \
             (PGTIDE_DRIVERS_OPTIONAL=1 skips a missing driver instead of failing.)"
        ),
    };

    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| s::cluster(0))
            .await
            .expect("cluster task"),
    );
    let mut config = s::config(&cluster, PoolMode::Transaction, POOL_SIZE);
    // Eight clients share two backends on a loaded two-core machine: waiting is expected.
    config.pool.checkout_timeout = Duration::from_secs(20);
    let server = s::start(config).await;
    let direct = flag("PGTIDE_DRIVERS_DIRECT");
    let url = if direct {
        cluster
            .primary()
            .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB)
    } else {
        s::app_url(&server)
    };

    let sampler = BackendSampler::start(&cluster).await;
    let started = Instant::now();
    let child = tokio::process::Command::new(&script.program)
        .args(&script.args)
        .arg(&url)
        .env("PGTIDE_URL", &url)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{driver}: starting {}: {e}", script.program.display()));
    let out = s::within(
        &format!("the {driver} script"),
        SCRIPT_LIMIT,
        child.wait_with_output(),
    )
    .await
    .unwrap_or_else(|e| panic!("{driver}: waiting for the script: {e}"));
    let took = started.elapsed();
    let (max_backends, samples) = sampler.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let target = if direct {
        "PostgreSQL directly"
    } else {
        "pgtide"
    };
    eprintln!(
        "{driver} through {target} ({:?}, {took:.1?}, at most {max_backends} backends in \
         {samples} samples):\n{stdout}{stderr}",
        out.status
    );
    assert!(
        out.status.success(),
        "the {driver} script failed through {target} ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !stdout.trim().is_empty(),
        "the {driver} script printed no summary"
    );
    if !direct {
        assert!(samples > 0, "pg_stat_activity was never sampled");
        assert!(
            max_backends <= POOL_SIZE as i64,
            "pgtide had {max_backends} backends open for {}, pool size is {POOL_SIZE}",
            s::APP_USER
        );
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_prepared_statements() {
    run_driver(
        "psycopg 3",
        python_script("psycopg", "psycopg_matrix.py").await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg() {
    run_driver(
        "asyncpg",
        python_script("asyncpg", "asyncpg_matrix.py").await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_named_statements() {
    run_driver("node-postgres", node_script().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_server_prepared() {
    run_driver("pgjdbc", java_script().await).await;
}
