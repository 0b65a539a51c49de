//! A primary plus streaming replicas in one temp dir, guarded by a watchdog.

use std::io::Write;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::env::{bin_dir, log_tail, run, scratch_dir, OsUser};
use crate::node::Node;
use crate::watchdog::Watchdog;
use crate::{sys, template, Error};

const POLL: Duration = Duration::from_millis(20);
const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start. `Default` is a lone primary.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Streaming replicas, each a `pg_basebackup -R` of the primary.
    pub replicas: usize,
    /// Extra postgresql.conf settings for every node, written last as `name = 'value'`
    /// (the value is quoted for you, e.g. `("shared_preload_libraries", "pg_stat_statements")`).
    pub settings: Vec<(String, String)>,
    /// Extra pg_hba.conf lines, placed before the defaults so they take precedence.
    pub hba: Vec<String>,
}

/// Throwaway PostgreSQL servers on loopback. Dropping it stops every node immediately and
/// removes the directory; if the process dies instead, the watchdog does the same.
pub struct Cluster {
    primary: Node,
    replicas: Vec<Node>,
    dir: Option<tempfile::TempDir>,
    watchdog: Option<Watchdog>,
}

impl Cluster {
    /// Starts a primary and `opts.replicas` replicas; returns once every node accepts
    /// connections and every replica shows up as streaming in the primary's
    /// pg_stat_replication.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, Error> {
        let bin = bin_dir()?;
        let user = OsUser::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("pgtide-cluster-")
            .tempdir_in(scratch_dir())
            .map_err(|e| Error::io("create cluster temp dir", e))?;
        let watchdog = Watchdog::spawn(dir.path())?;
        user.chown(dir.path())?;
        let primary = Node::new("primary", dir.path(), &bin, &user)?;
        // From here on an early return drops `cluster`, which cleans everything up.
        let mut cluster = Cluster {
            primary,
            replicas: Vec::with_capacity(opts.replicas),
            dir: Some(dir),
            watchdog: Some(watchdog),
        };
        let root = cluster.dir().to_owned();

        let primary = &mut cluster.primary;
        template::copy_to(&user, primary.data_dir(), &root)?;
        write_config(primary.data_dir(), &opts)?;
        primary.launch()?;

        for i in 1..=opts.replicas {
            let mut replica = Node::new(&format!("replica{i}"), &root, &bin, &user)?;
            let primary = &cluster.primary;
            let mut cmd = user.command(bin.join("pg_basebackup"), replica.dir());
            cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(primary.port().to_string())
                .arg("-D")
                .arg(replica.data_dir())
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
            run(cmd, None, Some(&primary.log_file()))?;
            replica.launch()?;
            cluster.replicas.push(replica);
        }
        cluster.wait_streaming()?;
        Ok(cluster)
    }

    pub fn primary(&self) -> &Node {
        &self.primary
    }

    /// To stop or restart the primary (failover tests).
    pub fn primary_mut(&mut self) -> &mut Node {
        &mut self.primary
    }

    pub fn replicas(&self) -> &[Node] {
        &self.replicas
    }

    /// Panics if `i` is out of range, like slice indexing.
    pub fn replica_mut(&mut self, i: usize) -> &mut Node {
        &mut self.replicas[i]
    }

    /// The cluster's temp dir (one subdirectory per node).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Blocks until every running replica has replayed everything the primary has written
    /// so far (30 s deadline).
    pub fn wait_for_replicas(&self) -> Result<(), Error> {
        // synchronous_commit is off cluster-wide, so recent commits may still sit in WAL
        // buffers and walsenders only ship flushed WAL. A synchronous commit of a transaction
        // that wrote WAL (a transactional logical message, ignored by physical replicas)
        // flushes everything before it; the flush LSN is then a record end the replica reaches.
        let out = self.primary.psql(
            "SET synchronous_commit = on; \
             SELECT pg_logical_emit_message(true, 'pgtide-devcluster', 'sync'); \
             SELECT pg_current_wal_flush_lsn();",
        )?;
        let lsn = out.lines().last().unwrap_or_default().trim().to_owned();
        let check = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        for replica in self.replicas.iter().filter(|r| r.is_running()) {
            loop {
                let last = replica.psql(&check);
                if matches!(&last, Ok(t) if t == "t") {
                    break;
                }
                if Instant::now() > deadline {
                    let state = match last {
                        Ok(v) => format!("replay_lsn >= target: {v}"),
                        Err(e) => e.to_string(),
                    };
                    return Err(Error::Timeout {
                        what: format!("{} to replay up to {lsn} ({state})", replica.name()),
                        timeout: CATCH_UP_TIMEOUT,
                        log: log_tail(&replica.log_file()),
                    });
                }
                sleep(POLL);
            }
        }
        Ok(())
    }

    fn wait_streaming(&self) -> Result<(), Error> {
        if self.replicas.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("'{}'", r.cluster_name()))
            .collect();
        let query = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ({})",
            names.join(", ")
        );
        let want = self.replicas.len().to_string();
        let deadline = Instant::now() + STREAMING_TIMEOUT;
        loop {
            let got = self.primary.psql(&query)?;
            if got == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self
                    .replicas
                    .iter()
                    .map(|r| log_tail(&r.log_file()))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(Error::Timeout {
                    what: format!("{want} replicas to stream from the primary ({got} streaming)"),
                    timeout: STREAMING_TIMEOUT,
                    log,
                });
            }
            sleep(POLL);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate shutdown of all nodes at once, then wait for each: no checkpoints, no
        // waiting for walsenders, nothing worth keeping in a throwaway cluster.
        let nodes = || std::iter::once(&self.primary).chain(self.replicas.iter());
        nodes().for_each(Node::signal_immediate);
        for node in nodes() {
            let _ = node.shutdown(sys::SIGQUIT);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        drop(self.watchdog.take());
    }
}

/// Appends our settings to the copied postgresql.conf and rewrites pg_hba.conf. Writing into
/// the existing files keeps their owner (the server user) when we run as root.
fn write_config(data: &Path, opts: &ClusterOptions) -> Result<(), Error> {
    let mut conf = String::from("\n# pgtide-devcluster: fast and disposable, loopback only\n");
    let base = [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("wal_level", "replica"),
        ("max_wal_senders", "10"),
        // A stopped replica can catch up from the primary's pg_wal after a restart.
        ("wal_keep_size", "128MB"),
        ("hot_standby", "on"),
        ("max_connections", "300"),
        ("shared_buffers", "32MB"),
        ("logging_collector", "off"),
        ("log_destination", "stderr"),
        ("log_min_messages", "warning"),
    ];
    let settings = base
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain(opts.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (key, value) in settings {
        conf.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
    }
    append(&data.join("postgresql.conf"), &conf, false)?;

    let mut hba: Vec<&str> = opts.hba.iter().map(String::as_str).collect();
    hba.extend([
        "host all postgres 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 scram-sha-256",
        "local all all trust",
    ]);
    append(&data.join("pg_hba.conf"), &(hba.join("\n") + "\n"), true)
}

fn append(path: &Path, text: &str, truncate: bool) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}
