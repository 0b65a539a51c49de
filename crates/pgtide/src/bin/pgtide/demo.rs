//! `pgtide demo`: a throwaway primary and streaming replica from the machine's PostgreSQL
//! binaries, a sample schema, and pgtide in front, until Ctrl-C.

use anyhow::Context;
use pgtide_config::{BackendUrl, Config, DatabaseConfig, ReplicaConfig};
use pgtide_devcluster::{Cluster, ClusterOptions};

const USER: &str = "app";
const PASSWORD: &str = "app";
const DB: &str = "app";

pub async fn run(listen: Option<String>) -> anyhow::Result<std::process::ExitCode> {
    eprintln!("pgtide demo: starting a PostgreSQL primary and one streaming replica...");
    let cluster = tokio::task::spawn_blocking(start_cluster)
        .await
        .context("cluster setup task")??;
    let primary = BackendUrl::parse(&cluster.primary().url(USER, PASSWORD, DB))
        .map_err(|e| anyhow::anyhow!("primary URL: {e}"))?;
    let mut db = DatabaseConfig::new(DB, primary);
    for replica in cluster.replicas() {
        let url = BackendUrl::parse(&replica.url(USER, PASSWORD, DB))
            .map_err(|e| anyhow::anyhow!("replica URL: {e}"))?;
        db.replicas.push(ReplicaConfig { url, weight: 1 });
    }
    let mut config = Config::default();
    config.server.listen = listen.unwrap_or_else(|| "127.0.0.1:6432".into());
    config.databases.push(db);
    let problems = config.validate("demo");
    anyhow::ensure!(problems.is_empty(), "demo config invalid: {problems:?}");

    let server = pgtide::start(config)
        .await
        .context("binding pgtide's listener (is port 6432 taken? try --listen 127.0.0.1:0)")?;
    let addr = server.local_addr;
    println!();
    println!("  primary  : 127.0.0.1:{}", cluster.primary().port());
    for r in cluster.replicas() {
        println!("  replica  : 127.0.0.1:{} (streaming)", r.port());
    }
    println!("  pgtide   : {addr}");
    println!();
    println!("  DATABASE_URL=postgres://{USER}:{PASSWORD}@{addr}/{DB}");
    println!("  try:  psql \"postgres://{USER}:{PASSWORD}@{addr}/{DB}\" -c 'SELECT count(*) FROM orders'");
    println!("        pgbench -n -S -c 8 -T 10 \"postgres://{USER}:{PASSWORD}@{addr}/{DB}\"  (after pgbench -i)");
    println!();
    println!("  Ctrl-C stops pgtide and removes the cluster.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("pgtide demo: stopping");
    server.shutdown(pgtide::Shutdown::Immediate).await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .context("cluster teardown")?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn start_cluster() -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .context(
        "starting PostgreSQL (are the server binaries installed? apt-get install postgresql)",
    )?;
    let primary = cluster.primary();
    primary.psql(&format!(
        "CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'; CREATE DATABASE {DB} OWNER {USER};"
    ))?;
    primary.psql_db(
        DB,
        &format!("SET ROLE {USER}; {}", pgtide_devcluster::sample_schema()),
    )?;
    cluster.wait_for_replicas()?;
    Ok(cluster)
}
