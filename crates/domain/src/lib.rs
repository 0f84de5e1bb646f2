#![doc = include_str!("../README.md")]

mod clock;
mod distance;
mod reading;
mod rules;
mod supersession;
mod timeline;

pub use clock::{trusted_time, ClockCorrection, TimeSource, TrustedTime, DEFAULT_MAX_CLOCK_SKEW};
pub use distance::{Distance, DistanceError, DistanceUnit, UnknownUnit, MAX_METRES};
pub use reading::{Millis, Reading};
pub use rules::{decide, Decision, Neighbours, Policy, Side};
pub use supersession::{agreeing, supersession, Supersession};
pub use timeline::{judge, Candidate, Judgement, Stored, Write};
