//! Smartcar vehicles and the app vehicles they feed: registration, activation, look-ups, locks.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::changes::{record_changes, ChangeType, NewChange, ERASED};
use crate::db::{on_backend, DbConnection};
use crate::prepared::{self, Bind};
use crate::schema::{
    meter_entries, smartcar_sync_logs, smartcar_vehicles, smartcar_webhook_events, vehicle_errors,
    vehicle_signals,
};
use crate::store::delete_in_batches;
use crate::{now, Result, Store, StoreError};

/// A registered Smartcar vehicle and the app vehicle it feeds.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = smartcar_vehicles)]
pub struct Vehicle {
    /// Row id.
    pub id: i64,
    /// Smartcar's vehicle id.
    pub smartcar_vehicle_id: String,
    /// The app's vehicle id that meter entries are written for.
    pub vehicle_id: String,
    /// Whether events for it are processed.
    pub is_active: bool,
    /// The latest unresolved error Smartcar reported, if any.
    pub last_error: Option<String>,
    /// When that error was recorded.
    pub last_error_at: Option<NaiveDateTime>,
    /// When it was registered (UTC).
    pub created_at: NaiveDateTime,
    /// When it last changed (UTC).
    pub updated_at: NaiveDateTime,
    /// An open error only the owner can fix (reconnect the car, renew an account, grant
    /// permissions): set until a successful state arrives or the error is resolved.
    pub needs_reconnection: bool,
}

/// What [`Store::purge_vehicle`] removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Purged {
    /// The registration that was removed.
    pub vehicle: Vehicle,
    /// Meter entries: those made from its events, and every entry of its app vehicle when no
    /// other Smartcar vehicle feeds that one.
    pub entries: u64,
    /// Signal values.
    pub signals: u64,
    /// Error conditions.
    pub errors: u64,
    /// Audit rows of its decisions.
    pub sync_logs: u64,
    /// Received events that name it.
    pub events: u64,
}

/// Rows deleted per statement by a purge.
const PURGE_BATCH: i64 = 1_000;

