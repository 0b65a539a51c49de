//! Throwaway PostgreSQL primaries and streaming replicas from the machine's binaries.
//!
//! Used by `pgtide demo`, the integration tests and the benches. Synchronous on purpose
//! (std::process only): callers may or may not run a tokio runtime.
//!
//! ```no_run
//! use pgtide_devcluster::{Cluster, ClusterOptions};
//! let cluster = Cluster::start(ClusterOptions { replicas: 1, ..Default::default() })?;
//! cluster.primary().psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")?;
//! cluster.wait_for_replicas()?;
//! assert_eq!(cluster.replicas()[0].psql("SELECT count(*) FROM t")?, "1");
//! # Ok::<(), pgtide_devcluster::Error>(())
//! ```
//!
//! Layout: one temp dir per cluster, one `<name>/` per node holding `data/`, `postgres.log`
//! and the Unix socket. When running as root everything runs as the `postgres` OS user.

mod cluster;
mod env;
mod error;
mod node;
mod schema;
mod sys;
mod template;
mod watchdog;

pub use cluster::{Cluster, ClusterOptions};
pub use env::{bin_dir, free_port, BINDIR_ENV, SCRATCH_ENV};
pub use error::Error;
pub use node::Node;
pub use schema::sample_schema;

#[cfg(test)]
mod tests;
