//! A delivery as the store takes it: an event received now (or stored and taken up again),
//! already classified into the work it takes. The ingest crate makes them (`classify`); the store
//! writes them ([`crate::Tx::write_batch`]) and never classifies them again.

use chrono::NaiveDateTime;
use meterhook_domain::{ClockCorrection, Outcome, Reading};

use crate::{ErrorReport, NewSignal};

/// A classified delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Smartcar's `eventId` (or the body hash).
    pub event_id: String,
    /// Its type, as stored.
    pub event_type: String,
    /// The Smartcar vehicle it is about, when known.
    pub smartcar_vehicle_id: Option<String>,
    /// Whether it arrives now or is stored already.
    pub arrival: Arrival,
    /// What processing it takes.
    pub work: Work,
}

/// How a [`Delivery`] reaches the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Received now (or drained from the spool): stored with its outcome unless its id is known.
    Received {
        /// The raw body.
        payload: String,
        /// When it arrived.
        received_at: NaiveDateTime,
    },
    /// Stored and not processed yet (a retry, a reprocessing, a wait for its vehicle).
    Stored {
        /// Processing attempts so far.
        attempts: i32,
    },
}

/// The processing a [`Delivery`] takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Nothing but an outcome and, for a failure, why.
    Complete {
        /// The outcome.
        outcome: Outcome,
        /// Why, when it is a failure.
        error: Option<String>,
    },
    /// A vehicle state of [`Delivery::smartcar_vehicle_id`]: its signals kept while the vehicle
    /// is registered and active, its odometer reading (if any) judged by the rules.
    State {
        /// Every signal value to keep.
        signals: Vec<NewSignal>,
        /// Its odometer reading.
        odometer: Odometer,
        /// A test delivery: its signals are kept marked as test, nothing else is done
        /// (`test_event`).
        test: bool,
    },
    /// A VEHICLE_ERROR of [`Delivery::smartcar_vehicle_id`].
    Errors {
        /// The conditions reported.
        reports: Vec<ErrorReport>,
        /// The sync log's JSON data.
        data: String,
    },
}

/// The odometer of a vehicle state.
#[derive(Debug, Clone, PartialEq)]
pub enum Odometer {
    /// No odometer signal: `no_odometer`.
    Missing,
    /// An odometer signal that cannot be used: `invalid_reading`, with why.
    Unusable(String),
    /// An odometer signal the car or Smartcar reported as failed (`status: ERROR`):
    /// `odometer_unavailable`, with why; not an error of meterhook's.
    Unavailable(String),
    /// A reading for the rules. A time [`crate::to_timestamp`] cannot represent is
    /// `invalid_reading`.
    Reading {
        /// The reading.
        reading: Reading,
        /// How its time was corrected, when the car's clock was not trusted; kept in the sync log.
        correction: Option<ClockCorrection>,
    },
}

impl Delivery {
    /// Processing attempts made before this one.
    pub fn attempts(&self) -> i32 {
        match self.arrival {
            Arrival::Received { .. } => 0,
            Arrival::Stored { attempts } => attempts,
        }
    }

    /// The raw body and receipt time of one received now.
    pub fn received(&self) -> Option<(&str, NaiveDateTime)> {
        match &self.arrival {
            Arrival::Received {
                payload,
                received_at,
            } => Some((payload, *received_at)),
            Arrival::Stored { .. } => None,
        }
    }
}
