//! The server's integration tests: one binary, real HTTP on real ports, the real `meterhook` binary.
#![allow(clippy::unwrap_used, missing_docs)]

mod auth;
mod backup;
mod changes;
mod cli;
mod config;
mod deploy;
mod doctor;
mod fleet;
mod helpers;
mod hostile;
mod notify;
mod openapi;
mod overload;
mod readings;
mod registrations;
mod reliability;
mod replays;
mod status_page;
mod webhook;
