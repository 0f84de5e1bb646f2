//! What happens to a stored event: the seed's "What happens when an event is received".
//!
//! The event is already durable when this runs; processing failures leave it pending, never lost.

use meterhook_domain::{Millis, Policy};
use meterhook_smartcar::{Event, EventType};
use meterhook_store::{ErrorReport, NewSignal, Outcome, ProcessResult, Store, StoreError};

/// Every value of every signal of a state event, as the store keeps them.
pub fn signal_rows(event: &Event, received_at: Millis) -> Vec<NewSignal> {
    event
        .signals
        .iter()
        .flat_map(|signal| {
            let raw = serde_json::json!({
                "code": signal.code,
                "name": signal.name,
                "group": signal.group,
                "body": signal.body,
                "meta": { "oemUpdatedAt": signal.oem_updated_at, "retrievedAt": signal.retrieved_at },
            })
            .to_string();
            let observed_at = signal.observed_at(received_at);
            signal.values().into_iter().map(move |v| NewSignal {
                code: v.code,
                value: v.value,
                unit: v.unit,
                raw: raw.clone(),
                observed_at,
            })
        })
        .collect()
}

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
            let signals = signal_rows(event, received_at);
            if !signals.is_empty() {
                store.record_signals(event_id, vehicle, &signals)?;
            }
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
            let reports: Vec<ErrorReport> = event
                .errors
                .iter()
                .map(|e| ErrorReport {
                    error_type: e.error_type.clone().unwrap_or_default(),
                    code: e.code.clone().unwrap_or_default(),
                    resolved: e.is_resolved(),
                    description: e.description.clone(),
                    suggested_user_message: e.suggested_user_message.clone(),
                    resolution_type: e.resolution_type.clone(),
                    doc_url: e.doc_url.clone(),
                })
                .collect();
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
            store.record_vehicle_errors(event_id, vehicle, &reports, &data)
        }
        EventType::Verify | EventType::Other(_) => simple(Outcome::Ignored, None, None),
    }
}

/// Processes a stored event again from its raw body (retries, reprocessing, the spool).
pub fn process_record(
    store: &Store,
    record: &meterhook_store::EventRecord,
    policy: &Policy,
) -> Result<ProcessResult, StoreError> {
    let received_at = meterhook_store::to_millis(record.received_at);
    match meterhook_smartcar::parse_event(record.payload.as_bytes()) {
        Ok(event) => process(store, &record.event_id, &event, received_at, policy),
        Err(e) => {
            let message = format!("stored body no longer parses: {e}");
            let processed_now =
                store.complete_event(&record.event_id, Outcome::Malformed, Some(&message), None)?;
            Ok(ProcessResult {
                outcome: Outcome::Malformed,
                decision: None,
                entry_id: None,
                vehicle_id: None,
                processed_now,
            })
        }
    }
}

/// Runs `attempt`; on failure records it on the event (retry later, or `dead` after the last
/// attempt) and returns the outcome stored. Never loses the event.
pub fn with_retry(
    store: &Store,
    event_id: &str,
    retry: &crate::config::RetryPolicy,
    attempts_so_far: i32,
    attempt: impl FnOnce() -> Result<ProcessResult, StoreError>,
) -> Outcome {
    match attempt() {
        Ok(result) => result.outcome,
        Err(e) => {
            let message = e.to_string();
            let delay = retry.delay(attempts_so_far + 1);
            let retry_at = meterhook_store::now()
                + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
            match store.record_processing_failure(event_id, &message, retry_at, retry.max_attempts)
            {
                Ok(Outcome::Dead) => {
                    log::error!("Webhook event {event_id}: processing failed for the last time ({message}); outcome dead");
                    Outcome::Dead
                }
                Ok(outcome) => {
                    log::warn!(
                        "Webhook event {event_id}: processing failed ({message}); retrying in {}s",
                        delay.as_secs()
                    );
                    outcome
                }
                Err(e2) => {
                    // The database is gone: the event stays unprocessed and the retry pass finds it.
                    log::warn!("Webhook event {event_id}: processing failed ({message}) and could not be rescheduled ({e2})");
                    Outcome::Pending
                }
            }
        }
    }
}

/// Resets and processes the chosen events again; returns (event id, outcome) for each.
pub fn reprocess(
    store: &Store,
    which: meterhook_store::Reprocess<'_>,
    policy: &Policy,
    retry: &crate::config::RetryPolicy,
) -> Result<Vec<(String, Outcome)>, StoreError> {
    let records = store.reset_for_reprocess(which)?;
    Ok(records
        .iter()
        .map(|record| {
            let outcome = with_retry(store, &record.event_id, retry, 0, || {
                process_record(store, record, policy)
            });
            (record.event_id.clone(), outcome)
        })
        .collect())
}
