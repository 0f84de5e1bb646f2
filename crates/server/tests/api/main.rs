//! The server's integration tests: one binary, real HTTP on real ports, the real `meterhook` binary.
#![allow(clippy::unwrap_used, missing_docs)]

mod auth;
mod backup;
mod changes;
mod cli;
mod config;
mod dashboard;
mod deploy;
mod docs;
mod doctor;
mod finding;
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
mod send_test_event;
mod status_page;
mod webhook;
