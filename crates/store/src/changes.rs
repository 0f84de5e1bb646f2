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
use crate::schema::{change_positions, changes};
use crate::views;
use crate::{EntryCursor, MeterEntry, Result, Store, StoreError, Vehicle, VehicleErrorRow};

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// A meter entry was written (active, or void with its reason).
    MeterEntryCreated,
    /// An active meter entry was voided (by an operator, or by self-healing).
    MeterEntryVoided,
    /// A void meter entry was made active again.
    MeterEntryUnvoided,
    /// A void meter entry was deleted: `events reprocess` judges its reading anew (and writes
    /// what it decides now as a new entry), or its vehicle was erased.
    MeterEntryDeleted,
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
    /// A vehicle was erased with everything it sent (`vehicles delete --purge`); the earlier
    /// changes about it keep their place in the record, their objects erased.
    VehicleDeleted,
}

impl ChangeType {
    /// Every type, in the order the docs list them.
    pub const ALL: [ChangeType; 12] = [
        ChangeType::MeterEntryCreated,
        ChangeType::MeterEntryVoided,
        ChangeType::MeterEntryUnvoided,
        ChangeType::MeterEntryDeleted,
        ChangeType::VehicleNeedsReconnection,
        ChangeType::VehicleReconnected,
        ChangeType::VehicleErrorOpened,
        ChangeType::VehicleErrorResolved,
        ChangeType::VehicleRegistered,
        ChangeType::VehicleDeactivated,
        ChangeType::VehicleActivated,
        ChangeType::VehicleDeleted,
    ];

    /// The type as stored and sent: `meter_entry.created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::MeterEntryCreated => "meter_entry.created",
            ChangeType::MeterEntryVoided => "meter_entry.voided",
            ChangeType::MeterEntryUnvoided => "meter_entry.unvoided",
            ChangeType::MeterEntryDeleted => "meter_entry.deleted",
            ChangeType::VehicleNeedsReconnection => "vehicle.needs_reconnection",
            ChangeType::VehicleReconnected => "vehicle.reconnected",
            ChangeType::VehicleErrorOpened => "vehicle.error_opened",
            ChangeType::VehicleErrorResolved => "vehicle.error_resolved",
            ChangeType::VehicleRegistered => "vehicle.registered",
            ChangeType::VehicleDeactivated => "vehicle.deactivated",
            ChangeType::VehicleActivated => "vehicle.activated",
            ChangeType::VehicleDeleted => "vehicle.deleted",
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

impl NewChange {
    /// A void entry deleted: `data` names it (`id`, `vehicle_id`, `event_id`).
    pub(crate) fn entry_deleted(
        id: i64,
        vehicle_id: &str,
        event_id: Option<&str>,
        smartcar_vehicle_id: Option<&str>,
        at: NaiveDateTime,
    ) -> NewChange {
        let data = serde_json::json!({ "id": id, "vehicle_id": vehicle_id, "event_id": event_id });
        NewChange {
            change_type: ChangeType::MeterEntryDeleted,
            vehicle_id: Some(vehicle_id.to_owned()),
            smartcar_vehicle_id: smartcar_vehicle_id.map(str::to_owned),
            data: data.to_string(),
            created_at: at,
        }
    }
}

/// What an erased vehicle's earlier changes keep of their object.
pub(crate) const ERASED: &str = r#"{"erased":true}"#;

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

/// A recorded change, as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = changes)]
pub struct Change {
    /// Its place in the record: strictly increasing, without gaps (until pruned).
    pub position: i64,
    /// What it is about: `meter_entry.created`, … ([`ChangeType::as_str`]).
    pub change_type: String,
    /// The app's vehicle id.
    pub vehicle_id: Option<String>,
    /// The Smartcar vehicle id.
    pub smartcar_vehicle_id: Option<String>,
    /// The object as the API showed it when it changed, as JSON.
    pub data: String,
    /// When it was recorded (UTC).
    pub created_at: NaiveDateTime,
}

/// Which changes a reader wants; every change when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only these types (all when empty).
    pub types: Vec<ChangeType>,
    /// Only those of this app vehicle.
    pub vehicle_id: Option<String>,
}

/// A page of the record read after a position.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    /// The changes, by position.
    pub changes: Vec<Change>,
    /// Where the next read continues: the last change's position, or further when the filter
    /// skipped changes that were all read (so a filtered reader does not scan them again).
    pub next: i64,
    /// Whether more changes than `limit` were there.
    pub has_more: bool,
}

