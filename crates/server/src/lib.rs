#![doc = include_str!("../README.md")]

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod notify;
pub mod registration;
pub mod rejections;
pub mod routes;
pub mod startup;
pub mod state;
pub mod views;

pub use config::{Secret, Settings};
pub use startup::{Application, StartError};
