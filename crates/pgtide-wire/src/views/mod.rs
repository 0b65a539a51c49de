//! Hand-parsed views of the few message bodies the proxy needs to look into. Each takes the
//! body (the bytes after tag and length, i.e. [`crate::Frame::body`]) and borrows from it where
//! it can. Layouts are checked exactly: a short, overlong or inconsistent body is an error,
//! never a panic and never an allocation sized by an unchecked count.

mod client;
mod server;

pub use client::*;
pub use server::*;