/// Why a page of changes cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// Changes after the position were pruned: a reader would miss them.
    #[error("changes after position {after} were pruned (the oldest kept is {oldest}); read from the start again")]
    Gone {
        /// The position asked for.
        after: i64,
        /// The oldest position still kept.
        oldest: i64,
    },
    /// The position is beyond the last one recorded (a cursor of another database).
    #[error("position {after} is beyond the last recorded change ({last})")]
    Ahead {
        /// The position asked for.
        after: i64,
        /// The last position recorded.
        last: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many positions a filtered read of the changes walks at most.
const FILTERED_SCAN: i64 = 10_000;

impl Store {
    /// Up to `limit` changes after position `after` that pass `filter`, by position; `None` reads
    /// from the oldest change kept. A position older than what is kept is
    /// [`ChangesError::Gone`], never a silent skip.
    pub fn changes_after(
        &self,
        after: Option<i64>,
        limit: i64,
        filter: &ChangeFilter,
    ) -> std::result::Result<ChangesPage, ChangesError> {
        use changes::dsl as c;
        let limit = limit.max(1);
        let mut conn = self.conn()?;
        // Read first: every position up to `last` had committed, so the page below sees them all.
        let last = last_position(&mut conn)?;
        let from = after.unwrap_or(0);
        if from > last {
            return Err(ChangesError::Ahead { after: from, last });
        }
        // A filtered read walks at most FILTERED_SCAN positions (the vehicle and type are not
        // indexed, to keep writes cheap) and answers where it stopped, so no request reads the
        // whole record however rare its matches.
        let filtered = !filter.types.is_empty() || filter.vehicle_id.is_some();
        let end = if filtered {
            from.saturating_add(FILTERED_SCAN).min(last)
        } else {
            last
        };
        let mut query = c::changes
            .filter(c::position.gt(from))
            .filter(c::position.le(end))
            .order(c::position.asc())
            .limit(limit + 1)
            .select(Change::as_select())
            .into_boxed();
        if !filter.types.is_empty() {
            query = query.filter(c::change_type.eq_any(filter.types.iter().map(|t| t.as_str())));
        }
        if let Some(vehicle) = &filter.vehicle_id {
            query = query.filter(c::vehicle_id.eq(vehicle));
        }
        let mut found = query.load(&mut *conn).map_err(StoreError::from)?;
        // Checked after the read: a prune that ran before it shows here, so a page with a hole
        // is never answered (one that runs after it may make this answer Gone needlessly).
        if after.is_some() {
            let oldest = oldest_position(&mut conn, last)?;
            if from < oldest - 1 {
                return Err(ChangesError::Gone {
                    after: from,
                    oldest,
                });
            }
        }
        let overflow = found.len() as i64 > limit;
        found.truncate(limit as usize);
        let next = match found.last() {
            Some(change) if overflow => change.position,
            _ => end.max(from),
        };
        Ok(ChangesPage {
            changes: found,
            next,
            has_more: overflow || end < last,
        })
    }

    /// The last position recorded (0 before the first change).
    pub fn last_change_position(&self) -> Result<i64> {
        let mut conn = self.conn()?;
        last_position(&mut conn)
    }

    /// Deletes the changes recorded before `before`, `batch` rows per transaction; returns how
    /// many went. Positions follow time closely, so the first kept position is found by walking
    /// the primary key (there is no index on `created_at`), and everything below it goes.
    pub fn prune_changes(
        &self,
        before: NaiveDateTime,
        batch: i64,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        use changes::dsl as c;
        let mut conn = self.conn()?;
        let cut = first_kept(&mut conn, before)?;
        crate::store::delete_in_batches(
            &mut conn,
            batch,
            progress,
            |conn, batch| {
                Ok(c::changes
                    .filter(c::position.lt(cut))
                    .order(c::position.asc())
                    .limit(batch)
                    .select(c::position)
                    .load(conn)?)
            },
            |conn, positions| {
                let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
                    return Ok(0);
                };
                // Their notifications and attempts go with them.
                crate::notifications::delete_range(conn, first, last)?;
                Ok(diesel::delete(
                    c::changes
                        .filter(c::position.ge(first))
                        .filter(c::position.le(last)),
                )
                .execute(conn)?)
            },
        )
    }
}

impl Store {
    /// How many changes [`Store::prune_changes`] would delete now.
    pub fn count_prunable_changes(&self, before: NaiveDateTime) -> Result<i64> {
        use changes::dsl as c;
        let mut conn = self.conn()?;
        let cut = first_kept(&mut conn, before)?;
        Ok(c::changes
            .filter(c::position.lt(cut))
            .count()
            .get_result(&mut *conn)?)
    }
}

/// The first position kept with the window ending at `before`: the first recorded at or after
/// it, found walking the primary key (positions follow time); past the last when none is.
fn first_kept(conn: &mut DbConnection, before: NaiveDateTime) -> Result<i64> {
    use changes::dsl as c;
    let first: Option<i64> = c::changes
        .filter(c::created_at.ge(before))
        .order(c::position.asc())
        .select(c::position)
        .first(conn)
        .optional()?;
    match first {
        Some(position) => Ok(position),
        None => Ok(last_position(conn)? + 1),
    }
}

/// The last position handed out by a committed transaction.
pub(crate) fn last_position(conn: &mut DbConnection) -> Result<i64> {
    use change_positions::dsl as p;
    Ok(p::change_positions
        .filter(p::id.eq(1))
        .select(p::last_position)
        .first(conn)?)
}

/// The oldest position kept; `last + 1` when none is.
fn oldest_position(conn: &mut DbConnection, last: i64) -> Result<i64> {
    use changes::dsl as c;
    let oldest: Option<i64> = c::changes
        .select(diesel::dsl::min(c::position))
        .first(conn)?;
    Ok(oldest.unwrap_or(last + 1))
}

impl Store {
    /// A page of an app vehicle's entries written, voided or unvoided at or after `since`, in the
    /// order and with the cursor of [`Store::entries_page`] (newest reading first).
    pub fn entries_updated_since(
        &self,
        vehicle_id: &str,
        since: NaiveDateTime,
        include_void: bool,
        limit: i64,
        after: Option<EntryCursor>,
    ) -> Result<Vec<MeterEntry>> {
        // No index by update time: each written entry would pay a page of one (a vehicle's
        // entries are read by date on their own partial indexes, the time filtered there). The
        // record of changes is the way to follow changes cheaply; this is for an app catching up.
        let mut conn = self.conn()?;
        crate::entries::newest_first(
            &mut conn,
            vehicle_id,
            crate::entries::ByDate {
                include_void,
                after,
                updated_since: Some(since),
                limit: Some(limit.max(0)),
                ..Default::default()
            },
        )
    }
}
