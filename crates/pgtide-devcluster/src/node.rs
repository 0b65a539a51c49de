//! One PostgreSQL server: its directory, port, process and a psql helper.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::env::{free_port, log_tail, run, show, OsUser};
use crate::{sys, Error};

const POLL: Duration = Duration::from_millis(15);
/// Generous: under `cargo test` on 2 cores dozens of servers may be starting at once, and a
/// restart after an immediate stop includes crash recovery.
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 6;

/// A running (or stopped) PostgreSQL server of a [`crate::Cluster`].
#[derive(Debug)]
pub struct Node {
    name: String,
    /// `<cluster dir>/<name>`: holds `data/`, the server log and the Unix socket.
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    bin: PathBuf,
    user: OsUser,
    /// The postmaster, spawned directly so we know its pid without trusting postmaster.pid.
    child: Mutex<Option<Child>>,
}

enum LaunchError {
    PortTaken(Error),
    Other(Error),
}

impl Node {
    pub(crate) fn new(
        name: &str,
        cluster_dir: &Path,
        bin: &Path,
        user: &OsUser,
    ) -> Result<Node, Error> {
        let dir = cluster_dir.join(name);
        std::fs::create_dir(&dir).map_err(|e| Error::io(format!("mkdir {}", dir.display()), e))?;
        user.chown(&dir)?;
        Ok(Node {
            name: name.to_owned(),
            data: dir.join("data"),
            dir,
            port: free_port(),
            bin: bin.to_owned(),
            user: user.clone(),
            child: Mutex::new(None),
        })
    }

