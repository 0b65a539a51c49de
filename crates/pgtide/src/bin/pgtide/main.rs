//! The pgtide binary: CLI and environment, signals, `check` and `demo`. The server itself is
//! the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgtide_config::{Config, Overrides};
use tokio::signal::unix::{signal, SignalKind};

mod demo;

#[derive(Parser, Debug)]
#[command(
    name = "pgtide",
    version,
    about = "PostgreSQL pooler with read routing, caching and query insights"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
struct RunArgs {
    /// TOML config file.
    #[arg(long, env = "PGTIDE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address clients connect to (default 0.0.0.0:6432).
    #[arg(long, env = "PGTIDE_LISTEN", global = true)]
    listen: Option<String>,
    /// Primary URL: postgres://USER:PASS@HOST:PORT/DB
    #[arg(long, env = "PGTIDE_PRIMARY_URL", global = true)]
    primary: Option<String>,
    /// Replica URL, optionally with #weight=N; repeat for several (env: comma-separated).
    #[arg(
        long = "replica",
        env = "PGTIDE_REPLICA_URLS",
        value_delimiter = ',',
        global = true
    )]
    replicas: Vec<String>,
    /// Bearer token for /metrics, /dashboard and /api (server.http_auth_token); read from the
    /// environment only, so it never shows in a process list.
    #[arg(skip = std::env::var("PGTIDE_HTTP_AUTH_TOKEN").ok().filter(|t| !t.is_empty()))]
    http_auth_token: Option<String>,
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen.clone(),
            primary_url: self.primary.clone(),
            replica_urls: self.replicas.clone(),
            http_auth_token: self.http_auth_token.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the config and print every problem (exit 1 on any).
    Check,
    /// Start a throwaway primary + replica with a sample schema and pgtide in front of them.
    Demo,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGTIDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check) => check(&cli.run),
        Some(Command::Demo) => {
            runtime(&Default::default()).and_then(|rt| rt.block_on(demo::run(cli.run.listen)))
        }
        None => match load(&cli.run) {
            Ok(config) => {
                runtime(&config.server).and_then(|rt| rt.block_on(serve(config, cli.run)))
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                Err(anyhow::anyhow!(
                    "invalid configuration ({} problem(s))",
                    problems.len()
                ))
            }
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgtide: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One session thread runs on tokio's current-thread scheduler: no work stealing, no wake-ups
/// across threads, the least CPU per transaction (`server.worker_threads` in config/pgtide.toml).
fn runtime(server: &pgtide_config::ServerConfig) -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = server.session_threads(cpus);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    tracing::debug!(threads, cpus, "session threads");
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn load(args: &RunArgs) -> Result<Config, Vec<pgtide_config::Problem>> {
    Config::load(&args.overrides())
}

fn check(args: &RunArgs) -> anyhow::Result<std::process::ExitCode> {
    match load(args) {
        Ok(config) => {
            println!("config OK");
            for line in config.access_summary() {
                println!("access: {line}");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            println!("{} problem(s)", problems.len());
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

async fn serve(config: Config, args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let server = pgtide::start(config)
        .await
        .context("binding the listener")?;
    let how = wait_for_signals(&server, &args).await?;
    server.shutdown(how).await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Serves SIGHUP reloads until SIGTERM (drain) or SIGINT (immediate stop).
pub(crate) async fn wait_for_signals(
    server: &pgtide::ServerHandle,
    args: &RunArgs,
) -> anyhow::Result<pgtide::Shutdown> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // RELOAD and SHUTDOWN from the admin console.
    let mut console = server.shared.control.listen();
    loop {
        tokio::select! {
            Some(request) = console.recv() => match request {
                pgtide::Control::Reload(answer) => {
                    let outcome = match load(args) {
                        Ok(config) => Ok(format!("{:?}", server.reload(config).live)),
                        Err(problems) => Err(problems
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")),
                    };
                    let _ = answer.send(outcome);
                }
                pgtide::Control::Shutdown => {
                    tracing::info!("SHUTDOWN from the admin console: draining");
                    return Ok(pgtide::Shutdown::Drain);
                }
            },
            _ = hup.recv() => match load(args) {
                Ok(config) => { server.reload(config); }
                Err(problems) => {
                    for p in &problems {
                        tracing::error!(problem = %p, "reload rejected; keeping the running config");
                    }
                }
            },
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining");
                return Ok(pgtide::Shutdown::Drain);
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                return Ok(pgtide::Shutdown::Immediate);
            }
        }
    }
}
