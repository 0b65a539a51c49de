//! A tiny `sh` process per directory that cleans up after us if we die.
//!
//! The shell blocks reading a pipe whose write end only this process holds (Rust opens pipes
//! with O_CLOEXEC, so no other child inherits it). When we exit for any reason — normal
//! return, panic=abort, SIGKILL — the kernel closes the pipe, `read` returns, and the shell
//! immediately stops every server under the directory (SIGQUIT = PostgreSQL's immediate
//! shutdown) and deletes the directory. No polling, no orphaned postmasters in CI.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::Error;

const SCRIPT: &str = r#"
trap '' HUP INT
read -r _line
for f in "$1"/*/data/postmaster.pid; do
  [ -f "$f" ] && read -r pid < "$f" && kill -QUIT "$pid" 2>/dev/null
done
i=0
while [ "$i" -lt 100 ] && ls "$1"/*/data/postmaster.pid >/dev/null 2>&1; do
  sleep 0.1; i=$((i+1))
done
rm -rf "$1"
"#;

pub(crate) struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts guarding `dir`: its servers are stopped and it is removed once this process
    /// exits or the `Watchdog` is dropped (whichever comes first).
    pub(crate) fn spawn(dir: &Path) -> Result<Watchdog, Error> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pgtide-devcluster-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test run must not kill the guard first.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("spawn watchdog /bin/sh", e))?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, pipe })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe triggers the cleanup (a no-op if the owner already did it); then
        // reap the shell so it does not linger as a zombie.
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}
