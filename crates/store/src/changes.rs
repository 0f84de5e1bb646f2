//! The ordered record of changes an app follows: one row per change to a meter entry or a
//! vehicle, written in the same transaction as the change itself, with a strictly increasing
//! `position` that readers page through (`GET /api/changes`) and notifications are sent from.
//!
//! **No gaps for a reader.** Positions come from the one row of `change_positions`, updated by
//! the statement that inserts a transaction's changes, which every writer runs as its last write
//! before `COMMIT`. That row stays locked until the transaction ends, so a second transaction
//! takes its positions only after the first has committed (or rolled back, leaving nothing): the
//! positions become visible in the order they are handed out, and a reader that has seen
//! position 42 can never later find a 41. SQLite has one writer at a time, so the same holds.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConnection;
use crate::prepared::{self, Bind};
#[cfg(feature = "sqlite")]
use crate::schema::changes;
use crate::views;
use crate::{MeterEntry, Result, StoreError, Vehicle, VehicleErrorRow};

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// A meter entry was written (active, or void with its reason).
    MeterEntryCreated,
    /// An active meter entry was voided (by an operator, or by self-healing).
    MeterEntryVoided,
    /// A void meter entry was made active again.
    MeterEntryUnvoided,
    /// The vehicle needs its owner to reconnect it.
    VehicleNeedsReconnection,
    /// The vehicle answers again after it needed reconnection.
    VehicleReconnected,
    /// An error condition of the vehicle was opened.
    VehicleErrorOpened,
    /// An error condition of the vehicle was resolved.
    VehicleErrorResolved,
    /// A Smartcar vehicle was registered for an app vehicle.
    VehicleRegistered,
    /// A vehicle was deactivated (its owner disconnected it).
    VehicleDeactivated,
    /// A vehicle was activated again.
    VehicleActivated,
}

impl ChangeType {
    /// Every type, in the order the docs list them.
    pub const ALL: [ChangeType; 10] = [
        ChangeType::MeterEntryCreated,
        ChangeType::MeterEntryVoided,
        ChangeType::MeterEntryUnvoided,
        ChangeType::VehicleNeedsReconnection,
        ChangeType::VehicleReconnected,
        ChangeType::VehicleErrorOpened,
        ChangeType::VehicleErrorResolved,
        ChangeType::VehicleRegistered,
        ChangeType::VehicleDeactivated,
        ChangeType::VehicleActivated,
    ];

    /// The type as stored and sent: `meter_entry.created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::MeterEntryCreated => "meter_entry.created",
            ChangeType::MeterEntryVoided => "meter_entry.voided",
            ChangeType::MeterEntryUnvoided => "meter_entry.unvoided",
            ChangeType::VehicleNeedsReconnection => "vehicle.needs_reconnection",
            ChangeType::VehicleReconnected => "vehicle.reconnected",
            ChangeType::VehicleErrorOpened => "vehicle.error_opened",
            ChangeType::VehicleErrorResolved => "vehicle.error_resolved",
            ChangeType::VehicleRegistered => "vehicle.registered",
            ChangeType::VehicleDeactivated => "vehicle.deactivated",
            ChangeType::VehicleActivated => "vehicle.activated",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeType {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        ChangeType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown change type {s:?}")))
    }
}

impl Serialize for ChangeType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A change to record, with the object as the API shows it at that moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewChange {
    pub change_type: ChangeType,
    pub vehicle_id: Option<String>,
    pub smartcar_vehicle_id: Option<String>,
    /// The object as JSON: an entry's view, a vehicle's view (its health), an error condition.
    pub data: String,
    pub created_at: NaiveDateTime,
}

impl NewChange {
    /// A change to a meter entry; `data` is the entry's view.
    pub(crate) fn entry(
        change_type: ChangeType,
        entry: &MeterEntry,
        smartcar_vehicle_id: Option<&str>,
        at: NaiveDateTime,
    ) -> NewChange {
        NewChange {
            change_type,
            vehicle_id: Some(entry.vehicle_id.clone()),
            smartcar_vehicle_id: smartcar_vehicle_id.map(str::to_owned),
            data: to_json(&views::entry(entry)),
            created_at: at,
        }
    }