impl Store {
    /// Erases a Smartcar vehicle: its registration, its meter entries (see [`Purged::entries`]),
    /// signal values, error conditions, sync logs, and the received events that name it, in one
    /// transaction (all or nothing). The vehicle's row is locked first, so that no delivery for
    /// it is written meanwhile; one that arrives afterwards finds it unknown and waits as
    /// `unknown_vehicle`, like any unregistered car's.
    pub fn purge_vehicle(&self, smartcar_vehicle_id: &str) -> Result<Purged> {
        use meter_entries::dsl as m;
        use smartcar_sync_logs::dsl as l;
        use smartcar_vehicles::dsl as v;
        use smartcar_webhook_events::dsl as e;
        use vehicle_errors::dsl as err;
        use vehicle_signals::dsl as sig;
        let id = smartcar_vehicle_id.to_owned();
        let mut conn = self.conn()?;
        conn.transaction::<_, StoreError, _>(|conn| {
            // A write first: the lock from the start on both backends (see `lock_app_vehicle`).
            let locked =
                diesel::update(v::smartcar_vehicles.filter(v::smartcar_vehicle_id.eq(&id)))
                    .set(v::updated_at.eq(v::updated_at))
                    .execute(conn)?;
            let vehicle = match find_vehicle(conn, &id)? {
                Some(vehicle) if locked > 0 => vehicle,
                _ => {
                    return Err(StoreError::NotFound(format!(
                        "no vehicle with Smartcar id {id}"
                    )))
                }
            };
            let sole = smartcar_ids(conn, &vehicle.vehicle_id)?.len() == 1;
            let app_id = vehicle.vehicle_id.clone();
            let ignore = |_| {};
            let entries = delete_in_batches(
                conn,
                PURGE_BATCH,
                ignore,
                |conn, batch| {
                    let of_its_events = m::event_id.eq_any(
                        e::smartcar_webhook_events
                            .filter(e::smartcar_vehicle_id.eq(&id))
                            .select(e::event_id.nullable()),
                    );
                    let query = m::meter_entries.select(m::id).order(m::id).limit(batch);
                    Ok(if sole {
                        query
                            .filter(m::vehicle_id.eq(&app_id).or(of_its_events))
                            .load(conn)?
                    } else {
                        query.filter(of_its_events).load(conn)?
                    })
                },
                |conn, ids| {
                    // Another car's refused readings may name one of these as what refused
                    // them: the link goes with it (the readings stay as they are).
                    diesel::update(m::meter_entries.filter(m::refused_by.eq_any(ids)))
                        .set(m::refused_by.eq(None::<i64>))
                        .execute(conn)?;
                    Ok(diesel::delete(m::meter_entries.filter(m::id.eq_any(ids))).execute(conn)?)
                },
            )?;
            let signals = delete_in_batches(
                conn,
                PURGE_BATCH,
                ignore,
                |conn, batch| {
                    Ok(sig::vehicle_signals
                        .filter(sig::smartcar_vehicle_id.eq(&id))
                        .select(sig::id)
                        .order(sig::id)
                        .limit(batch)
                        .load(conn)?)
                },
                |conn, ids| {
                    Ok(
                        diesel::delete(sig::vehicle_signals.filter(sig::id.eq_any(ids)))
                            .execute(conn)?,
                    )
                },
            )?;
            let errors =
                diesel::delete(err::vehicle_errors.filter(err::smartcar_vehicle_id.eq(&id)))
                    .execute(conn)? as u64;
            let sync_logs = delete_in_batches(
                conn,
                PURGE_BATCH,
                ignore,
                |conn, batch| {
                    Ok(l::smartcar_sync_logs
                        .filter(
                            l::smartcar_vehicle_id.eq(&id).or(l::event_id.eq_any(
                                e::smartcar_webhook_events
                                    .filter(e::smartcar_vehicle_id.eq(&id))
                                    .select(e::event_id.nullable()),
                            )),
                        )
                        .select(l::id)
                        .order(l::id)
                        .limit(batch)
                        .load(conn)?)
                },
                |conn, ids| {
                    Ok(
                        diesel::delete(l::smartcar_sync_logs.filter(l::id.eq_any(ids)))
                            .execute(conn)?,
                    )
                },
            )?;
            let events = delete_in_batches(
                conn,
                PURGE_BATCH,
                ignore,
                |conn, batch| {
                    Ok(e::smartcar_webhook_events
                        .filter(e::smartcar_vehicle_id.eq(&id))
                        .select(e::id)
                        .order(e::id)
                        .limit(batch)
                        .load(conn)?)
                },
                |conn, ids| {
                    Ok(
                        diesel::delete(e::smartcar_webhook_events.filter(e::id.eq_any(ids)))
                            .execute(conn)?,
                    )
                },
            )?;
            diesel::delete(v::smartcar_vehicles.filter(v::smartcar_vehicle_id.eq(&id)))
                .execute(conn)?;
            erase_changes(conn, &vehicle, sole, entries)?;
            Ok(Purged {
                vehicle,
                entries,
                signals,
                errors,
                sync_logs,
                events,
            })
        })
    }

