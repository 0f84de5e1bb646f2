//! Beyond the odometer log: every signal, vehicle health, voided entries, pages for the read API.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use meterhook_domain::{judge, Candidate, Decision, Millis, Policy, Reading};
use serde::Serialize;

use crate::db::DbConnection;
use crate::deliveries::load_neighbours;
use crate::repo::lock_app_vehicle;
use crate::schema::{
    meter_entries, smartcar_vehicles, smartcar_webhook_events, vehicle_errors, vehicle_signals,
};
use crate::{MeterEntry, Outcome, Result, Store, StoreError};

/// A signal value to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSignal {
    /// Signal code (`tractionbattery-stateofcharge`, …; per-tire codes for tires).
    pub code: String,
    /// The numeric value, normalised, when there is one.
    pub value: Option<f64>,
    /// Its unit, normalised when known.
    pub unit: Option<String>,
    /// The signal as received, JSON text.
    pub raw: String,
    /// When the car observed it.
    pub observed_at: Millis,
}

/// A kept signal value.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = vehicle_signals)]
pub struct SignalRow {
    /// Row id.
    pub id: i64,
    /// Smartcar's vehicle id.
    pub smartcar_vehicle_id: String,
    /// Signal code.
    pub code: String,
    /// Numeric value, when there is one.
    pub value: Option<f64>,
    /// Unit of the value.
    pub unit: Option<String>,
    /// The signal as received, JSON text.
    pub raw: String,
    /// When the car observed it (UTC).
    pub observed_at: NaiveDateTime,
    /// The event it came in.
    pub event_id: String,
    /// When it was stored (UTC).
    pub created_at: NaiveDateTime,
}

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

/// Why an entry could not be unvoided.
#[derive(Debug, Clone, PartialEq)]
pub enum UnvoidRefusal {
    /// It is not void.
    NotVoid,
    /// The rules refuse it against the active entries now.
    Rules(Decision),
}

