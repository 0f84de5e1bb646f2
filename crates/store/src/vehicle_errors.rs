//! Vehicle health: the error conditions Smartcar reports (VEHICLE_ERROR), open until resolved.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::changes::{ChangeType, NewChange};
use crate::db::DbConnection;
use crate::schema::{smartcar_vehicles, vehicle_errors};
use crate::vehicles::{smartcar_ids, Vehicle};
use crate::{Result, Store};

/// One error condition from a VEHICLE_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorReport {
    /// `CONNECTED_SERVICES_ACCOUNT`, `VEHICLE_STATE`, … (empty when not given).
    pub error_type: String,
    /// `UNREACHABLE`, `ASLEEP`, … (empty when not given).
    pub code: String,
    /// Whether this report clears the condition (`state: RESOLVED`).
    pub resolved: bool,
    /// Smartcar's description.
    pub description: Option<String>,
    /// The message to show the vehicle's owner.
    pub suggested_user_message: Option<String>,
    /// What resolves it (`resolution.type`).
    pub resolution_type: Option<String>,
    /// Smartcar's documentation link.
    pub doc_url: Option<String>,
    /// Only the vehicle's owner can clear it (meterhook-smartcar's
    /// `VehicleErrorInfo::needs_owner`).
    pub needs_owner: bool,
    /// When Smartcar sent the report, when known (else: when it is processed). A report older
    /// than its condition's last change changes nothing: a late retry or a replay never reopens
    /// what a newer report resolved, nor resolves what a newer one opened.
    pub reported_at: Option<NaiveDateTime>,
}

/// An error condition of a vehicle, open until resolved.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = vehicle_errors)]
pub struct VehicleErrorRow {
    /// Row id.
    pub id: i64,
    /// Smartcar's vehicle id.
    pub smartcar_vehicle_id: String,
    /// Error type.
    pub error_type: String,
    /// Error code.
    pub code: String,
    /// Smartcar's description.
    pub description: Option<String>,
    /// The message to show the vehicle's owner.
    pub suggested_user_message: Option<String>,
    /// What resolves it.
    pub resolution_type: Option<String>,
    /// Smartcar's documentation link.
    pub doc_url: Option<String>,
    /// First reported (UTC).
    pub first_seen_at: NaiveDateTime,
    /// Last reported (UTC).
    pub last_seen_at: NaiveDateTime,
    /// When a RESOLVED cleared it.
    pub resolved_at: Option<NaiveDateTime>,
    /// The event that last reported it.
    pub event_id: String,
    /// Only the vehicle's owner can clear it.
    pub needs_owner: bool,
}

impl VehicleErrorRow {
    /// `TYPE:CODE`, or the description when neither is known.
    pub fn label(&self) -> String {
        match (self.error_type.is_empty(), self.code.is_empty()) {
            (true, true) => self
                .description
                .clone()
                .unwrap_or_else(|| "unknown error".into()),
            (false, true) => self.error_type.clone(),
            (true, false) => self.code.clone(),
            (false, false) => format!("{}:{}", self.error_type, self.code),
        }
    }
}

impl Store {
    /// The open error conditions of a Smartcar vehicle, oldest first.
    pub fn open_errors(&self, smartcar_vehicle_id: &str) -> Result<Vec<VehicleErrorRow>> {
        let mut conn = self.conn()?;
        open_errors_in(&mut conn, smartcar_vehicle_id)
    }

