//! Sync logs: one row per sync attempt, in the seed's terms, its details as JSON text.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use meterhook_domain::{ClockCorrection, Decision, Outcome, Reading};
use serde::Serialize;

use crate::db::DbConnection;
use crate::prepared;
#[cfg(feature = "postgres")]
use crate::prepared::Bind;
use crate::schema::smartcar_sync_logs;
use crate::to_timestamp;

/// A sync log row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_sync_logs)]
pub struct SyncLog {
    /// Row id.
    pub id: i64,
    /// `odometer`, `vehicle_error`, …
    pub sync_type: String,
    /// The Smartcar vehicle.
    pub smartcar_vehicle_id: Option<String>,
    /// The app's vehicle.
    pub vehicle_id: Option<String>,
    /// The webhook event.
    pub event_id: Option<String>,
    /// `success`, `skipped`, `rejected`, `failed`.
    pub status: String,
    /// The event's outcome.
    pub outcome: String,
    /// Details as JSON text (`meterEntryId` when an entry was made).
    pub data: String,
    /// When it was written (UTC).
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = smartcar_sync_logs, treat_none_as_default_value = false)]
pub(crate) struct NewSyncLog<'a> {
    pub sync_type: &'a str,
    pub smartcar_vehicle_id: Option<&'a str>,
    pub vehicle_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub status: &'a str,
    pub outcome: &'a str,
    pub data: &'a str,
    pub created_at: NaiveDateTime,
}

impl crate::Store {
    /// Deletes sync logs written before `before`, `batch` rows per transaction, calling
    /// `progress` with the rows deleted so far after each batch; returns how many.
    pub fn prune_sync_logs(
        &self,
        before: NaiveDateTime,
        batch: i64,
        progress: impl FnMut(u64),
    ) -> crate::Result<u64> {
        use smartcar_sync_logs::dsl as s;
        let mut conn = self.conn()?;
        crate::store::delete_in_batches(
            &mut conn,
            batch,
            progress,
            |conn, batch| {
                Ok(s::smartcar_sync_logs
                    .filter(s::created_at.lt(before))
                    .order(s::id.asc())
                    .limit(batch)
                    .select(s::id)
                    .load(conn)?)
            },
            |conn, ids| {
                Ok(
                    diesel::delete(s::smartcar_sync_logs.filter(s::id.eq_any(ids)))
                        .execute(conn)?,
                )
            },
        )
    }
}

#[cfg(feature = "testing")]
impl crate::Store {
    /// The sync logs of one event, oldest first.
    pub fn sync_logs_for_event(&self, event_id: &str) -> crate::Result<Vec<SyncLog>> {
        use smartcar_sync_logs::dsl as s;
        let mut conn = self.conn()?;
        Ok(s::smartcar_sync_logs
            .filter(s::event_id.eq(event_id))
            .order(s::id.asc())
            .select(SyncLog::as_select())
            .load(&mut *conn)?)
    }
}

/// The details of an odometer sync: the reading, the decision and what it was compared with.
pub(crate) fn sync_data(
    decision: &Decision,
    reading: Reading,
    correction: Option<ClockCorrection>,
    entry_id: Option<i64>,
) -> serde_json::Value {
    let compared = match decision {
        Decision::Accept { before, .. } => *before,
        Decision::Duplicate { existing } => Some(*existing),
        Decision::OutOfSequence { neighbour, .. } | Decision::ImplausibleJump { neighbour, .. } => {
            Some(*neighbour)
        }
    };
    let mut data = serde_json::json!({
        "valueKm": reading.distance.km(),
        "readingAt": to_timestamp(reading.observed_at).map(|t| t.and_utc().to_rfc3339()),
        "decision": Outcome::of(decision).as_str(),
        "reason": decision.to_string(),
    });
    if let Some(id) = entry_id {
        // The seed's monitoring query counts meterEntryId as "an entry was made".
        let key = if decision.is_accept() {
            "meterEntryId"
        } else {
            "voidEntryId"
        };
        data[key] = id.into();
    }
    if let Some(c) = correction {
        // The car's clock was not trusted: what it said, and what the reading is dated by.
        let at = |t| to_timestamp(t).map(|t| t.and_utc().to_rfc3339());
        data["clockCorrection"] = serde_json::json!({
            "reportedAt": at(c.original),
            "usedAt": at(c.corrected),
            "source": c.source.as_str(),
        });
    }
    if let Some(c) = compared {
        data["comparedWith"] = serde_json::json!({
            "valueKm": c.distance.km(),
            "readingAt": to_timestamp(c.observed_at).map(|t| t.and_utc().to_rfc3339()),
        });
    }
    data
}

/// Inserts sync logs (one statement on PostgreSQL, one prepared statement per row on SQLite).
pub(crate) fn insert_sync_logs(
    conn: &mut DbConnection,
    rows: &[NewSyncLog<'_>],
) -> crate::Result<()> {
    prepared::insert_rows!(&mut *conn, rows,
        pg: |c, all| {
            use prepared::column;
            prepared::fixed!(
                "INSERT INTO smartcar_sync_logs (sync_type, smartcar_vehicle_id, vehicle_id, \
                     event_id, status, outcome, data, created_at) \
                     SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], \
                     ?::text[], ?::text[], ?::text[], ?::timestamp[])",
                [
                    Bind::Texts(column(all, |r| r.sync_type)),
                    Bind::OptionalTexts(column(all, |r| r.smartcar_vehicle_id)),
                    Bind::OptionalTexts(column(all, |r| r.vehicle_id)),
                    Bind::OptionalTexts(column(all, |r| r.event_id)),
                    Bind::Texts(column(all, |r| r.status)),
                    Bind::Texts(column(all, |r| r.outcome)),
                    Bind::Texts(column(all, |r| r.data)),
                    Bind::Timestamps(column(all, |r| r.created_at)),
                ]
            )
            .execute(c)
        },
        sqlite: |c, one| {
            diesel::insert_into(smartcar_sync_logs::table)
                .values(one)
                .execute(c)
        },
    );
    Ok(())
}

/// The status column of `smartcar_sync_logs`: how a sync attempt went, in the seed's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Data was written (a meter entry, a vehicle error).
    Success,
    /// Nothing to write: a duplicate.
    Skipped,
    /// The data was refused by the rules.
    Rejected,
    /// The data could not be used.
    Failed,
}

impl SyncStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Success => "success",
            SyncStatus::Skipped => "skipped",
            SyncStatus::Rejected => "rejected",
            SyncStatus::Failed => "failed",
        }
    }

    /// The status that goes with an outcome.
    pub fn for_outcome(outcome: Outcome) -> SyncStatus {
        match outcome {
            Outcome::Created | Outcome::VehicleErrorRecorded | Outcome::Superseded => {
                SyncStatus::Success
            }
            Outcome::Duplicate
            | Outcome::UnknownVehicle
            | Outcome::InactiveVehicle
            | Outcome::NoOdometer
            | Outcome::OdometerUnavailable
            | Outcome::TestEvent
            | Outcome::Ignored
            | Outcome::Pending => SyncStatus::Skipped,
            Outcome::OutOfSequence | Outcome::ImplausibleJump => SyncStatus::Rejected,
            Outcome::InvalidReading | Outcome::Malformed | Outcome::Replayed | Outcome::Dead => {
                SyncStatus::Failed
            }
        }
    }
}