    /// How many registered vehicles need their owner (see [`Vehicle::needs_reconnection`]).
    pub fn vehicles_needing_reconnection(&self) -> Result<i64> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        Ok(v::smartcar_vehicles
            .filter(v::needs_reconnection.eq(true))
            .count()
            .get_result(&mut *conn)?)
    }

    /// Registers a Smartcar vehicle for an app vehicle, or re-points and re-activates it.
    pub fn register_vehicle(&self, smartcar_vehicle_id: &str, vehicle_id: &str) -> Result<Vehicle> {
        use smartcar_vehicles::dsl as v;
        if smartcar_vehicle_id.trim().is_empty() || vehicle_id.trim().is_empty() {
            return Err(StoreError::Invalid(
                "vehicle ids must not be empty".to_owned(),
            ));
        }
        let at = now();
        let row = (
            v::smartcar_vehicle_id.eq(smartcar_vehicle_id),
            v::vehicle_id.eq(vehicle_id),
            v::is_active.eq(true),
            v::created_at.eq(at),
            v::updated_at.eq(at),
        );
        let update = (
            v::vehicle_id.eq(vehicle_id),
            v::is_active.eq(true),
            v::updated_at.eq(at),
        );
        self.write(|tx| {
            let before = find_vehicle(tx.conn, smartcar_vehicle_id)?;
            on_backend!(&mut *tx.conn, |c| diesel::insert_into(v::smartcar_vehicles)
                .values(row)
                .on_conflict(v::smartcar_vehicle_id)
                .do_update()
                .set(update)
                .execute(c))?;
            let vehicle = find_vehicle(tx.conn, smartcar_vehicle_id)?.ok_or_else(|| {
                StoreError::NotFound(format!("vehicle {smartcar_vehicle_id} vanished"))
            })?;
            // A registration that changes nothing (the same mapping, active) records nothing.
            if before.is_none_or(|b| b.vehicle_id != vehicle.vehicle_id || !b.is_active) {
                let change = NewChange::vehicle(ChangeType::VehicleRegistered, &vehicle, at);
                record_changes(tx.conn, &[change])?;
            }
            Ok(vehicle)
        })
    }

    /// Turns processing for a vehicle on or off.
    pub fn set_vehicle_active(&self, smartcar_vehicle_id: &str, active: bool) -> Result<Vehicle> {
        use smartcar_vehicles::dsl as v;
        let at = now();
        self.write(|tx| {
            let before = find_vehicle(tx.conn, smartcar_vehicle_id)?.ok_or_else(|| {
                StoreError::NotFound(format!("no vehicle with Smartcar id {smartcar_vehicle_id}"))
            })?;
            diesel::update(
                v::smartcar_vehicles.filter(v::smartcar_vehicle_id.eq(smartcar_vehicle_id)),
            )
            .set((v::is_active.eq(active), v::updated_at.eq(at)))
            .execute(&mut *tx.conn)?;
            let vehicle = find_vehicle(tx.conn, smartcar_vehicle_id)?.ok_or_else(|| {
                StoreError::NotFound(format!("vehicle {smartcar_vehicle_id} vanished"))
            })?;
            if before.is_active != active {
                let change_type = if active {
                    ChangeType::VehicleActivated
                } else {
                    ChangeType::VehicleDeactivated
                };
                record_changes(tx.conn, &[NewChange::vehicle(change_type, &vehicle, at)])?;
            }
            Ok(vehicle)
        })
    }

    /// All registered vehicles, oldest first.
    pub fn list_vehicles(&self) -> Result<Vec<Vehicle>> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        Ok(v::smartcar_vehicles
            .order(v::id.asc())
            .select(Vehicle::as_select())
            .load(&mut *conn)?)
    }

    /// A page of registered vehicles in registration order, after the one with row id `after`:
    /// registrations made meanwhile are appended, never shift a page.
    pub fn vehicles_page(&self, after: Option<i64>, limit: i64) -> Result<Vec<Vehicle>> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        Ok(v::smartcar_vehicles
            .filter(v::id.gt(after.unwrap_or(i64::MIN)))
            .order(v::id.asc())
            .limit(limit.max(0))
            .select(Vehicle::as_select())
            .load(&mut *conn)?)
    }

    /// The vehicle with this Smartcar id.
    pub fn find_vehicle(&self, smartcar_vehicle_id: &str) -> Result<Option<Vehicle>> {
        let mut conn = self.conn()?;
        find_vehicle(&mut conn, smartcar_vehicle_id)
    }

    /// The Smartcar vehicles registered for an app vehicle.
    pub fn vehicles_for(&self, vehicle_id: &str) -> Result<Vec<Vehicle>> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        Ok(v::smartcar_vehicles
            .filter(v::vehicle_id.eq(vehicle_id))
            .order(v::id.asc())
            .select(Vehicle::as_select())
            .load(&mut *conn)?)
    }
}

pub(crate) fn find_vehicle(
    conn: &mut DbConnection,
    smartcar_vehicle_id: &str,
) -> Result<Option<Vehicle>> {
    use smartcar_vehicles::dsl as v;
    // No LIMIT: the id is unique, and a bound LIMIT makes SQLite re-prepare the statement.
    Ok(v::smartcar_vehicles
        .filter(v::smartcar_vehicle_id.eq(smartcar_vehicle_id))
        .select(Vehicle::as_select())
        .load(conn)?
        .pop())
}