impl Store {
    /// The latest value of every signal of an app vehicle (through its Smartcar vehicles).
    pub fn latest_signals(&self, vehicle_id: &str) -> Result<Vec<SignalRow>> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        let ids = smartcar_ids(&mut conn, vehicle_id)?;
        let codes: Vec<String> = s::vehicle_signals
            .filter(s::smartcar_vehicle_id.eq_any(&ids))
            .select(s::code)
            .distinct()
            .order(s::code.asc())
            .load(&mut *conn)?;
        let mut latest = Vec::with_capacity(codes.len());
        for code in codes {
            let row = s::vehicle_signals
                .filter(s::smartcar_vehicle_id.eq_any(&ids))
                .filter(s::code.eq(&code))
                .order((s::observed_at.desc(), s::id.desc()))
                .select(SignalRow::as_select())
                .first(&mut *conn)?;
            latest.push(row);
        }
        Ok(latest)
    }

    /// The values of one signal of an app vehicle, newest first.
    pub fn signal_history(
        &self,
        vehicle_id: &str,
        code: &str,
        limit: i64,
    ) -> Result<Vec<SignalRow>> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        let ids = smartcar_ids(&mut conn, vehicle_id)?;
        Ok(s::vehicle_signals
            .filter(s::smartcar_vehicle_id.eq_any(&ids))
            .filter(s::code.eq(code))
            .order((s::observed_at.desc(), s::id.desc()))
            .limit(limit.max(0))
            .select(SignalRow::as_select())
            .load(&mut *conn)?)
    }

    /// The open error conditions of a Smartcar vehicle, oldest first.
    pub fn open_errors(&self, smartcar_vehicle_id: &str) -> Result<Vec<VehicleErrorRow>> {
        let mut conn = self.conn()?;
        open_errors_in(&mut conn, smartcar_vehicle_id)
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

    /// The Smartcar vehicles registered for an app vehicle.
    pub fn vehicles_for(&self, vehicle_id: &str) -> Result<Vec<crate::Vehicle>> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        Ok(v::smartcar_vehicles
            .filter(v::vehicle_id.eq(vehicle_id))
            .order(v::id.asc())
            .select(crate::Vehicle::as_select())
            .load(&mut *conn)?)
    }

    /// One meter entry.
    pub fn find_entry(&self, id: i64) -> Result<Option<MeterEntry>> {
        use meter_entries::dsl as m;
        let mut conn = self.conn()?;
        Ok(m::meter_entries
            .filter(m::id.eq(id))
            .select(MeterEntry::as_select())
            .first(&mut *conn)
            .optional()?)
    }

    /// A page of an app vehicle's entries, newest reading first.
    pub fn entries_page(
        &self,
        vehicle_id: &str,
        include_void: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MeterEntry>> {
        use meter_entries::dsl as m;
        let mut conn = self.conn()?;
        let mut query = m::meter_entries
            .filter(m::vehicle_id.eq(vehicle_id))
            .order((m::entry_date.desc(), m::id.desc()))
            .limit(limit.max(0))
            .offset(offset.max(0))
            .select(MeterEntry::as_select())
            .into_boxed();
        if !include_void {
            query = query.filter(m::void.eq(false));
        }
        Ok(query.load(&mut *conn)?)
    }

    /// Voids an entry: it stays, marked, and leaves the rules and the latest value.
    pub fn void_entry(&self, id: i64, reason: &str) -> Result<MeterEntry> {
        use meter_entries::dsl as m;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid("a void needs a reason".into()));
        }
        let mut conn = self.conn()?;
        let n = diesel::update(m::meter_entries.filter(m::id.eq(id)))
            .set((m::void.eq(true), m::void_reason.eq(reason)))
            .execute(&mut *conn)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no meter entry {id}")));
        }
        drop(conn);
        self.find_entry(id)?
            .ok_or_else(|| StoreError::NotFound(format!("no meter entry {id}")))
    }

    /// Makes a void entry active again if the rules accept it against the active entries now.
    pub fn unvoid_entry(
        &self,
        id: i64,
        policy: &Policy,
    ) -> Result<std::result::Result<MeterEntry, UnvoidRefusal>> {
        use meter_entries::dsl as m;
        let mut conn = self.conn()?;
        let outcome = conn.transaction(|conn| {
            // A write first: on SQLite it takes the write lock before anything is read.
            diesel::update(m::meter_entries.filter(m::id.eq(id)))
                .set(m::void.eq(m::void))
                .execute(conn)?;
            let Some(entry) = m::meter_entries
                .filter(m::id.eq(id))
                .select(MeterEntry::as_select())
                .first(conn)
                .optional()?
            else {
                return Err(StoreError::NotFound(format!("no meter entry {id}")));
            };
            if !entry.void {
                return Ok(Err(UnvoidRefusal::NotVoid));
            }
            lock_app_vehicle(conn, &entry.vehicle_id)?;
            let reading = Reading::new(entry.distance(), crate::to_millis(entry.entry_date));
            // Judged as a batch of one, against the active entries now.
            let mut candidate = [Candidate {
                vehicle: entry.vehicle_id.as_str(),
                reading,
                stored: Default::default(),
            }];
            let window = chrono::TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
            let [stored] = <[_; 1]>::try_from(load_neighbours(conn, &candidate, window)?)
                .map_err(|_| StoreError::Invalid("no neighbours".into()))?;
            candidate[0].stored = stored;
            let decision = judge(&candidate, policy).remove(0).decision;
            if !decision.is_accept() {
                return Ok(Err(UnvoidRefusal::Rules(decision)));
            }
            diesel::update(m::meter_entries.filter(m::id.eq(id)))
                .set((m::void.eq(false), m::void_reason.eq(None::<String>)))
                .execute(conn)?;
            Ok(Ok(()))
        })?;
        drop(conn);
        match outcome {
            Ok(()) => Ok(Ok(self.find_entry(id)?.ok_or_else(|| {
                StoreError::NotFound(format!("no meter entry {id}"))
            })?)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Unprocessed and dead events, for the backlog gauges.
    pub fn backlog(&self) -> Result<(i64, i64)> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        let unprocessed = e::smartcar_webhook_events
            .filter(e::processed.eq(false))
            .count()
            .get_result(&mut *conn)?;
        let dead = e::smartcar_webhook_events
            .filter(e::outcome.eq(Outcome::Dead.as_str()))
            .count()
            .get_result(&mut *conn)?;
        Ok((unprocessed, dead))
    }

    /// When the newest event arrived.
    pub fn newest_event_at(&self) -> Result<Option<NaiveDateTime>> {
        use diesel::dsl::max;
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .select(max(e::received_at))
            .first(&mut *conn)?)
    }
}

fn smartcar_ids(conn: &mut DbConnection, vehicle_id: &str) -> Result<Vec<String>> {
    use smartcar_vehicles::dsl as v;
    Ok(v::smartcar_vehicles
        .filter(v::vehicle_id.eq(vehicle_id))
        .select(v::smartcar_vehicle_id)
        .load(conn)?)
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
/// still open.
pub(crate) fn record_errors(
    conn: &mut DbConnection,
    event_id: &str,
    vehicle: &crate::Vehicle,
    reports: &[ErrorReport],
    at: NaiveDateTime,
) -> Result<()> {
    use smartcar_vehicles::dsl as v;
    use vehicle_errors::dsl as e;
    let smartcar_vehicle_id = vehicle.smartcar_vehicle_id.as_str();
    for report in reports {
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
                ))
                .execute(conn)?;
        }
    }
    let still_open = open_errors_in(conn, smartcar_vehicle_id)?;
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
            v::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}
