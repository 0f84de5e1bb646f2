//! What an odometer signal gives: a reading dated as it can be trusted, or why there is none.
//! Shared by the v4 signals ([`crate::Event::odometer_reading_with`]) and the v2 data
//! ([`crate::V2Odometer::reading`]).

use meterhook_domain::{ClockCorrection, DistanceError, Reading};

/// Why an odometer signal gave no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OdometerError {
    /// The car or Smartcar reported the signal as failed.
    #[error("odometer signal failed ({})", describe(error_type, code))]
    SignalFailed {
        /// `status.error.type`.
        error_type: Option<String>,
        /// `status.error.code`.
        code: Option<String>,
    },
    /// `body.value` is absent or not a number.
    #[error("odometer signal has no numeric value")]
    MissingValue,
    /// `body.unit` is absent.
    #[error("odometer signal has no unit")]
    MissingUnit,
    /// `body.unit` is not a distance unit.
    #[error("odometer unit {0:?} is not a known distance unit")]
    UnknownUnit(String),
    /// A v2 `sc-unit-system` that is neither `metric` nor `imperial`.
    #[error("unit system {0:?} is neither metric nor imperial")]
    UnknownUnitSystem(String),
    /// The value is not a valid distance.
    #[error("odometer value rejected: {0}")]
    Distance(#[from] DistanceError),
}

fn describe(error_type: &Option<String>, code: &Option<String>) -> String {
    match (error_type, code) {
        (Some(t), Some(c)) => format!("{t}: {c}"),
        (Some(s), None) | (None, Some(s)) => s.clone(),
        (None, None) => "no reason given".to_owned(),
    }
}

/// An odometer reading and how its time was corrected, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OdometerReading {
    /// The distance and the time it is dated with.
    pub reading: Reading,
    /// Set when the car's own observation time was not trusted; worth a line in the sync log.
    pub correction: Option<ClockCorrection>,
}
