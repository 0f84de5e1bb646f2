//! What happens to a stored event: the seed's "What happens when an event is received".
//!
//! Everything here writes through a [`Tx`]: the writer commits many deliveries in one
//! transaction, the background passes one event per transaction. Processing runs in a savepoint,
//! so a failure undoes the processing alone; the event stays stored and is retried.

use meterhook_domain::{Millis, Policy};
use meterhook_smartcar::{Event, EventType};
use meterhook_store::{ErrorReport, NewSignal, Outcome, ProcessResult, Store, StoreError, Tx};

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

/// Finishes an event that needs no rules.
fn complete(
    tx: &mut Tx<'_>,
    event_id: &str,
    event: &Event,
    outcome: Outcome,
    error: Option<&str>,
    sync: Option<(&str, &serde_json::Value)>,
) -> Result<ProcessResult, StoreError> {
    let sync = sync.map(|(kind, data)| (kind, event.vehicle_id.as_deref(), data));
    let processed_now = tx.complete_event(event_id, outcome, error, sync)?;
    Ok(ProcessResult {
        outcome,
        decision: None,
        entry_id: None,
        vehicle_id: None,
        processed_now,
    })
}

/// Processes one stored event with the rules.
pub fn process(
    tx: &mut Tx<'_>,
    event_id: &str,
    event: &Event,
    received_at: Millis,
    policy: &Policy,
) -> Result<ProcessResult, StoreError> {
    let about_a_vehicle = matches!(
        event.event_type,
        EventType::VehicleState | EventType::VehicleError
    );
    let vehicle = match event.vehicle_id.as_deref() {
        Some(vehicle) => vehicle,
        None if about_a_vehicle => {
            return complete(
                tx,
                event_id,
                event,
                Outcome::InvalidReading,
                Some("the event names no vehicle (no vehicleId, no data.vehicle.id)"),
                None,
            );
        }
        None => "",
    };
    match &event.event_type {
        EventType::VehicleState => {
            let signals = signal_rows(event, received_at);
            if !signals.is_empty() {
                tx.record_signals(event_id, vehicle, &signals)?;
            }
            match event.odometer_reading(received_at) {
                None => complete(tx, event_id, event, Outcome::NoOdometer, None, None),
                Some(Err(e)) => {
                    let message = format!("odometer signal unusable: {e}");
                    let data = serde_json::json!({ "error": message });
                    complete(
                        tx,
                        event_id,
                        event,
                        Outcome::InvalidReading,
                        Some(&message),
                        Some(("odometer", &data)),
                    )
                }
                Some(Ok(reading)) => {
                    match tx.process_odometer(event_id, vehicle, reading, policy) {
                        // A time chrono cannot represent is the data's fault, not the database's.
                        Err(StoreError::Invalid(message)) => complete(
                            tx,
                            event_id,
                            event,
                            Outcome::InvalidReading,
                            Some(&message),
                            None,
                        ),
                        other => other,
                    }
                }
            }
        }
        EventType::VehicleError => {
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
            tx.record_vehicle_errors(event_id, vehicle, &reports, &data)
        }
        EventType::Verify | EventType::Other(_) => {
            complete(tx, event_id, event, Outcome::Ignored, None, None)
        }
    }
}

/// Processes a stored event again from its raw body (retries, reprocessing, the spool).
pub fn process_record(
    tx: &mut Tx<'_>,
    record: &meterhook_store::EventRecord,
    policy: &Policy,
) -> Result<ProcessResult, StoreError> {
    let received_at = meterhook_store::to_millis(record.received_at);
    match meterhook_smartcar::parse_event(record.payload.as_bytes()) {
        Ok(event) => process(tx, &record.event_id, &event, received_at, policy),
        Err(e) => {
            let message = format!("stored body no longer parses: {e}");
            let processed_now =
                tx.complete_event(&record.event_id, Outcome::Malformed, Some(&message), None)?;
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

/// Runs `attempt` in a savepoint; when it fails, its work is undone and the failure is recorded
/// on the event (retry later, or `dead` after the last attempt). The event is never lost. An
/// error means the transaction itself failed (the database is away).
pub fn process_or_schedule(
    tx: &mut Tx<'_>,
    event_id: &str,
    retry: &crate::config::RetryPolicy,
    attempts_so_far: i32,
    attempt: impl FnOnce(&mut Tx<'_>) -> Result<ProcessResult, StoreError>,
) -> Result<ProcessResult, StoreError> {
    match tx.savepoint(attempt) {
        Ok(result) => Ok(result),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            let message = e.to_string();
            let delay = retry.delay(attempts_so_far + 1);
            let retry_at = meterhook_store::now()
                + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
            let outcome =
                tx.record_processing_failure(event_id, &message, retry_at, retry.max_attempts)?;
            if outcome == Outcome::Dead {
                log::error!("Webhook event {event_id}: processing failed for the last time ({message}); outcome dead");
            } else {
                log::warn!(
                    "Webhook event {event_id}: processing failed ({message}); retrying in {}s",
                    delay.as_secs()
                );
            }
            Ok(ProcessResult {
                outcome,
                decision: None,
                entry_id: None,
                vehicle_id: None,
                processed_now: false,
            })
        }
    }
}

/// Processes one stored event in a transaction of its own, scheduling a retry on failure.
pub fn process_stored(
    store: &Store,
    record: &meterhook_store::EventRecord,
    policy: &Policy,
    retry: &crate::config::RetryPolicy,
) -> Result<Outcome, StoreError> {
    store
        .write(|tx| {
            process_or_schedule(tx, &record.event_id, retry, record.attempts, |tx| {
                process_record(tx, record, policy)
            })
        })
        .map(|r| r.outcome)
}

/// Resets and processes the chosen events again; returns (event id, outcome) for each.
pub fn reprocess(
    store: &Store,
    which: meterhook_store::Reprocess<'_>,
    policy: &Policy,
    retry: &crate::config::RetryPolicy,
) -> Result<Vec<(String, Outcome)>, StoreError> {
    let records = store.reset_for_reprocess(which)?;
    records
        .iter()
        .map(|record| {
            let reset = meterhook_store::EventRecord {
                attempts: 0,
                ..record.clone()
            };
            process_stored(store, &reset, policy, retry).map(|o| (record.event_id.clone(), o))
        })
        .collect()
}
