//! The repositories: every read and write the server makes, one method each.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use meterhook_domain::{Decision, Reading};

use crate::db::{on_backend, DbConnection};
use crate::schema::{
    meter_entries, smartcar_sync_logs, smartcar_vehicles, smartcar_webhook_events,
};
use crate::{
    now, to_timestamp, EventRecord, EventSummary, MeterEntry, NewEvent, Outcome, Recorded, Result,
    Stats, Store, StoreError, SyncLog, SyncStatus, Tx, TypeCount, Vehicle,
};

/// Events younger than this many days are never pruned.
pub const MIN_RETENTION_DAYS: i64 = 7;

/// `source_type` of entries made from webhooks.
pub const SOURCE_SMARTCAR_WEBHOOK: &str = "smartcar_webhook";

impl Store {
    // ---- vehicles ---------------------------------------------------------------------------

    /// Registers a Smartcar vehicle for an app vehicle, or re-points and re-activates it.
    pub fn register_vehicle(&self, smartcar_vehicle_id: &str, vehicle_id: &str) -> Result<Vehicle> {
        use smartcar_vehicles::dsl as v;
        if smartcar_vehicle_id.trim().is_empty() || vehicle_id.trim().is_empty() {
            return Err(StoreError::Invalid(
                "vehicle ids must not be empty".to_owned(),
            ));
        }
        let mut conn = self.conn()?;
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
        on_backend!(&mut *conn, |c| diesel::insert_into(v::smartcar_vehicles)
            .values(row)
            .on_conflict(v::smartcar_vehicle_id)
            .do_update()
            .set(update)
            .execute(c))?;
        self.find_vehicle_in(&mut conn, smartcar_vehicle_id)?
            .ok_or_else(|| StoreError::NotFound(format!("vehicle {smartcar_vehicle_id} vanished")))
    }

