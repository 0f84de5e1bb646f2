//! Time: UTC timestamps written from Rust, and the domain's instants.

use chrono::{DateTime, NaiveDateTime, Utc};
use meterhook_domain::Millis;

/// The current time in UTC, to the microsecond (PostgreSQL's resolution).
pub fn now() -> NaiveDateTime {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros())
        .unwrap_or(now)
        .naive_utc()
}

/// A domain instant as a UTC timestamp; `None` outside chrono's range.
pub fn to_timestamp(at: Millis) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(at.0).map(|t| t.naive_utc())
}

/// A UTC timestamp as a domain instant.
pub fn to_millis(at: NaiveDateTime) -> Millis {
    Millis(at.and_utc().timestamp_millis())
}