    /// The open error conditions of the whole fleet, oldest first, at most `limit`.
    pub fn all_open_errors(&self, limit: i64) -> Result<Vec<VehicleErrorRow>> {
        use vehicle_errors::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::vehicle_errors
            .filter(e::resolved_at.is_null())
            .order(e::id.asc())
            .limit(limit.max(0))
            .select(VehicleErrorRow::as_select())
            .load(&mut *conn)?)
    }

    /// The open error conditions of every Smartcar vehicle of an app vehicle.
    pub fn open_errors_for_vehicle(&self, vehicle_id: &str) -> Result<Vec<VehicleErrorRow>> {
        use vehicle_errors::dsl as e;
        let mut conn = self.conn()?;
        let ids = smartcar_ids(&mut conn, vehicle_id)?;
        Ok(e::vehicle_errors
            .filter(e::smartcar_vehicle_id.eq_any(&ids))
            .filter(e::resolved_at.is_null())
            .order(e::id.asc())
            .select(VehicleErrorRow::as_select())
            .load(&mut *conn)?)
    }
}

fn open_errors_in(
    conn: &mut DbConnection,
    smartcar_vehicle_id: &str,
) -> Result<Vec<VehicleErrorRow>> {
    use vehicle_errors::dsl as e;
    Ok(e::vehicle_errors
        .filter(e::smartcar_vehicle_id.eq(smartcar_vehicle_id))
        .filter(e::resolved_at.is_null())
        .order(e::id.asc())
        .select(VehicleErrorRow::as_select())
        .load(conn)?)
}

/// Records a VEHICLE_ERROR of a registered vehicle: opens (or refreshes) each reported
/// condition, closes those reported RESOLVED, and sets the vehicle's `last_error` to what is
/// still open. Returns the changes: conditions opened and resolved, and the vehicle needing its
/// owner (or no longer).
pub(crate) fn record_errors(
    conn: &mut DbConnection,
    event_id: &str,
    vehicle: &Vehicle,
    reports: &[ErrorReport],
    at: NaiveDateTime,
) -> Result<Vec<NewChange>> {
    use vehicle_errors::dsl as e;
    let smartcar_vehicle_id = vehicle.smartcar_vehicle_id.as_str();
    let before = open_errors_in(conn, smartcar_vehicle_id)?;
    for report in reports {
        let at = report.reported_at.map_or(at, |t| t.min(at));
        let last_change: Option<NaiveDateTime> = e::vehicle_errors
            .filter(e::smartcar_vehicle_id.eq(smartcar_vehicle_id))
            .filter(e::error_type.eq(&report.error_type))
            .filter(e::code.eq(&report.code))
            .order(e::id.desc())
            .select(e::last_seen_at)
            .first(conn)
            .optional()?;
        if last_change.is_some_and(|changed| changed > at) {
            log::info!(
                "vehicle {}: a report of {}:{} older than the condition's last change is ignored",
                smartcar_vehicle_id.escape_debug(),
                report.error_type.escape_debug(),
                report.code.escape_debug()
            );
            continue;
        }
        let open = e::vehicle_errors
            .filter(e::smartcar_vehicle_id.eq(smartcar_vehicle_id))
            .filter(e::error_type.eq(&report.error_type))
            .filter(e::code.eq(&report.code))
            .filter(e::resolved_at.is_null());
        if report.resolved {
            diesel::update(open)
                .set((
                    e::resolved_at.eq(Some(at)),
                    e::last_seen_at.eq(at),
                    e::event_id.eq(event_id),
                ))
                .execute(conn)?;
            continue;
        }
        let refreshed = diesel::update(open)
            .set((
                e::last_seen_at.eq(at),
                e::description.eq(report.description.as_deref()),
                e::suggested_user_message.eq(report.suggested_user_message.as_deref()),
                e::resolution_type.eq(report.resolution_type.as_deref()),
                e::doc_url.eq(report.doc_url.as_deref()),
                e::event_id.eq(event_id),
                e::needs_owner.eq(report.needs_owner),
            ))
            .execute(conn)?;
        if refreshed == 0 {
            diesel::insert_into(e::vehicle_errors)
                .values((
                    e::smartcar_vehicle_id.eq(smartcar_vehicle_id),
                    e::error_type.eq(&report.error_type),
                    e::code.eq(&report.code),
                    e::description.eq(report.description.as_deref()),
                    e::suggested_user_message.eq(report.suggested_user_message.as_deref()),
                    e::resolution_type.eq(report.resolution_type.as_deref()),
                    e::doc_url.eq(report.doc_url.as_deref()),
                    e::first_seen_at.eq(at),
                    e::last_seen_at.eq(at),
                    e::resolved_at.eq(None::<NaiveDateTime>),
                    e::event_id.eq(event_id),
                    e::needs_owner.eq(report.needs_owner),
                ))
                .execute(conn)?;
        }
    }
    refresh_health(conn, vehicle, &before, at)
}

