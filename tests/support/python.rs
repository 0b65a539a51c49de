//! Runs a short Python script with the driver matrix's venv (target/drivers/venv, installed by
//! scripts/install-drivers), for tests that compare what a Python driver sees through pgtide with
//! what it sees on PostgreSQL directly. A missing venv fails the test, naming what to install;
//! with PGTIDE_DRIVERS_OPTIONAL=1 the caller gets `None` (and a "SKIPPED:" line) instead.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Bound on one script (they take a second or two).
const LIMIT: Duration = Duration::from_secs(120);

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/drivers/venv/bin/python")
}

/// Runs `script` (Python source) with `args`; returns its stdout, panicking with its output if
/// it exits non-zero. `None` when the venv is missing and PGTIDE_DRIVERS_OPTIONAL=1.
pub async fn run(what: &str, script: &str, args: &[&str]) -> Option<String> {
    let python = python();
    if !python.exists() {
        let missing = format!(
            "no Python venv at {} (run scripts/install-drivers)",
            python.display()
        );
        if std::env::var("PGTIDE_DRIVERS_OPTIONAL").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: {what}: {missing}");
            return None;
        }
        panic!("{what}: {missing}; PGTIDE_DRIVERS_OPTIONAL=1 skips instead");
    }
    let child = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: starting {}: {e}", python.display()));
    let out = crate::within(what, LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|e| panic!("{what}: waiting for python: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    Some(stdout)
}

/// Whether the venv is there (tests that count what scripts did need to know).
pub fn available() -> bool {
    python().exists()
}