    /// Always "127.0.0.1": the servers listen on loopback only.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user:password@127.0.0.1:port/db`, user, password and db percent-encoded.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            encode(user),
            encode(password),
            self.host(),
            self.port,
            encode(db)
        )
    }

    /// Runs SQL through `psql` as superuser `postgres` on database "postgres"; returns the
    /// trimmed unaligned, tuples-only output. Statements run one by one (autocommit), so
    /// CREATE DATABASE and friends work; the first error aborts with psql's stderr.
    pub fn psql(&self, sql: &str) -> Result<String, Error> {
        self.psql_db("postgres", sql)
    }

    /// Like [`Node::psql`] on another database.
    pub fn psql_db(&self, db: &str, sql: &str) -> Result<String, Error> {
        let mut cmd = self.user.command(self.bin.join("psql"), &self.dir);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", "postgres", "-d"])
        // A conninfo string so a db name containing '=' is not taken for one.
        .arg(format!(
            "dbname='{}'",
            db.replace('\\', "\\\\").replace('\'', "\\'")
        ))
        .args(["-f", "-"]);
        run(cmd, Some(sql), None).map(|out| out.trim().to_owned())
    }

    /// Fast shutdown (SIGINT); waits until the server has exited. Idempotent.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.shutdown(sys::SIGINT)
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    /// A no-op if it is running.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.is_running() {
            return Ok(());
        }
        match self.launch_once() {
            Ok(()) => Ok(()),
            Err(LaunchError::PortTaken(e) | LaunchError::Other(e)) => Err(e),
        }
    }

    pub fn is_running(&self) -> bool {
        match self.lock().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's stderr log (also where start-up failures are explained).
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `cluster_name`, which a replica's walreceiver also reports as its application_name.
    pub(crate) fn cluster_name(&self) -> String {
        format!("pgtide_{}", self.name)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// First start: like [`Node::start`], but a port lost to a concurrent process is replaced
    /// by a fresh one (callers have not handed the port out yet).
    pub(crate) fn launch(&mut self) -> Result<(), Error> {
        for _ in 1..PORT_ATTEMPTS {
            match self.launch_once() {
                Ok(()) => return Ok(()),
                Err(LaunchError::PortTaken(_)) => self.port = free_port(),
                Err(LaunchError::Other(e)) => return Err(e),
            }
        }
        self.launch_once()
            .map_err(|(LaunchError::PortTaken(e) | LaunchError::Other(e))| e)
    }

    fn launch_once(&mut self) -> Result<(), LaunchError> {
        let other = LaunchError::Other;
        let log_path = self.log_file();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| other(Error::io(format!("open {}", log_path.display()), e)))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(|e| other(Error::io("dup log fd", e)))?;

        // Per-node settings go on the command line: replicas inherit postgresql.conf from
        // the primary through pg_basebackup, and the command line wins over it.
        let mut cmd = self.user.command(self.bin.join("postgres"), &self.dir);
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-h", "127.0.0.1", "-c"])
            .arg(format!("cluster_name={}", self.cluster_name()))
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Own process group: Ctrl-C on the terminal goes to the owner, who stops us.
            .process_group(0);
        let shown = show(&cmd);
        let child = cmd
            .spawn()
            .map_err(|e| other(Error::io(format!("spawn `{shown}`"), e)))?;
        let pid = child.id();
        *self.lock() = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Bound first: an `if let` scrutinee would keep the guard alive in the block.
            let exited = self
                .lock()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                *self.lock() = None;
                let new_log = log_since(&log_path, log_start);
                let err = Error::Start {
                    node: format!("{} (port {})", self.name, self.port),
                    reason: format!("`{shown}` exited with {status}"),
                    log: new_log.clone(),
                };
                let port_taken = new_log.contains("could not bind")
                    || new_log.contains("Address already in use");
                return Err(if port_taken {
                    LaunchError::PortTaken(err)
                } else {
                    other(err)
                });
            }
            if self.ready(pid) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.shutdown(sys::SIGQUIT);
                return Err(other(Error::Timeout {
                    what: format!("{} (port {}) to accept connections", self.name, self.port),
                    timeout: START_TIMEOUT,
                    log: log_since(&log_path, log_start),
                }));
            }
            sleep(POLL);
        }
    }

    /// The same check `pg_ctl -w` makes: postmaster.pid names our pid and its status line
    /// says "ready" (primary) or "standby" (hot standby accepting read-only connections).
    fn ready(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str())
            && matches!(lines.get(7).map(|l| l.trim()), Some("ready" | "standby"))
    }

    /// Sends `sig` (SIGINT = fast, SIGQUIT = immediate) and waits for the postmaster to exit;
    /// escalates to immediate shutdown if a fast one hangs.
    pub(crate) fn shutdown(&self, sig: libc::c_int) -> Result<(), Error> {
        let mut guard = self.lock();
        let Some(child) = guard.as_mut() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            *guard = None;
            return Ok(());
        }
        sys::signal(child.id(), sig);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut escalated = sig == sys::SIGQUIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(5)),
                Ok(None) if !escalated => {
                    escalated = true;
                    sys::signal(child.id(), sys::SIGQUIT);
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Err(e) => return Err(Error::io(format!("wait for {}", self.name), e)),
            }
        }
        *guard = None;
        Ok(())
    }

    /// Like signal + wait, but only the signal: lets a cluster stop all nodes concurrently.
    pub(crate) fn signal_immediate(&self) {
        if let Some(child) = self.lock().as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                sys::signal(child.id(), sys::SIGQUIT);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock leaves the Option intact; keep using it.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.shutdown(sys::SIGQUIT);
    }
}

fn log_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if text.trim().is_empty() {
        log_tail(path)
    } else {
        text.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_moves_off_a_taken_port() {
        let bin = crate::bin_dir().expect("binaries");
        let user = OsUser::detect().expect("user");
        let dir = tempfile::tempdir().expect("temp dir");
        user.chown(dir.path()).expect("chown");
        let mut node = Node::new("n", dir.path(), &bin, &user).expect("node");
        crate::template::copy_to(&user, &node.data, dir.path()).expect("copy template");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken_port = taken.local_addr().expect("addr").port();
        node.port = taken_port;
        node.launch().expect("starts on another port");
        assert_ne!(node.port(), taken_port);
        assert_eq!(node.psql("SELECT 1").expect("query"), "1");
        assert!(std::fs::read_to_string(node.log_file())
            .expect("log")
            .contains("could not bind"));
        // start() keeps the port, so a taken port is an error there.
        node.stop().expect("stop");
        node.port = taken_port;
        let err = node.start().expect_err("port is taken");
        assert!(err.to_string().contains("Address already in use"), "{err}");
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(encode("app"), "app");
        assert_eq!(encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }
}
