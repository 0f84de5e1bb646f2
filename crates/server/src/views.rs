//! The JSON shapes of stored things, shared by the CLI and the read API so they never drift.
//! The shapes the change feed also records (entries, vehicles, error conditions) live in the
//! store, which writes them into each change; they are re-exported here.

use chrono::NaiveDateTime;
use meterhook_store::{EventSummary, MeterEntry, SignalRow, Vehicle, VehicleErrorRow};
use serde::Serialize;
use serde_json::Value;

pub use meterhook_store::views::{
    entry, rfc3339, vehicle, vehicle_error, Entry, VehicleError, VehicleView,
};

/// A kept signal value.
#[derive(Debug, Serialize)]
pub struct Signal<'a> {
    smartcar_vehicle_id: &'a str,
    code: &'a str,
    value: Option<f64>,
    unit: Option<&'a str>,
    observed_at: String,
    event_id: &'a str,
    raw: Value,
}

/// The view of a kept signal value.
pub fn signal(s: &SignalRow) -> Signal<'_> {
    Signal {
        smartcar_vehicle_id: &s.smartcar_vehicle_id,
        code: &s.code,
        value: s.value,
        unit: s.unit.as_deref(),
        observed_at: rfc3339(s.observed_at),
        event_id: &s.event_id,
        raw: serde_json::from_str::<Value>(&s.raw).unwrap_or(Value::Null),
    }
}

/// A vehicle with its health and latest readings (`vehicles show`).
#[derive(Debug, Serialize)]
pub struct VehicleDetail<'a> {
    #[serde(flatten)]
    vehicle: VehicleView<'a>,
    open_errors: Vec<VehicleError<'a>>,
    latest_signals: Vec<Signal<'a>>,
    latest_entry: Option<Entry<'a>>,
}

/// The view of a vehicle with its health and latest readings.
pub fn vehicle_detail<'a>(
    v: &'a Vehicle,
    errors: &'a [VehicleErrorRow],
    signals: &'a [SignalRow],
    latest_entry: Option<&'a MeterEntry>,
) -> VehicleDetail<'a> {
    VehicleDetail {
        vehicle: vehicle(v),
        open_errors: errors.iter().map(vehicle_error).collect(),
        latest_signals: signals.iter().map(signal).collect(),
        latest_entry: latest_entry.map(entry),
    }
}

/// A received event, without its body.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    event_id: &'a str,
    event_type: &'a str,
    smartcar_vehicle_id: Option<&'a str>,
    received_at: String,
    processed: bool,
    processed_at: Option<String>,
    outcome: &'a str,
    error: Option<&'a str>,
    attempts: i32,
}

/// The view of a received event.
pub fn event(e: &EventSummary) -> Event<'_> {
    Event {
        event_id: &e.event_id,
        event_type: &e.event_type,
        smartcar_vehicle_id: e.smartcar_vehicle_id.as_deref(),
        received_at: rfc3339(e.received_at),
        processed: e.processed,
        processed_at: e.processed_at.map(rfc3339),
        outcome: &e.outcome,
        error: e.error.as_deref(),
        attempts: e.attempts,
    }
}

/// What one table's pruning deleted.
#[derive(Debug, Serialize)]
pub struct Pruned {
    /// Rows deleted.
    pub deleted: u64,
    /// The cut-off: rows before it were deleted.
    pub before: String,
}

impl Pruned {
    /// `deleted` rows before `before`.
    pub fn new(deleted: u64, before: NaiveDateTime) -> Pruned {
        Pruned {
            deleted,
            before: rfc3339(before),
        }
    }
}

/// What `meterhook prune` deleted (with `--dry-run`: would delete), per table; `None` where the
/// table was kept.
#[derive(Debug, Default, Serialize)]
pub struct PruneSummary {
    /// Nothing was deleted: `deleted` counts what would have been.
    pub dry_run: bool,
    /// Processed events.
    pub events: Option<Pruned>,
    /// Signal values.
    pub signal_values: Option<Pruned>,
    /// Sync logs.
    pub sync_logs: Option<Pruned>,
    /// The record of changes the app follows.
    pub changes: Option<Pruned>,
}
