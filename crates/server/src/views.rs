//! The JSON shapes of stored things, shared by the CLI and the read API so they never drift.

use chrono::{NaiveDateTime, SecondsFormat};
use meterhook_store::{MeterEntry, SignalRow, Vehicle, VehicleErrorRow};
use serde_json::{json, Value};

/// A UTC timestamp as RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A meter entry.
pub fn entry(e: &MeterEntry) -> Value {
    json!({
        "id": e.id,
        "vehicle_id": e.vehicle_id,
        "value_km": e.distance().km(),
        "entry_date": rfc3339(e.entry_date),
        "source_type": e.source_type,
        "event_id": e.event_id,
        "notes": e.notes,
        "void": e.void,
        "void_reason": e.void_reason,
        "created_at": rfc3339(e.created_at),
    })
}

/// A kept signal value.
pub fn signal(s: &SignalRow) -> Value {
    json!({
        "smartcar_vehicle_id": s.smartcar_vehicle_id,
        "code": s.code,
        "value": s.value,
        "unit": s.unit,
        "observed_at": rfc3339(s.observed_at),
        "event_id": s.event_id,
        "raw": serde_json::from_str::<Value>(&s.raw).unwrap_or(Value::Null),
    })
}

/// An error condition of a vehicle.
pub fn vehicle_error(e: &VehicleErrorRow) -> Value {
    json!({
        "smartcar_vehicle_id": e.smartcar_vehicle_id,
        "type": e.error_type,
        "code": e.code,
        "state": if e.resolved_at.is_some() { "RESOLVED" } else { "ERROR" },
        "description": e.description,
        "suggested_user_message": e.suggested_user_message,
        "resolution": e.resolution_type,
        "doc_url": e.doc_url,
        "first_seen_at": rfc3339(e.first_seen_at),
        "last_seen_at": rfc3339(e.last_seen_at),
    })
}

/// A registered Smartcar vehicle.
pub fn vehicle(v: &Vehicle) -> Value {
    json!({
        "smartcar_vehicle_id": v.smartcar_vehicle_id,
        "vehicle_id": v.vehicle_id,
        "is_active": v.is_active,
        "last_error": v.last_error,
        "last_error_at": v.last_error_at.map(rfc3339),
        "created_at": rfc3339(v.created_at),
        "updated_at": rfc3339(v.updated_at),
    })
}
