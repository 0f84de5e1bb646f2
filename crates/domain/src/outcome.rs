//! What became of an event: the business vocabulary every layer stores, counts and shows.

use std::fmt;
use std::str::FromStr;

use crate::Decision;

/// What became of an event; stored as text in `smartcar_webhook_events.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored, not processed yet (or waiting for a retry).
    Pending,
    /// A meter entry was created.
    Created,
    /// The same reading was already recorded within the duplicate window; skipped.
    Duplicate,
    /// The reading contradicts its neighbours in time; kept out.
    OutOfSequence,
    /// The reading implies an impossible speed from its nearest neighbour; kept out.
    ImplausibleJump,
    /// The Smartcar vehicle is not registered; processed again when it is.
    UnknownVehicle,
    /// The Smartcar vehicle is registered but deactivated.
    InactiveVehicle,
    /// A state event without an odometer signal (other signals only).
    NoOdometer,
    /// The odometer signal was present but unusable (unknown unit, bad value or time).
    InvalidReading,
    /// Smartcar reported the odometer signal as failed (`status.value: "ERROR"`, e.g. a missing
    /// permission, or the car or Smartcar not answering): nothing to judge, not meterhook's error.
    OdometerUnavailable,
    /// A test delivery (`meta.mode: TEST`, v2 `mode: test`): kept, its signals kept and marked as
    /// test, no meter entry.
    TestEvent,
    /// A VEHICLE_ERROR was recorded against its vehicle.
    VehicleErrorRecorded,
    /// An event type meterhook keeps but does not act on.
    Ignored,
    /// A signed body that is not a JSON object; kept as received.
    Malformed,
    /// A signed delivery Smartcar sent longer ago than any event meterhook may have pruned: a
    /// replay of an old capture, whose id no longer stops it. Kept for audit, nothing done.
    Replayed,
    /// Processing failed on every attempt; waits for `events reprocess`.
    Dead,
    /// Self-healing outvoted an accepted entry: the readings it refused agree with each other, so
    /// it was voided and they were accepted. Only a sync log has it; no event ends with it.
    Superseded,
}

impl Outcome {
    /// Every outcome, for listings and metrics.
    pub const ALL: [Outcome; 17] = [
        Outcome::Pending,
        Outcome::Created,
        Outcome::Duplicate,
        Outcome::OutOfSequence,
        Outcome::ImplausibleJump,
        Outcome::UnknownVehicle,
        Outcome::InactiveVehicle,
        Outcome::NoOdometer,
        Outcome::InvalidReading,
        Outcome::OdometerUnavailable,
        Outcome::TestEvent,
        Outcome::VehicleErrorRecorded,
        Outcome::Ignored,
        Outcome::Malformed,
        Outcome::Replayed,
        Outcome::Dead,
        Outcome::Superseded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Created => "created",
            Outcome::Duplicate => "duplicate",
            Outcome::OutOfSequence => "out_of_sequence",
            Outcome::ImplausibleJump => "implausible_jump",
            Outcome::UnknownVehicle => "unknown_vehicle",
            Outcome::InactiveVehicle => "inactive_vehicle",
            Outcome::NoOdometer => "no_odometer",
            Outcome::InvalidReading => "invalid_reading",
            Outcome::OdometerUnavailable => "odometer_unavailable",
            Outcome::TestEvent => "test_event",
            Outcome::VehicleErrorRecorded => "vehicle_error_recorded",
            Outcome::Ignored => "ignored",
            Outcome::Malformed => "malformed",
            Outcome::Replayed => "replayed",
            Outcome::Dead => "dead",
            Outcome::Superseded => "superseded",
        }
    }

    /// Whether the event failed: its data could not be used or processing gave up.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::InvalidReading | Outcome::Malformed | Outcome::Replayed | Outcome::Dead
        )
    }

    /// The outcome of an odometer decision.
    pub fn of(decision: &Decision) -> Outcome {
        match decision {
            Decision::Accept { .. } => Outcome::Created,
            Decision::Duplicate { .. } => Outcome::Duplicate,
            Decision::OutOfSequence { .. } => Outcome::OutOfSequence,
            Decision::ImplausibleJump { .. } => Outcome::ImplausibleJump,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("nope".parse::<Outcome>().is_err());
    }
}
