//! The first phase of a batch, pure: from the deliveries, what is stored of their ids and the
//! vehicles they name, to a [`Plan`] of what each delivery takes. It decides the outcomes that
//! need no rules (redeliveries, unknown, inactive, test, no odometer, unusable readings) and
//! leaves the readings of active vehicles to be judged. No database, no clock.

use std::collections::{HashMap, HashSet};

use meterhook_domain::{ClockCorrection, Judgement, Outcome, Reading};

use crate::{to_timestamp, Arrival, Delivery, ErrorReport, Odometer, Vehicle, Work};

/// What is stored of a batch's event ids before it is written: whether each is processed.
pub(crate) type Seen = HashMap<String, bool>;

/// What a delivery's Smartcar vehicle is to meterhook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Registration<'a> {
    /// Not registered: `unknown_vehicle`, processed again when it is.
    Unknown,
    /// Registered, deactivated: `inactive_vehicle`; nothing of it is kept but the audit record.
    Inactive(&'a Vehicle),
    /// Registered and active.
    Active(&'a Vehicle),
}

impl<'a> Registration<'a> {
    fn of(vehicle: Option<&'a Vehicle>) -> Self {
        match vehicle {
            None => Registration::Unknown,
            Some(v) if !v.is_active => Registration::Inactive(v),
            Some(v) => Registration::Active(v),
        }
    }
}

/// A sync log to write for a step: its type and JSON data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncNote {
    pub sync_type: &'static str,
    pub data: String,
}

/// An odometer reading of an active vehicle, to be judged, then its judgement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    pub reading: Reading,
    pub correction: Option<ClockCorrection>,
    /// Set by the judging phase.
    pub judgement: Option<Judgement>,
}

/// One delivery's processing, decided before anything is written.
#[derive(Debug, Clone)]
pub(crate) struct Step<'a> {
    /// Its place in the batch.
    pub index: usize,
    pub delivery: &'a Delivery,
    pub registration: Registration<'a>,
    /// The outcome; for a reading to judge, set once it is judged.
    pub outcome: Outcome,
    /// Why, for a failure.
    pub error: Option<String>,
    /// Its sync log, when it has one; a judged reading's is made once it is judged.
    pub sync: Option<SyncNote>,
    /// Its odometer reading, when the rules are to judge it.
    pub reading: Option<Judged>,
    /// The conditions of a VEHICLE_ERROR to record.
    pub errors: Option<&'a [ErrorReport]>,
    /// Whether its signal values are kept (a state of a vehicle that is not deactivated).
    pub keeps_signals: bool,
}

impl<'a> Step<'a> {
    /// The vehicle whose entries and health this step changes: registered and active.
    pub(crate) fn active_vehicle(&self) -> Option<&'a Vehicle> {
        match self.registration {
            Registration::Active(v) => Some(v),
            _ => None,
        }
    }
}

/// What a batch takes, one step per delivery to process, in the batch's order.
#[derive(Debug, Clone)]
pub(crate) struct Plan<'a> {
    pub steps: Vec<Step<'a>>,
}

/// The deliveries to process: received ones whose id is new, stored ones still unprocessed,
/// each id once. The others are already received.
pub(crate) fn taken(deliveries: &[Delivery], seen: &Seen) -> Vec<bool> {
    let mut ids: HashSet<&str> = HashSet::with_capacity(deliveries.len());
    deliveries
        .iter()
        .map(|d| {
            let fresh = match d.arrival {
                Arrival::Received { .. } => !seen.contains_key(&d.event_id),
                Arrival::Stored { .. } => seen.get(&d.event_id) == Some(&false),
            };
            fresh && ids.insert(&d.event_id)
        })
        .collect()
}

