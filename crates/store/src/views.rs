//! The JSON shapes of stored things that the change feed records as they were when they changed,
//! and that the read API and the CLI show the same way (the server re-exports them).

use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use crate::{MeterEntry, Vehicle, VehicleErrorRow};

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
    /// Why it is void, for programs: `rule` (`out_of_sequence`, `implausible_jump`,
    /// `superseded`, `operator`) and the figures it compared.
    void_detail: Option<serde_json::Value>,
    /// For a refused reading, the active entry that refused it.
    refused_by: Option<i64>,
    created_at: String,
    updated_at: String,
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
        void_detail: e
            .void_detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
        refused_by: e.refused_by,
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
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
