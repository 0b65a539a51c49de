//! pgtide: a PostgreSQL wire-protocol proxy. The library runs the whole server in-process
//! (used by `main.rs`, the end-to-end tests and the benches).

pub mod admin;
pub mod auth_verify;
pub mod backend;
pub mod cache;
pub mod cancel;
pub mod client_backlog;
pub mod client_startup;
pub mod client_statements;
pub mod clients;
pub mod error;
pub mod health;
pub mod http;
pub mod insights;
pub mod metrics_names;
pub mod pause;
pub mod pool;
pub mod relay;
pub mod replica_replay;
pub mod route_intent;
pub mod routing;
pub mod server;
pub mod session;
pub mod session_cache;
pub mod session_insights;
pub mod session_router;
pub mod session_state;
pub mod settings_replay;
pub mod shared;
pub mod stale_plan;
pub mod startup_settings;
pub mod statement_inject;
pub mod statements;
pub mod topology;

pub use server::{start, ServerHandle, Shutdown};
