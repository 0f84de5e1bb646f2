//! Readings: a distance and the moment the car observed it.

use std::fmt;

use crate::Distance;

/// A moment as whole milliseconds since the Unix epoch, UTC (Smartcar's own resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// Milliseconds in one second.
    pub const SECOND: i64 = 1_000;
    /// Milliseconds in one hour.
    pub const HOUR: i64 = 3_600_000;

    /// The signed interval `self - earlier` in milliseconds, saturating.
    pub fn since(self, earlier: Millis) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Millis {
    /// A UTC date-time for people, e.g. `2026-11-30 14:02:46 UTC` (with `.835` when it has
    /// milliseconds); an instant outside the calendar as its milliseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        let Some(t) = chrono::DateTime::from_timestamp_millis(self.0) else {
            return write!(f, "{}ms since 1970", self.0);
        };
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        match self.0.rem_euclid(Millis::SECOND) {
            0 => f.write_str(" UTC"),
            ms => write!(f, ".{ms:03} UTC"),
        }
    }
}

/// An odometer reading: what the car's odometer said, and when the car observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reading {
    /// The odometer value.
    pub distance: Distance,
    /// When the car observed the value (not when it reached us).
    pub observed_at: Millis,
}

impl Reading {
    /// A reading of `distance` observed at `observed_at`.
    pub fn new(distance: Distance, observed_at: Millis) -> Self {
        Reading {
            distance,
            observed_at,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.distance, self.observed_at)
    }
}
