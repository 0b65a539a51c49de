//! Where the PostgreSQL binaries live, which OS user runs them, and how commands are spawned.

use std::ffi::OsStr;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::{sys, Error};

/// Env var that overrides binary discovery (e.g. to test against another major version).
pub const BINDIR_ENV: &str = "PGTIDE_PG_BINDIR";

/// The directory holding the PostgreSQL server binaries (`initdb`, `postgres`, ...).
///
/// Order: `$PGTIDE_PG_BINDIR`, `pg_config --bindir`, then the highest
/// `/usr/lib/postgresql/*/bin`, then `/usr/local/pgsql/bin`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(find_bin_dir)
        .clone()
        .map_err(|searched| Error::NoBinaries { searched })
}

fn find_bin_dir() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        candidates.push(PathBuf::from(dir));
    }
    // Debian's pg_config comes with libpq-dev and may point at a version whose server
    // binaries are not installed, hence the has_server check below.
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versioned.into_iter().map(|(_, p)| p));
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));

    let has_server = |d: &Path| {
        ["initdb", "postgres", "pg_basebackup", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    candidates
        .iter()
        .find(|d| has_server(d))
        .cloned()
        .ok_or_else(|| {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            list.join(", ")
        })
}

/// Env var naming the directory under which cluster temp dirs are created.
pub const SCRATCH_ENV: &str = "PGTIDE_DEVCLUSTER_DIR";

/// Where cluster and template directories go: `$PGTIDE_DEVCLUSTER_DIR`, else `/dev/shm` when
/// it has at least 4 GiB free, else the system temp dir. Why tmpfs: copying a data directory
/// (template copy, pg_basebackup) took ~1 s on a disk-backed /tmp vs ~50 ms in memory, and
/// nothing here needs to survive a reboot. Docker's default 64 MB /dev/shm is skipped.
pub(crate) fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os(SCRATCH_ENV) {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        let roomy = Command::new("df")
            .args(["-Pk", "/dev/shm"])
            .output()
            .ok()
            .and_then(|out| available_kib(&String::from_utf8_lossy(&out.stdout)))
            .is_some_and(|kib| kib >= 4 * 1024 * 1024);
        if roomy && shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

/// The "Available" column of `df -Pk` output for a single filesystem.
fn available_kib(df: &str) -> Option<u64> {
    df.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// A port on 127.0.0.1 that was free a moment ago. Parallel callers can still race for it,
/// which is why node start-up retries with a new port when the bind fails.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The OS account the servers run as: ourselves, or `postgres` when we are root.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    /// `Some((uid, gid))` when we must drop privileges.
    switch_to: Option<(u32, u32)>,
    home: PathBuf,
}

impl OsUser {
    pub(crate) fn detect() -> Result<OsUser, Error> {
        if !sys::is_root() {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
            return Ok(OsUser {
                switch_to: None,
                home,
            });
        }
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| Error::NoPostgresUser(e.to_string()))?;
        parse_passwd(&passwd, "postgres")
            .map(|(uid, gid, home)| OsUser {
                switch_to: Some((uid, gid)),
                home,
            })
            .ok_or_else(|| Error::NoPostgresUser("not in /etc/passwd".into()))
    }

    /// Makes `path` belong to the server user (no-op unless we are root).
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        match self.switch_to {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", path.display()), e)),
            None => Ok(()),
        }
    }

    /// A command for `program` (a path) running as the server user with a scrubbed
    /// environment, so PGPASSWORD, PGHOST, PGSERVICE etc. of the caller cannot leak in.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("PGCLIENTENCODING", "UTF8")
            .current_dir(cwd)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.switch_to {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

fn parse_passwd(passwd: &str, name: &str) -> Option<(u32, u32, PathBuf)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 6 || f[0] != name {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?, PathBuf::from(f[5])))
    })
}

/// Runs `cmd` to completion (feeding `stdin` if given); Ok(stdout) on success, otherwise an
/// error carrying the command line, its stderr and `log`'s tail (if a server log is relevant).
pub(crate) fn run(
    mut cmd: Command,
    stdin: Option<&str>,
    log: Option<&Path>,
) -> Result<String, Error> {
    let shown = show(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("spawn `{shown}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (EPIPE) means the child exited early; its status and stderr explain why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("wait for `{shown}`"), e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::Command {
        command: shown,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        log: log.map(log_tail).unwrap_or_default(),
    })
}

/// The command line as a human would type it (program file name + args).
pub(crate) fn show(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        prog
    } else {
        format!("{prog} {}", args.join(" "))
    }
}

/// Last ~40 lines of a server log, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            parse_passwd(passwd, "postgres"),
            Some((101, 104, PathBuf::from("/var/lib/postgresql")))
        );
        assert_eq!(parse_passwd(passwd, "nobody"), None);
    }

    #[test]
    fn parses_df() {
        let df = "Filesystem 1024-blocks Used Available Capacity Mounted on\ntmpfs 65536 0 65536 0% /dev/shm\n";
        assert_eq!(available_kib(df), Some(65536));
        assert_eq!(available_kib(""), None);
    }

    #[test]
    fn finds_binaries_and_ports() {
        let dir = bin_dir().expect("PostgreSQL binaries installed");
        assert!(dir.join("initdb").is_file());
        assert_ne!(free_port(), 0);
    }
}
