//! PostgreSQL wire protocol for pgtide: framing, startup packets, views of the few message
//! bodies the proxy reads, and encoders into a caller's buffer.
//!
//! Pure functions over `bytes`: no I/O, no async, and no panics on any input, so every decoder
//! can be fed hostile bytes (see [`fuzz_decode_all`]).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod encode;
mod error;
mod frame;
mod fuzz;
mod reader;
mod startup;
pub mod tags;
mod views;

pub use error::*;
pub use frame::*;
pub use fuzz::fuzz_decode_all;
pub use startup::*;
pub use tags::{backend, frontend, status, target};
pub use views::*;
