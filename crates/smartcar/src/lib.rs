#![doc = include_str!("../README.md")]

pub mod event;
mod json;
mod signal;
pub mod signature;
mod time;

pub use event::{
    normalize_unit, parse_event, Event, EventId, EventType, Location, Meta, Mode, OdometerError,
    OdometerReading, ParseError, Signal, SignalError, SignalKind, SignalValue, Trigger,
    VehicleErrorInfo, ODOMETER_CODE,
};
pub use signature::{
    hash_challenge, is_safe_challenge, sign, ChallengeAnswer, KeyError, SignatureCheck,
    SigningKeys, SIGNATURE_HEADER,
};
