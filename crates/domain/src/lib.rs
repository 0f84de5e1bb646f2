#![doc = include_str!("../README.md")]

mod distance;
mod reading;
mod rules;
mod timeline;

pub use distance::{Distance, DistanceError, DistanceUnit, UnknownUnit, MAX_METRES};
pub use reading::{Millis, Reading};
pub use rules::{decide, Decision, Neighbours, Policy, Side};
pub use timeline::{judge, Candidate, Judgement, Stored, Write};
