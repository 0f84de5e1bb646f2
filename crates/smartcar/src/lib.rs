#![doc = include_str!("../README.md")]

pub mod escape;
pub mod event;
mod json;
mod legacy;
pub mod limits;
mod odometer;
mod signal;
pub mod signature;
mod time;

pub use escape::{escaped, Escaped};
pub use event::{
    normalize_unit, parse_event, parse_event_with, DeliveryHeaders, Event, EventId, EventType,
    LimitError, Location, Meta, Mode, OdometerError, OdometerReading, ParseError, Signal,
    SignalError, SignalKind, SignalValue, Trigger, V2Odometer, V2Vehicle, VehicleErrorInfo,
    VehicleReading, DATA_AGE_HEADER, MAX_VALUES_PER_SIGNAL, ODOMETER_CODE, UNIT_SYSTEM_HEADER,
};
pub use signature::{
    hash_challenge, is_safe_challenge, sign, ChallengeAnswer, KeyError, SignatureCheck,
    SigningKeys, SIGNATURE_HEADER,
};
