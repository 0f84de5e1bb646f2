#![doc = include_str!("../README.md")]

mod clock;
mod distance;
mod outcome;
mod reading;
mod rules;
mod supersession;
mod timeline;

pub use clock::{trusted_time, ClockCorrection, TimeSource, TrustedTime, DEFAULT_MAX_CLOCK_SKEW};
pub use distance::{Distance, DistanceError, DistanceUnit, UnknownUnit, MAX_METRES};
pub use outcome::{Outcome, UnknownOutcome};
pub use reading::{Millis, Reading};
pub use rules::{decide, Decision, Neighbours, Policy, Side};
pub use supersession::{supersede, window as supersession_window, Supersession, Tally};
pub use timeline::{judge, Candidate, Judgement, Keep, Stored};