/// Locks the rows of every Smartcar vehicle that feeds `vehicle_id` until the transaction ends.
/// A no-op UPDATE takes the row locks on both backends without backend-specific SQL.
pub(crate) fn lock_app_vehicle(conn: &mut DbConnection, vehicle_id: &str) -> Result<()> {
    use smartcar_vehicles::dsl as v;
    diesel::update(v::smartcar_vehicles.filter(v::vehicle_id.eq(vehicle_id)))
        .set(v::updated_at.eq(v::updated_at))
        .execute(conn)?;
    Ok(())
}

/// The Smartcar vehicle ids registered for an app vehicle.
pub(crate) fn smartcar_ids(conn: &mut DbConnection, vehicle_id: &str) -> Result<Vec<String>> {
    use smartcar_vehicles::dsl as v;
    Ok(v::smartcar_vehicles
        .filter(v::vehicle_id.eq(vehicle_id))
        .select(v::smartcar_vehicle_id)
        .load(conn)?)
}

/// The rows of these Smartcar vehicles. On PostgreSQL they are locked until the transaction ends,
/// with every other Smartcar vehicle feeding the same app vehicles (returned too), all taken in
/// the order of their ids, so two transactions that share vehicles cannot deadlock. SQLite's
/// single write lock (taken by `BEGIN IMMEDIATE`) serialises writers already.
pub(crate) fn lock_vehicles(
    conn: &mut DbConnection,
    smartcar_vehicle_ids: &[&str],
) -> Result<Vec<Vehicle>> {
    if smartcar_vehicle_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement text whatever the number of vehicles (an array, not `IN (?, ?, …)`), so
    // that it is prepared once (`crate::prepared`).
    match conn {
        // PostgreSQL locks the rows in the ORDER BY order (LockRows sits above the sort).
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => Ok(prepared::fixed!(
            "SELECT id, smartcar_vehicle_id, vehicle_id, is_active, last_error, last_error_at, \
               created_at, updated_at, needs_reconnection \
             FROM smartcar_vehicles \
             WHERE smartcar_vehicle_id = ANY(?) OR vehicle_id IN ( \
               SELECT s.vehicle_id FROM smartcar_vehicles s WHERE s.smartcar_vehicle_id = ANY(?)) \
             ORDER BY smartcar_vehicle_id \
             FOR UPDATE",
            [
                Bind::Texts(smartcar_vehicle_ids.to_vec()),
                Bind::Texts(smartcar_vehicle_ids.to_vec())
            ]
        )
        .load(c)?),
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => Ok(prepared::fixed!(
            "SELECT id, smartcar_vehicle_id, vehicle_id, is_active, last_error, last_error_at, \
               created_at, updated_at, needs_reconnection \
             FROM smartcar_vehicles \
             WHERE smartcar_vehicle_id IN (SELECT value FROM json_each(?))",
            [Bind::Text(
                serde_json::to_string(smartcar_vehicle_ids).unwrap_or_default()
            )]
        )
        .load(c)?),
    }
}

/// The record of changes forgets what an erased vehicle sent: its earlier changes keep their
/// place (a reader's cursor stays valid) with their objects erased, and a `vehicle.deleted`
/// change says so. `sole`: it was the only Smartcar vehicle of its app vehicle, whose changes
/// go too.
fn erase_changes(
    conn: &mut DbConnection,
    vehicle: &Vehicle,
    sole: bool,
    entries: u64,
) -> Result<()> {
    use crate::schema::changes::dsl as c;
    let its = c::smartcar_vehicle_id.eq(&vehicle.smartcar_vehicle_id);
    if sole {
        diesel::update(c::changes.filter(its.or(c::vehicle_id.eq(&vehicle.vehicle_id))))
            .set(c::data.eq(ERASED))
            .execute(conn)?;
    } else {
        diesel::update(c::changes.filter(its))
            .set(c::data.eq(ERASED))
            .execute(conn)?;
    }
    let at = now();
    let data = serde_json::json!({
        "smartcar_vehicle_id": vehicle.smartcar_vehicle_id,
        "vehicle_id": vehicle.vehicle_id,
        "entries_deleted": entries,
    });
    let change = NewChange {
        change_type: ChangeType::VehicleDeleted,
        vehicle_id: Some(vehicle.vehicle_id.clone()),
        smartcar_vehicle_id: Some(vehicle.smartcar_vehicle_id.clone()),
        data: data.to_string(),
        created_at: at,
    };
    record_changes(conn, &[change])
}
