//! Registering a Smartcar vehicle for an app vehicle, the one way the CLI (`vehicles add`) and
//! the API (`PUT /api/smartcar-vehicles/{id}`) both do it: the mapping, then the events that
//! waited for it. And erasing one (`vehicles delete --purge`, `DELETE
//! /api/smartcar-vehicles/{id}?purge=true`), with its audit line.

use meterhook_domain::Outcome;
use meterhook_ingest::{IngestError, Pipeline};
use meterhook_smartcar::limits::{check_id, LimitError};
use meterhook_store::{Purged, Reprocess, Store, StoreError, Vehicle};

/// A registration, with the events that had waited for the vehicle and were processed now.
#[derive(Debug)]
pub struct Registration {
    /// The vehicle as registered (active).
    pub vehicle: Vehicle,
    /// Events that had waited with the outcome `unknown_vehicle`, processed now.
    pub processed: usize,
    /// How many of them made a meter entry.
    pub entries_created: usize,
    /// The other Smartcar vehicles registered for the same app vehicle (allowed, since a car can
    /// be reconnected under a new id; their readings are judged as one odometer).
    pub others: Vec<Vehicle>,
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// An id breaks the rule every id follows (at most 128 characters of printable ASCII, no
    /// spaces); nothing is stored.
    #[error(transparent)]
    Invalid(#[from] LimitError),
    /// The mapping could not be stored (or the ids are empty).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mapping is stored, but the waiting events could not be processed; they wait on.
    #[error("registered, but the events that waited could not be processed: {0}")]
    Ingest(#[from] IngestError),
}

/// Registers (or re-points and re-activates) `smartcar_vehicle_id` for `vehicle_id`, then
/// processes the events that waited for it.
pub fn register(
    pipeline: &Pipeline,
    smartcar_vehicle_id: &str,
    vehicle_id: &str,
) -> Result<Registration, RegistrationError> {
    check_id("smartcar_vehicle_id", smartcar_vehicle_id)?;
    check_id("vehicle_id", vehicle_id)?;
    let vehicle = pipeline
        .store()
        .register_vehicle(smartcar_vehicle_id, vehicle_id)?;
    let waiting = pipeline.reprocess(Reprocess::UnknownVehicle(smartcar_vehicle_id))?;
    let others = pipeline
        .store()
        .vehicles_for(&vehicle.vehicle_id)?
        .into_iter()
        .filter(|v| v.smartcar_vehicle_id != vehicle.smartcar_vehicle_id)
        .collect();
    Ok(Registration {
        vehicle,
        others,
        processed: waiting.len(),
        entries_created: waiting
            .iter()
            .filter(|(_, o)| *o == Outcome::Created)
            .count(),
    })
}

/// Erases a Smartcar vehicle and everything it sent ([`Store::purge_vehicle`]), and writes the
/// one audit line that says so (a WARN line, target `meterhook::audit`): what went, and `by`
/// whom (`the CLI`, `the API from <peer>`).
pub fn purge(store: &Store, smartcar_vehicle_id: &str, by: &str) -> Result<Purged, StoreError> {
    let purged = store.purge_vehicle(smartcar_vehicle_id)?;
    log::warn!(
        target: "meterhook::audit",
        "purged Smartcar vehicle {} (vehicle {}) by {by}: {} meter entries, {} signal values, {} errors, {} sync logs, {} events",
        meterhook_smartcar::Escaped(&purged.vehicle.smartcar_vehicle_id),
        meterhook_smartcar::Escaped(&purged.vehicle.vehicle_id),
        purged.entries,
        purged.signals,
        purged.errors,
        purged.sync_logs,
        purged.events
    );
    Ok(purged)
}