/// The Smartcar vehicles the deliveries to process name, sorted, each once.
pub(crate) fn vehicles_named<'d>(deliveries: &'d [Delivery], taken: &[bool]) -> Vec<&'d str> {
    let mut ids: Vec<&str> = deliveries
        .iter()
        .zip(taken)
        .filter(|(d, take)| **take && !matches!(d.work, Work::Complete { .. }))
        .filter_map(|(d, _)| d.smartcar_vehicle_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl<'a> Plan<'a> {
    /// The plan of `deliveries`, given which are `taken` and the registered `vehicles` they name.
    pub(crate) fn new(
        deliveries: &'a [Delivery],
        taken: &[bool],
        vehicles: &'a [Vehicle],
    ) -> Plan<'a> {
        let by_id: HashMap<&str, &Vehicle> = vehicles
            .iter()
            .map(|v| (v.smartcar_vehicle_id.as_str(), v))
            .collect();
        let steps = deliveries
            .iter()
            .enumerate()
            .filter(|(index, _)| taken[*index])
            .map(|(index, delivery)| {
                let vehicle = delivery
                    .smartcar_vehicle_id
                    .as_deref()
                    .and_then(|id| by_id.get(id).copied());
                step(index, delivery, Registration::of(vehicle))
            })
            .collect();
        Plan { steps }
    }

    /// The plan of the deliveries before `end` only.
    pub(crate) fn until(mut self, end: usize) -> Plan<'a> {
        self.steps.retain(|s| s.index < end);
        self
    }
}

fn step<'a>(index: usize, delivery: &'a Delivery, registration: Registration<'a>) -> Step<'a> {
    let mut step = Step {
        index,
        delivery,
        registration,
        outcome: Outcome::Pending,
        error: None,
        sync: None,
        reading: None,
        errors: None,
        keeps_signals: false,
    };
    let unregistered = match registration {
        Registration::Unknown => Some(Outcome::UnknownVehicle),
        Registration::Inactive(_) => Some(Outcome::InactiveVehicle),
        Registration::Active(_) => None,
    };
    match &delivery.work {
        Work::Complete { outcome, error } => {
            step.outcome = *outcome;
            step.error.clone_from(error);
        }
        Work::State { odometer, test, .. } => {
            step.keeps_signals = !matches!(registration, Registration::Inactive(_));
            step.outcome = step.state_outcome(odometer, *test, unregistered);
        }
        Work::Errors { reports, data } => {
            step.sync = Some(SyncNote {
                sync_type: "vehicle_error",
                data: data.clone(),
            });
            step.outcome = unregistered.unwrap_or_else(|| {
                step.errors = Some(reports);
                Outcome::VehicleErrorRecorded
            });
        }
    }
    step
}

