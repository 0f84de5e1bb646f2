#![doc = include_str!("../README.md")]

mod distance;
mod reading;
mod rules;

pub use distance::{Distance, DistanceError, DistanceUnit, UnknownUnit, MAX_METRES};
pub use reading::{Millis, Reading};
pub use rules::{decide, Decision, Neighbours, Policy, Side};