/// A successful state of `vehicle` arrived (`event_id`): the conditions only its owner could fix
/// are cleared, since the car answers again. Returns the changes, as [`record_errors`] does.
pub(crate) fn reconnected(
    conn: &mut DbConnection,
    event_id: &str,
    vehicle: &Vehicle,
    at: NaiveDateTime,
) -> Result<Vec<NewChange>> {
    use vehicle_errors::dsl as e;
    let before = open_errors_in(conn, &vehicle.smartcar_vehicle_id)?;
    diesel::update(
        e::vehicle_errors
            .filter(e::smartcar_vehicle_id.eq(&vehicle.smartcar_vehicle_id))
            .filter(e::needs_owner.eq(true))
            .filter(e::resolved_at.is_null()),
    )
    .set((
        e::resolved_at.eq(Some(at)),
        e::last_seen_at.eq(at),
        e::event_id.eq(event_id),
    ))
    .execute(conn)?;
    refresh_health(conn, vehicle, &before, at)
}

/// Sets the vehicle's `last_error` summary and `needs_reconnection` from its open errors, and
/// returns what changed since `before` (the conditions open before): conditions opened and
/// resolved, then the vehicle's need of its owner, when that changed.
fn refresh_health(
    conn: &mut DbConnection,
    vehicle: &Vehicle,
    before: &[VehicleErrorRow],
    at: NaiveDateTime,
) -> Result<Vec<NewChange>> {
    use smartcar_vehicles::dsl as v;
    let still_open = open_errors_in(conn, &vehicle.smartcar_vehicle_id)?;
    let needs_reconnection = still_open.iter().any(|e| e.needs_owner);
    let summary = (!still_open.is_empty()).then(|| {
        still_open
            .iter()
            .map(VehicleErrorRow::label)
            .collect::<Vec<_>>()
            .join("; ")
    });
    diesel::update(v::smartcar_vehicles.filter(v::id.eq(vehicle.id)))
        .set((
            v::last_error.eq(summary.as_deref()),
            v::last_error_at.eq(summary.as_ref().map(|_| at)),
            v::needs_reconnection.eq(needs_reconnection),
            v::updated_at.eq(at),
        ))
        .execute(conn)?;
    let app = vehicle.vehicle_id.as_str();
    let mut changes: Vec<NewChange> = still_open
        .iter()
        .filter(|now| !before.iter().any(|b| b.id == now.id))
        .map(|opened| NewChange::vehicle_error(ChangeType::VehicleErrorOpened, app, opened, at))
        .collect();
    for gone in before
        .iter()
        .filter(|b| !still_open.iter().any(|n| n.id == b.id))
    {
        let resolved = VehicleErrorRow {
            resolved_at: Some(at),
            last_seen_at: at,
            ..gone.clone()
        };
        changes.push(NewChange::vehicle_error(
            ChangeType::VehicleErrorResolved,
            app,
            &resolved,
            at,
        ));
    }
    if needs_reconnection != vehicle.needs_reconnection {
        let now = Vehicle {
            last_error: summary,
            last_error_at: still_open.first().map(|_| at),
            needs_reconnection,
            updated_at: at,
            ..vehicle.clone()
        };
        let kind = if needs_reconnection {
            ChangeType::VehicleNeedsReconnection
        } else {
            ChangeType::VehicleReconnected
        };
        changes.push(NewChange::vehicle(kind, &now, at));
    }
    Ok(changes)
}
