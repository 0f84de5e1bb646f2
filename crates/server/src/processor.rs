//! What happens to a stored event: the seed's "What happens when an event is received".
//!
//! The event is already durable when this runs; processing failures leave it pending, never lost.

use meterhook_domain::{Millis, Policy};
use meterhook_smartcar::{Event, EventType};
use meterhook_store::{Outcome, ProcessResult, Store, StoreError};

/// Processes one stored event with the rules; blocking (runs on a blocking thread).
pub fn process(
    store: &Store,
    event_id: &str,
    event: &Event,
    received_at: Millis,
    policy: &Policy,
) -> Result<ProcessResult, StoreError> {
    let simple =
        |outcome: Outcome, error: Option<&str>, sync: Option<(&str, &serde_json::Value)>| {
            let sync = sync.map(|(kind, data)| (kind, event.vehicle_id.as_deref(), data));
            let processed_now = store.complete_event(event_id, outcome, error, sync)?;
            Ok(ProcessResult {
                outcome,
                decision: None,
                entry_id: None,
                vehicle_id: None,
                processed_now,
            })
        };
    match &event.event_type {
        EventType::VehicleState => {
            let Some(vehicle) = event.vehicle_id.as_deref() else {
                return simple(
                    Outcome::InvalidReading,
                    Some("the event names no vehicle (no vehicleId, no data.vehicle.id)"),
                    None,
                );
            };
            match event.odometer_reading(received_at) {
                None => simple(Outcome::NoOdometer, None, None),
                Some(Err(e)) => {
                    let message = format!("odometer signal unusable: {e}");
                    let data = serde_json::json!({ "error": message });
                    simple(
                        Outcome::InvalidReading,
                        Some(&message),
                        Some(("odometer", &data)),
                    )
                }
                Some(Ok(reading)) => store
                    .process_odometer(event_id, vehicle, reading, policy)
                    .or_else(|e| match e {
                        // A time chrono cannot represent is the data's fault, not the database's.
                        StoreError::Invalid(message) => {
                            simple(Outcome::InvalidReading, Some(&message), None)
                        }
                        other => Err(other),
                    }),
            }
        }
        EventType::VehicleError => {
            let Some(vehicle) = event.vehicle_id.as_deref() else {
                return simple(
                    Outcome::InvalidReading,
                    Some("the event names no vehicle (no vehicleId, no data.vehicle.id)"),
                    None,
                );
            };
            let open: Vec<String> = event
                .errors
                .iter()
                .filter(|e| !e.is_resolved())
                .map(|e| {
                    let kind = [e.error_type.as_deref(), e.code.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(":");
                    match (&e.description, kind.is_empty()) {
                        (Some(d), true) => d.clone(),
                        (Some(d), false) => format!("{kind} ({d})"),
                        (None, _) => kind,
                    }
                })
                .collect();
            let summary = (!open.is_empty()).then(|| open.join("; "));
            let data = serde_json::json!({
                "errors": event.errors.iter().map(|e| serde_json::json!({
                    "type": e.error_type,
                    "code": e.code,
                    "state": e.state,
                    "description": e.description,
                    "suggestedUserMessage": e.suggested_user_message,
                    "resolution": e.resolution_type,
                    "signals": e.signals,
                })).collect::<Vec<_>>(),
            });
            store.record_vehicle_error(event_id, vehicle, summary.as_deref(), &data)
        }
        EventType::Verify | EventType::Other(_) => simple(Outcome::Ignored, None, None),
    }
}
