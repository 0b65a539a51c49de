//! pgtide: a PostgreSQL wire-protocol proxy. The library runs the whole server in-process
//! (used by the `pgtide` binary, the end-to-end tests and the benches). Its API is
//! [`start`], the [`ServerHandle`] it returns and the config types; the modules are private.
//!
//! Layout: `frontend/` (client handshake, auth, cancel, client registry), `session/` (one
//! client's event loop and what it tracks), `routing/` (where a transaction runs), `upstream/`
//! (backend connections, pools, topology, health), `cache/`, `insights/`, `admin/` (console),
//! `http/` (metrics and API), `server/` (listener and the state all sessions share).

#![warn(unreachable_pub)]

mod admin;
mod cache;
mod error;
mod frontend;
mod http;
mod insights;
mod metrics_names;
mod net;
mod routing;
mod server;
mod session;
mod sqlstate;
mod upstream;

pub use admin::Control;
pub use pgtide_config as config;
pub use server::{start, ServerHandle, Shutdown};

/// Internals that the end-to-end tests and benches drive directly (not a stable API).
#[doc(hidden)]
pub mod internals {
    pub use crate::cache::{Hint, Key, Lookup, Policy, ResultCache};
    pub use crate::frontend::auth::{md5_hash, ScramSecret};
    pub use crate::insights::{ClientPatterns, Execution, Insights, Route};
    pub use crate::server::shared::primary_target;
    pub use crate::session::replies::{Completion, ReplyQueue, Verdict};
}
