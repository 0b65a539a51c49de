//! The PostgreSQL side: one backend connection, the pools of them, each database's topology
//! (primary and replicas) and the health checks that keep it current.

pub(crate) mod conn;
pub(crate) mod health;
pub(crate) mod pass_through;
pub(crate) mod pool;
pub(crate) mod tls;
pub(crate) mod topology;
