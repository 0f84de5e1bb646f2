//! The JSON shapes of stored things, shared by the CLI and the read API so they never drift.

use chrono::{NaiveDateTime, SecondsFormat};
use meterhook_store::{EventSummary, MeterEntry, SignalRow, Vehicle, VehicleErrorRow};
use serde::Serialize;
use serde_json::Value;

/// A UTC timestamp as RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A meter entry.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    id: i64,
    vehicle_id: &'a str,
    value_km: f64,
    entry_date: String,
    source_type: &'a str,
    event_id: Option<&'a str>,
    notes: Option<&'a str>,
    void: bool,
    void_reason: Option<&'a str>,
    created_at: String,
}

/// The view of a meter entry.
pub fn entry(e: &MeterEntry) -> Entry<'_> {
    Entry {
        id: e.id,
        vehicle_id: &e.vehicle_id,
        value_km: e.distance().km(),
        entry_date: rfc3339(e.entry_date),
        source_type: &e.source_type,
        event_id: e.event_id.as_deref(),
        notes: e.notes.as_deref(),
        void: e.void,
        void_reason: e.void_reason.as_deref(),
        created_at: rfc3339(e.created_at),
    }
}

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

/// An error condition of a vehicle.
#[derive(Debug, Serialize)]
pub struct VehicleError<'a> {
    smartcar_vehicle_id: &'a str,
    #[serde(rename = "type")]
    error_type: &'a str,
    code: &'a str,
    state: &'static str,
    description: Option<&'a str>,
    suggested_user_message: Option<&'a str>,
    resolution: Option<&'a str>,
    doc_url: Option<&'a str>,
    first_seen_at: String,
    last_seen_at: String,
}

/// The view of an error condition.
pub fn vehicle_error(e: &VehicleErrorRow) -> VehicleError<'_> {
    VehicleError {
        smartcar_vehicle_id: &e.smartcar_vehicle_id,
        error_type: &e.error_type,
        code: &e.code,
        state: if e.resolved_at.is_some() {
            "RESOLVED"
        } else {
            "ERROR"
        },
        description: e.description.as_deref(),
        suggested_user_message: e.suggested_user_message.as_deref(),
        resolution: e.resolution_type.as_deref(),
        doc_url: e.doc_url.as_deref(),
        first_seen_at: rfc3339(e.first_seen_at),
        last_seen_at: rfc3339(e.last_seen_at),
    }
}

/// A registered Smartcar vehicle.
#[derive(Debug, Serialize)]
pub struct VehicleView<'a> {
    smartcar_vehicle_id: &'a str,
    vehicle_id: &'a str,
    is_active: bool,
    last_error: Option<&'a str>,
    last_error_at: Option<String>,
    needs_reconnection: bool,
    created_at: String,
    updated_at: String,
}

/// The view of a registered Smartcar vehicle.
pub fn vehicle(v: &Vehicle) -> VehicleView<'_> {
    VehicleView {
        smartcar_vehicle_id: &v.smartcar_vehicle_id,
        vehicle_id: &v.vehicle_id,
        is_active: v.is_active,
        last_error: v.last_error.as_deref(),
        last_error_at: v.last_error_at.map(rfc3339),
        needs_reconnection: v.needs_reconnection,
        created_at: rfc3339(v.created_at),
        updated_at: rfc3339(v.updated_at),
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
}
