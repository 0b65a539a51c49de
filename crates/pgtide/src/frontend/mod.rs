//! The client side up to a running session: the startup handshake and authentication, cancel
//! requests, and the registry of connected clients (SHOW CLIENTS).

pub(crate) mod auth;
pub(crate) mod auth_query;
pub(crate) mod cancel;
pub(crate) mod clients;
pub(crate) mod startup;
pub(crate) mod startup_settings;
pub(crate) mod tls;