    /// Turns processing for a vehicle on or off.
    pub fn set_vehicle_active(&self, smartcar_vehicle_id: &str, active: bool) -> Result<Vehicle> {
        use smartcar_vehicles::dsl as v;
        let mut conn = self.conn()?;
        let n = diesel::update(
            v::smartcar_vehicles.filter(v::smartcar_vehicle_id.eq(smartcar_vehicle_id)),
        )
        .set((v::is_active.eq(active), v::updated_at.eq(now())))
        .execute(&mut *conn)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no vehicle with Smartcar id {smartcar_vehicle_id}"
            )));
        }
        self.find_vehicle_in(&mut conn, smartcar_vehicle_id)?
            .ok_or_else(|| StoreError::NotFound(format!("vehicle {smartcar_vehicle_id} vanished")))
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

    /// The vehicle with this Smartcar id.
    pub fn find_vehicle(&self, smartcar_vehicle_id: &str) -> Result<Option<Vehicle>> {
        let mut conn = self.conn()?;
        self.find_vehicle_in(&mut conn, smartcar_vehicle_id)
    }

    fn find_vehicle_in(
        &self,
        conn: &mut DbConnection,
        smartcar_vehicle_id: &str,
    ) -> Result<Option<Vehicle>> {
        find_vehicle(conn, smartcar_vehicle_id)
    }

    // ---- events -----------------------------------------------------------------------------

    /// Stores an event unless its id is already stored, in one statement (`ON CONFLICT DO
    /// NOTHING`): concurrent deliveries of one event store it once and exactly one sees `New`.
    pub fn record_event(&self, event: &NewEvent<'_>) -> Result<Recorded> {
        self.write(|tx| tx.record_event(event))
    }

    /// The stored event with this id.
    pub fn find_event(&self, event_id: &str) -> Result<Option<EventRecord>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .filter(e::event_id.eq(event_id))
            .select(EventRecord::as_select())
            .first(&mut *conn)
            .optional()?)
    }

    /// The newest events first.
    pub fn recent_events(&self, limit: i64) -> Result<Vec<EventSummary>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .order(e::id.desc())
            .limit(limit.max(0))
            .select(EventSummary::as_select())
            .load(&mut *conn)?)
    }

    // ---- entries, logs, figures ---------------------------------------------------------------

    /// A vehicle's meter entries by reading time, oldest first.
    pub fn list_entries(&self, vehicle_id: &str, include_void: bool) -> Result<Vec<MeterEntry>> {
        use meter_entries::dsl as m;
        let mut conn = self.conn()?;
        let mut query = m::meter_entries
            .filter(m::vehicle_id.eq(vehicle_id))
            .order((m::entry_date.asc(), m::id.asc()))
            .select(MeterEntry::as_select())
            .into_boxed();
        if !include_void {
            query = query.filter(m::void.eq(false));
        }
        Ok(query.load(&mut *conn)?)
    }

    /// The sync logs of one event, oldest first.
    pub fn sync_logs_for_event(&self, event_id: &str) -> Result<Vec<SyncLog>> {
        use smartcar_sync_logs::dsl as s;
        let mut conn = self.conn()?;
        Ok(s::smartcar_sync_logs
            .filter(s::event_id.eq(event_id))
            .order(s::id.asc())
            .select(SyncLog::as_select())
            .load(&mut *conn)?)
    }

    /// The seed's monitoring figures for events received since `since`.
    pub fn stats(&self, since: NaiveDateTime) -> Result<Stats> {
        use smartcar_sync_logs::dsl as s;
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        let by_type: Vec<(String, bool, i64)> = e::smartcar_webhook_events
            .filter(e::received_at.ge(since))
            .group_by((e::event_type, e::processed))
            .select((e::event_type, e::processed, count_star()))
            .order((e::event_type.asc(), e::processed.asc()))
            .load(&mut *conn)?;
        let by_outcome: Vec<(String, i64)> = e::smartcar_webhook_events
            .filter(e::received_at.ge(since))
            .group_by(e::outcome)
            .select((e::outcome, count_star()))
            .order(e::outcome.asc())
            .load(&mut *conn)?;
        let syncs: Vec<(String, String, String, i64)> = s::smartcar_sync_logs
            .filter(s::created_at.ge(since))
            .group_by((s::sync_type, s::status, s::outcome))
            .select((s::sync_type, s::status, s::outcome, count_star()))
            .load(&mut *conn)?;

        let count_of = |o: Outcome| {
            by_outcome
                .iter()
                .filter(|(name, _)| name == o.as_str())
                .map(|(_, n)| *n)
                .sum::<i64>()
        };
        let events_total: i64 = by_outcome.iter().map(|(_, n)| n).sum();
        let pending = count_of(Outcome::Pending);
        let processed = events_total - pending;
        let errors: i64 = by_outcome
            .iter()
            .filter(|(name, _)| name.parse::<Outcome>().is_ok_and(Outcome::is_error))
            .map(|(_, n)| n)
            .sum();
        let odometer_syncs: i64 = syncs
            .iter()
            .filter(|(t, ..)| t == "odometer")
            .map(|(.., n)| n)
            .sum();
        let odometer_duplicates: i64 = syncs
            .iter()
            .filter(|(t, _, o, _)| t == "odometer" && o == Outcome::Duplicate.as_str())
            .map(|(.., n)| n)
            .sum();
        let syncs_total = syncs.iter().map(|(.., n)| n).sum();
        let syncs_success = syncs
            .iter()
            .filter(|(_, st, ..)| st == SyncStatus::Success.as_str())
            .map(|(.., n)| n)
            .sum();
        let dead = count_of(Outcome::Dead);
        let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Ok(Stats {
            since,
            events_total,
            events_by_type: by_type
                .into_iter()
                .map(|(event_type, processed, count)| TypeCount {
                    event_type,
                    processed,
                    count,
                })
                .collect(),
            processing_success_rate: ratio(processed - errors, processed),
            duplicate_rate: ratio(odometer_duplicates, odometer_syncs),
            error_rate: ratio(errors, events_total),
            events_by_outcome: by_outcome,
            syncs_total,
            syncs_success,
            pending,
            dead,
        })
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

pub(crate) fn record_event(conn: &mut DbConnection, event: &NewEvent<'_>) -> Result<Recorded> {
    let inserted = on_backend!(conn, |c| diesel::insert_into(
        smartcar_webhook_events::table
    )
    .values(event)
    .on_conflict(smartcar_webhook_events::event_id)
    .do_nothing()
    .execute(c))?;
    Ok(if inserted == 1 {
        Recorded::New
    } else {
        Recorded::AlreadySeen
    })
}

pub(crate) fn stored_outcome(conn: &mut DbConnection, event_id: &str) -> Result<Outcome> {
    use smartcar_webhook_events::dsl as e;
    let name: Option<String> = e::smartcar_webhook_events
        .filter(e::event_id.eq(event_id))
        .select(e::outcome)
        .first(conn)
        .optional()?;
    match name {
        Some(name) => Ok(name.parse().unwrap_or(Outcome::Pending)),
        None => Err(StoreError::NotFound(format!("no event {event_id}"))),
    }
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

pub(crate) fn sync_data(
    decision: &Decision,
    reading: Reading,
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
        "decision": decision.outcome(),
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
    if let Some(c) = compared {
        data["comparedWith"] = serde_json::json!({
            "valueKm": c.distance.km(),
            "readingAt": to_timestamp(c.observed_at).map(|t| t.and_utc().to_rfc3339()),
        });
    }
    data
}

pub(crate) fn finish_event(
    conn: &mut DbConnection,
    event_id: &str,
    outcome: Outcome,
    error: Option<&str>,
) -> Result<()> {
    use smartcar_webhook_events::dsl as e;
    diesel::update(e::smartcar_webhook_events.filter(e::event_id.eq(event_id)))
        .set((
            e::processed.eq(true),
            e::processed_at.eq(Some(now())),
            e::outcome.eq(outcome.as_str()),
            e::error.eq(error),
            e::next_attempt_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Which stored events `reset_for_reprocess` takes.
#[derive(Debug, Clone, Copy)]
pub enum Reprocess<'a> {
    /// One event by id.
    Event(&'a str),
    /// Every event with this outcome.
    Outcome(Outcome),
    /// The events of a Smartcar vehicle that waited for its registration (`unknown_vehicle`).
    UnknownVehicle(&'a str),
}

impl Store {
    /// Records that processing an event failed: counts the attempt, keeps the error, and schedules
    /// the next try at `retry_at`; after `max_attempts` the event ends as `dead`.
    pub fn record_processing_failure(
        &self,
        event_id: &str,
        error: &str,
        retry_at: NaiveDateTime,
        max_attempts: i32,
    ) -> Result<Outcome> {
        self.write(|tx| tx.record_processing_failure(event_id, error, retry_at, max_attempts))
    }

    /// Unprocessed events due for a try: scheduled at or before `now`, or never tried and received
    /// before `stale_before` (their first processing was interrupted). Oldest first.
    pub fn due_events(
        &self,
        now: NaiveDateTime,
        stale_before: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<EventRecord>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .filter(e::processed.eq(false))
            .filter(
                e::next_attempt_at.le(now).or(e::next_attempt_at
                    .is_null()
                    .and(e::received_at.lt(stale_before))),
            )
            .order(e::id.asc())
            .limit(limit)
            .select(EventRecord::as_select())
            .load(&mut *conn)?)
    }

    /// Every stored event, oldest first, from row id `after` on (the spool drains this way).
    pub fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .filter(e::id.gt(after))
            .order(e::id.asc())
            .limit(limit)
            .select(EventRecord::as_select())
            .load(&mut *conn)?)
    }

    /// Removes one stored event (the spool, once the event is in the main database).
    pub fn delete_event(&self, event_id: &str) -> Result<bool> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(
            diesel::delete(e::smartcar_webhook_events.filter(e::event_id.eq(event_id)))
                .execute(&mut *conn)?
                == 1,
        )
    }

    /// How many events are stored and not processed yet.
    pub fn unprocessed_count(&self) -> Result<i64> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .filter(e::processed.eq(false))
            .count()
            .get_result(&mut *conn)?)
    }

    /// Puts events back to `pending` so they are processed again, and returns them. Events that
    /// made an entry (`created`) or cannot be parsed (`malformed`) are never reset.
    pub fn reset_for_reprocess(&self, which: Reprocess<'_>) -> Result<Vec<EventRecord>> {
        use smartcar_webhook_events::dsl as e;
        let never = [Outcome::Created.as_str(), Outcome::Malformed.as_str()];
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let mut query = e::smartcar_webhook_events
                .filter(e::outcome.ne_all(never))
                .select(EventRecord::as_select())
                .order(e::id.asc())
                .into_boxed();
            query =
                match which {
                    Reprocess::Event(id) => query.filter(e::event_id.eq(id)),
                    Reprocess::Outcome(o) => query.filter(e::outcome.eq(o.as_str())),
                    // The outcome as a literal, not a bound parameter: the planners use the partial
                    // index `smartcar_webhook_events_unknown_vehicle_idx` only for a condition they can
                    // see matches its own.
                    Reprocess::UnknownVehicle(v) => query
                        .filter(e::smartcar_vehicle_id.eq(v))
                        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                            "outcome = 'unknown_vehicle'",
                        )),
                };
            let mut events: Vec<EventRecord> = query.load(conn)?;
            for event in &mut events {
                // The reading is judged anew: the void entry of its last judgement goes.
                diesel::delete(
                    meter_entries::table
                        .filter(meter_entries::event_id.eq(&event.event_id))
                        .filter(meter_entries::void.eq(true)),
                )
                .execute(conn)?;
                diesel::update(e::smartcar_webhook_events.filter(e::id.eq(event.id)))
                    .set((
                        e::processed.eq(false),
                        e::processed_at.eq(None::<NaiveDateTime>),
                        e::outcome.eq(Outcome::Pending.as_str()),
                        e::error.eq(None::<String>),
                        e::attempts.eq(0),
                        e::next_attempt_at.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
                event.processed = false;
                event.outcome = Outcome::Pending.as_str().to_owned();
            }
            Ok(events)
        })
    }

    /// Deletes processed events received before `before`, `batch` rows per transaction; never
    /// unprocessed or `dead` ones, and never any younger than [`MIN_RETENTION_DAYS`] (Smartcar
    /// redelivers; deduplication needs the ids). Returns how many were deleted.
    pub fn prune_events(&self, before: NaiveDateTime, batch: i64) -> Result<u64> {
        use smartcar_webhook_events::dsl as e;
        let before = before.min(now() - chrono::TimeDelta::days(MIN_RETENTION_DAYS));
        let mut conn = self.conn()?;
        let mut deleted = 0u64;
        loop {
            let ids: Vec<i64> = e::smartcar_webhook_events
                .filter(e::processed.eq(true))
                .filter(e::outcome.ne(Outcome::Dead.as_str()))
                .filter(e::received_at.lt(before))
                .order(e::id.asc())
                .limit(batch.max(1))
                .select(e::id)
                .load(&mut *conn)?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            let n = diesel::delete(e::smartcar_webhook_events.filter(e::id.eq_any(&ids)))
                .execute(&mut *conn)?;
            deleted += n as u64;
        }
    }
}