    /// A change to a vehicle; `data` is the vehicle's view (its state and health).
    pub(crate) fn vehicle(change_type: ChangeType, vehicle: &Vehicle, at: NaiveDateTime) -> Self {
        NewChange {
            change_type,
            vehicle_id: Some(vehicle.vehicle_id.clone()),
            smartcar_vehicle_id: Some(vehicle.smartcar_vehicle_id.clone()),
            data: to_json(&views::vehicle(vehicle)),
            created_at: at,
        }
    }

    /// An error condition opened or resolved; `data` is the condition's view.
    pub(crate) fn vehicle_error(
        change_type: ChangeType,
        vehicle_id: &str,
        error: &VehicleErrorRow,
        at: NaiveDateTime,
    ) -> NewChange {
        NewChange {
            change_type,
            vehicle_id: Some(vehicle_id.to_owned()),
            smartcar_vehicle_id: Some(error.smartcar_vehicle_id.clone()),
            data: to_json(&views::vehicle_error(error)),
            created_at: at,
        }
    }
}

/// The counter's value after an update.
#[cfg(feature = "sqlite")]
#[derive(QueryableByName)]
struct LastPosition {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_position: i64,
}

fn to_json(view: &impl Serialize) -> String {
    // A view of plain fields cannot fail to serialise.
    serde_json::to_string(view).unwrap_or_else(|_| "{}".to_owned())
}

/// Records `new` changes, in order, with the next positions. Run it as the transaction's last
/// write: from here until `COMMIT` the positions row is locked, so concurrent writers take their
/// positions in commit order (the module's docs).
pub(crate) fn record_changes(conn: &mut DbConnection, new: &[NewChange]) -> Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(new.len()).unwrap_or(i64::MAX);
    match conn {
        // One round trip: take the positions and insert the rows in one statement.
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            use prepared::column;
            prepared::fixed!(
                "WITH taken AS (UPDATE change_positions SET last_position = last_position + ? \
                     WHERE id = 1 RETURNING last_position) \
                 INSERT INTO changes (position, change_type, vehicle_id, smartcar_vehicle_id, \
                     data, created_at) \
                 SELECT taken.last_position - ? + c.i, c.change_type, c.vehicle_id, \
                     c.smartcar_vehicle_id, c.data, c.created_at \
                 FROM taken, unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[]) \
                     WITH ORDINALITY AS c(change_type, vehicle_id, smartcar_vehicle_id, data, \
                     created_at, i)",
                [
                    Bind::BigInt(count),
                    Bind::BigInt(count),
                    Bind::Texts(column(new, |c| c.change_type.as_str())),
                    Bind::OptionalTexts(column(new, |c| c.vehicle_id.as_deref())),
                    Bind::OptionalTexts(column(new, |c| c.smartcar_vehicle_id.as_deref())),
                    Bind::Texts(column(new, |c| c.data.as_str())),
                    Bind::Timestamps(column(new, |c| c.created_at)),
                ]
            )
            .execute(c)?;
        }
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => {
            // Constant text, so that it is prepared once (Diesel keeps no `RETURNING` update).
            let taken: Vec<LastPosition> = prepared::fixed!(
                "UPDATE change_positions SET last_position = last_position + ? WHERE id = 1 \
                 RETURNING last_position",
                [Bind::BigInt(count)]
            )
            .load(c)?;
            let last = taken.first().map_or(count, |t| t.last_position);
            let first = last - count + 1;
            for (position, change) in (first..).zip(new) {
                diesel::insert_into(changes::table)
                    .values((
                        changes::position.eq(position),
                        changes::change_type.eq(change.change_type.as_str()),
                        changes::vehicle_id.eq(change.vehicle_id.as_deref()),
                        changes::smartcar_vehicle_id.eq(change.smartcar_vehicle_id.as_deref()),
                        changes::data.eq(&change.data),
                        changes::created_at.eq(change.created_at),
                    ))
                    .execute(c)?;
            }
        }
    }
    Ok(())
}