impl Step<'_> {
    /// The outcome of a vehicle state, given its odometer and whether the vehicle is not
    /// registered and active (`unregistered`); a reading of an active vehicle is left to judge.
    fn state_outcome(
        &mut self,
        odometer: &Odometer,
        test: bool,
        unregistered: Option<Outcome>,
    ) -> Outcome {
        match odometer {
            _ if test => Outcome::TestEvent,
            Odometer::Missing => Outcome::NoOdometer,
            Odometer::Unavailable(message) => {
                self.fails(message, Some("odometer"));
                Outcome::OdometerUnavailable
            }
            Odometer::Unusable(message) => {
                self.fails(message, Some("odometer"));
                Outcome::InvalidReading
            }
            Odometer::Reading { reading, .. } if to_timestamp(reading.observed_at).is_none() => {
                let message = format!(
                    "odometer signal unusable: its time {} is out of range",
                    reading.observed_at
                );
                self.fails(&message, None);
                Outcome::InvalidReading
            }
            Odometer::Reading {
                reading,
                correction,
            } => match unregistered {
                Some(outcome) => {
                    let about = serde_json::json!({
                        "smartcarVehicleId": self.delivery.smartcar_vehicle_id
                    });
                    self.sync = Some(SyncNote {
                        sync_type: "odometer",
                        data: about.to_string(),
                    });
                    outcome
                }
                None => {
                    self.reading = Some(Judged {
                        reading: *reading,
                        correction: *correction,
                        judgement: None,
                    });
                    Outcome::Pending
                }
            },
        }
    }

    /// A failure with `message`, with an odometer sync log saying it when `sync_type` is given.
    fn fails(&mut self, message: &str, sync_type: Option<&'static str>) {
        self.error = Some(message.to_owned());
        self.sync = sync_type.map(|sync_type| SyncNote {
            sync_type,
            data: serde_json::json!({ "error": message }).to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use meterhook_domain::{Distance, Millis};

    use super::*;

    fn vehicle(id: &str, active: bool) -> Vehicle {
        Vehicle {
            id: 1,
            smartcar_vehicle_id: id.to_owned(),
            vehicle_id: format!("app-{id}"),
            is_active: active,
            last_error: None,
            last_error_at: None,
            created_at: NaiveDateTime::default(),
            updated_at: NaiveDateTime::default(),
            needs_reconnection: false,
        }
    }

    fn state(id: &str, vehicle: &str, odometer: Odometer, test: bool) -> Delivery {
        Delivery {
            event_id: id.to_owned(),
            event_type: "VEHICLE_STATE".to_owned(),
            smartcar_vehicle_id: Some(vehicle.to_owned()),
            arrival: Arrival::Received {
                payload: "{}".to_owned(),
                received_at: NaiveDateTime::default(),
            },
            work: Work::State {
                signals: Vec::new(),
                odometer,
                test,
            },
        }
    }

    fn reading() -> Odometer {
        Odometer::Reading {
            reading: Reading::new(Distance::from_metres(1_000).expect("valid"), Millis(0)),
            correction: None,
        }
    }

    /// Each delivery's outcome, whether its reading is left to the rules and whether its
    /// signals are kept.
    fn check(
        deliveries: &[Delivery],
        seen: &[(&str, bool)],
        expected: &[(&str, Outcome, bool, bool)],
    ) {
        let vehicles = [vehicle("on", true), vehicle("off", false)];
        let seen: Seen = seen.iter().map(|(id, p)| ((*id).to_owned(), *p)).collect();
        let taken = taken(deliveries, &seen);
        let plan = Plan::new(deliveries, &taken, &vehicles);
        let got: Vec<(&str, Outcome, bool, bool)> = plan
            .steps
            .iter()
            .map(|s| {
                (
                    s.delivery.event_id.as_str(),
                    s.outcome,
                    s.reading.is_some(),
                    s.keeps_signals,
                )
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn outcomes_decided_before_the_rules() {
        use Outcome::*;
        check(
            &[state("a", "on", reading(), false)],
            &[],
            &[("a", Pending, true, true)],
        );
        check(
            &[state("a", "nobody", reading(), false)],
            &[],
            &[("a", UnknownVehicle, false, true)],
        );
        check(
            &[state("a", "off", reading(), false)],
            &[],
            &[("a", InactiveVehicle, false, false)],
        );
        check(
            &[state("a", "on", reading(), true)],
            &[],
            &[("a", TestEvent, false, true)],
        );
        check(
            &[state("a", "on", Odometer::Missing, false)],
            &[],
            &[("a", NoOdometer, false, true)],
        );
        check(
            &[state(
                "a",
                "on",
                Odometer::Unusable("bad unit".into()),
                false,
            )],
            &[],
            &[("a", InvalidReading, false, true)],
        );
        check(
            &[state(
                "a",
                "off",
                Odometer::Unavailable("asleep".into()),
                false,
            )],
            &[],
            &[("a", OdometerUnavailable, false, false)],
        );
    }

    #[test]
    fn redeliveries_are_not_processed_again() {
        use Outcome::*;
        let a = state("a", "on", Odometer::Missing, false);
        // Stored already: not taken; twice in one batch: taken once.
        check(std::slice::from_ref(&a), &[("a", true)], &[]);
        check(
            &[a.clone(), a.clone()],
            &[],
            &[("a", NoOdometer, false, true)],
        );
        // A stored event taken up again: only while unprocessed.
        let stored = Delivery {
            arrival: Arrival::Stored { attempts: 1 },
            ..a
        };
        check(
            std::slice::from_ref(&stored),
            &[("a", false)],
            &[("a", NoOdometer, false, true)],
        );
        check(&[stored], &[("a", true)], &[]);
    }
}