impl Tx<'_> {
    /// Stores an event unless its id is already stored, in one statement (`ON CONFLICT DO
    /// NOTHING`): concurrent deliveries of one event store it once and exactly one sees `New`.
    pub fn record_event(&mut self, event: &NewEvent<'_>) -> Result<Recorded> {
        record_event(self.conn, event)
    }

    /// Records that processing an event failed: counts the attempt, keeps the error, and schedules
    /// the next try at `retry_at`; after `max_attempts` the event ends as `dead`.
    pub fn record_processing_failure(
        &mut self,
        event_id: &str,
        error: &str,
        retry_at: NaiveDateTime,
        max_attempts: i32,
    ) -> Result<Outcome> {
        use smartcar_webhook_events::dsl as e;
        // Callers run this inside a transaction ([`Store::write`]); no savepoint of its own.
        let conn: &mut DbConnection = &mut *self.conn;
        let attempts: Option<i32> = diesel::update(
            e::smartcar_webhook_events
                .filter(e::event_id.eq(event_id))
                .filter(e::processed.eq(false)),
        )
        .set((
            e::attempts.eq(e::attempts + 1),
            e::error.eq(error),
            e::next_attempt_at.eq(Some(retry_at)),
        ))
        .returning(e::attempts)
        .get_result(conn)
        .optional()?;
        match attempts {
            Some(n) if n >= max_attempts => {
                finish_event(conn, event_id, Outcome::Dead, Some(error))?;
                Ok(Outcome::Dead)
            }
            Some(_) => Ok(Outcome::Pending),
            None => stored_outcome(conn, event_id),
        }
    }
}
