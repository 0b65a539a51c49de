//! The pgtide binary as a child process: started from a TOML file, its stderr collected, sent
//! signals, waited for.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// A pgtide process started from a TOML file, with its stderr collected.
pub struct Process {
    pub child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    pub port: u16,
}

impl Process {
    /// Starts the binary on `config_path` (listening on `port`) and waits until it accepts
    /// the app user; logs at `PGTIDE_LOG=info`.
    pub async fn start(config_path: &std::path::Path, port: u16) -> Process {
        Process::start_logging(config_path, port, "info").await
    }

    /// [`Process::start`] with the log filter `level` (`debug`, `trace`, ...).
    pub async fn start_logging(config_path: &std::path::Path, port: u16, level: &str) -> Process {
        let mut child = tokio::process::Command::new(crate::pgtide_binary())
            .arg("--config")
            .arg(config_path)
            .env_remove("PGTIDE_LISTEN")
            .env_remove("PGTIDE_PRIMARY_URL")
            .env_remove("PGTIDE_REPLICA_URLS")
            .env_remove("PGTIDE_CONFIG")
            .env("PGTIDE_LOG", level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pgtide");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&text);
            }
        });
        let mut process = Process { child, log, port };
        let url = process.url();
        let up = crate::eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move { crate::connect(&url).await.is_ok() }
        })
        .await;
        if !up {
            let status = process.child.try_wait();
            panic!(
                "pgtide did not accept connections (status {status:?}); log:\n{}",
                process.log()
            );
        }
        process
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            crate::APP_USER,
            crate::APP_PASSWORD,
            self.port,
            crate::APP_DB
        )
    }

    /// Waits up to `limit` until the log says `text` more than `seen` times.
    pub async fn log_says(&self, text: &str, seen: usize, limit: Duration) -> bool {
        let log = self.log.clone();
        crate::eventually(limit, || {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .matches(text)
                    .count()
                    > seen
            }
        })
        .await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pgtide still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {pid} failed");
    }

    /// Waits for the process to exit; panics with the log if it does not within `limit`.
    pub async fn exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait for pgtide"),
            Err(_) => panic!("pgtide still running after {limit:?}; log:\n{}", self.log()),
        }
    }
}
