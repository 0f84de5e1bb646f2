//! The server's integration tests: one binary, real HTTP on real ports, the real `meterhook` binary.
#![allow(clippy::unwrap_used, missing_docs)]

mod auth;
mod cli;
mod config;
mod fleet;
mod helpers;
mod hostile;
mod overload;
mod reliability;
mod webhook;
