//! Webhook events as stored: recording, look-ups, retries, reprocessing and pruning.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use meterhook_domain::Outcome;
use serde::Serialize;

use crate::changes::{record_changes, NewChange};
use crate::db::{on_backend, DbConnection};
use crate::prepared::{self, Bind};
use crate::schema::{meter_entries, smartcar_webhook_events};
use crate::{now, Result, Store, StoreError, Tx};

/// Event ids per statement when `Store::reset_for_reprocess` deletes void entries: each statement reads the
/// void entries once, and stays well under SQLite's 32,766 bound parameters.
const REPROCESS_IDS_PER_STATEMENT: usize = 10_000;

/// Events younger than this many days are never pruned.
pub const MIN_RETENTION_DAYS: i64 = 7;

/// An event to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = smartcar_webhook_events, treat_none_as_default_value = false)]
pub struct NewEvent<'a> {
    /// Smartcar's `eventId`, or `sha256:<hex>` of the raw body when it has none.
    pub event_id: &'a str,
    /// `VEHICLE_STATE`, `VEHICLE_ERROR`, `VERIFY`, or whatever type arrived.
    pub event_type: &'a str,
    /// The Smartcar vehicle it is about, when known.
    pub smartcar_vehicle_id: Option<&'a str>,
    /// The raw body as received.
    pub payload: &'a str,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether nothing more is to be done with it.
    pub processed: bool,
    /// When it was processed, if it was.
    pub processed_at: Option<NaiveDateTime>,
    /// Its outcome so far (`pending` until processed).
    pub outcome: &'a str,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// Processing attempts so far.
    pub attempts: i32,
    /// When processing may next be tried.
    pub next_attempt_at: Option<NaiveDateTime>,
}

impl<'a> NewEvent<'a> {
    /// A pending event received at `received_at`.
    pub fn pending(
        event_id: &'a str,
        event_type: &'a str,
        smartcar_vehicle_id: Option<&'a str>,
        payload: &'a str,
        received_at: NaiveDateTime,
    ) -> Self {
        NewEvent {
            event_id,
            event_type,
            smartcar_vehicle_id,
            payload,
            received_at,
            processed: false,
            processed_at: None,
            outcome: Outcome::Pending.as_str(),
            error: None,
            attempts: 0,
            next_attempt_at: None,
        }
    }
}

/// Whether recording an event stored it or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time seen: stored now.
    New,
    /// Stored before (a redelivery): nothing written.
    AlreadyReceived,
}

/// A stored event, raw body included.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_webhook_events)]
pub struct EventRecord {
    /// Row id.
    pub id: i64,
    /// Smartcar's event id (or the body hash).
    pub event_id: String,
    /// The event type as received.
    pub event_type: String,
    /// The Smartcar vehicle, when known.
    pub smartcar_vehicle_id: Option<String>,
    /// The raw body.
    pub payload: String,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether processing is finished.
    pub processed: bool,
    /// When processing finished.
    pub processed_at: Option<NaiveDateTime>,
    /// The outcome (see [`Outcome`]).
    pub outcome: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Processing attempts.
    pub attempts: i32,
    /// When processing may next be tried.
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// A stored event without its body, for listings.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_webhook_events)]
pub struct EventSummary {
    /// Row id.
    pub id: i64,
    /// Smartcar's event id (or the body hash).
    pub event_id: String,
    /// The event type as received.
    pub event_type: String,
    /// The Smartcar vehicle, when known.
    pub smartcar_vehicle_id: Option<String>,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether processing is finished.
    pub processed: bool,
    /// When processing finished.
    pub processed_at: Option<NaiveDateTime>,
    /// The outcome (see [`Outcome`]).
    pub outcome: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Processing attempts.
    pub attempts: i32,
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
    /// Stores an event unless its id is already stored, in one statement (`ON CONFLICT DO
    /// NOTHING`): concurrent deliveries of one event store it once and exactly one sees `New`.
    #[cfg(feature = "testing")]
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
        self.recent_events_with(None, limit)
    }

    /// The newest events first, only those of `outcome` when given (read backwards on the
    /// `(outcome, id)` index: as fast for a rare outcome as for a common one).
    pub fn recent_events_with(
        &self,
        outcome: Option<Outcome>,
        limit: i64,
    ) -> Result<Vec<EventSummary>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        let mut query = e::smartcar_webhook_events
            .order(e::id.desc())
            .limit(limit.max(0))
            .select(EventSummary::as_select())
            .into_boxed();
        if let Some(outcome) = outcome {
            query = query.filter(e::outcome.eq(outcome.as_str()));
        }
        Ok(query.load(&mut *conn)?)
    }

    /// Records that processing an event failed: counts the attempt, keeps the error, and schedules
    /// the next try at `retry_at`; after `max_attempts` the event ends as `dead`.
    #[cfg(feature = "testing")]
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
            // A literal, so that the planners use the partial pending index.
            .filter(diesel::dsl::sql::<Bool>("processed = FALSE"))
            .filter(
                e::next_attempt_at.le(now).or(e::next_attempt_at
                    .is_null()
                    .and(e::received_at.lt(stale_before))),
            )
            // `+id`, not `id`: ordered by the row id with a limit, SQLite's planner walked the
            // whole table in id order rather than the partial index of the few unprocessed
            // events and a sort, a full scan every retry pass (every 5 s) that grew with the
            // table. The unary plus (valid on both backends) keeps the order and leaves the
            // index to the filter.
            .order(diesel::dsl::sql::<diesel::sql_types::BigInt>("+id"))
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
            .filter(diesel::dsl::sql::<Bool>("processed = FALSE"))
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
            query = match which {
                Reprocess::Event(id) => query.filter(e::event_id.eq(id)),
                Reprocess::Outcome(o) => query.filter(e::outcome.eq(o.as_str())),
                // The outcome as a literal, not a bound parameter: the planners use the partial
                // index `smartcar_webhook_events_unknown_vehicle_idx` only for a condition they can
                // see matches its own.
                Reprocess::UnknownVehicle(v) => query
                    .filter(e::smartcar_vehicle_id.eq(v))
                    .filter(diesel::dsl::sql::<Bool>("outcome = 'unknown_vehicle'")),
            };
            let mut events: Vec<EventRecord> = query.load(conn)?;
            // The readings are judged anew: the void entries of their last judgements go. Entries
            // are not indexed by event (a refused reading would pay a random index page for this
            // rare command), so each statement reads the void entries once: a few statements for
            // all the events, never one per event.
            let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            let at = now();
            let mut deleted = Vec::new();
            for some in ids.chunks(REPROCESS_IDS_PER_STATEMENT) {
                let gone: Vec<(i64, String, Option<String>)> = diesel::delete(
                    meter_entries::table
                        .filter(meter_entries::void.eq(true))
                        .filter(meter_entries::event_id.eq_any(some)),
                )
                .returning((
                    meter_entries::id,
                    meter_entries::vehicle_id,
                    meter_entries::event_id,
                ))
                .get_results(conn)?;
                deleted.extend(gone);
            }
            // The app is told, so that its copy drops them too.
            let changes: Vec<NewChange> = deleted
                .iter()
                .map(|(id, vehicle_id, event_id)| {
                    let smartcar = events
                        .iter()
                        .find(|e| Some(&e.event_id) == event_id.as_ref())
                        .and_then(|e| e.smartcar_vehicle_id.as_deref());
                    NewChange::entry_deleted(*id, vehicle_id, event_id.as_deref(), smartcar, at)
                })
                .collect();
            for event in &mut events {
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
            record_changes(conn, &changes)?;
            Ok(events)
        })
    }

    /// Deletes processed events received before `before`, `batch` rows per transaction; never
    /// unprocessed or `dead` ones, and never any younger than [`MIN_RETENTION_DAYS`] (Smartcar
    /// redelivers; deduplication needs the ids). Returns how many were deleted.
    pub fn prune_events(&self, before: NaiveDateTime, batch: i64) -> Result<u64> {
        self.prune_events_with(before, batch, |_| {})
    }

    /// [`Store::prune_events`], calling `progress` with the rows deleted so far after each batch.
    pub fn prune_events_with(
        &self,
        before: NaiveDateTime,
        batch: i64,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        use smartcar_webhook_events::dsl as e;
        let before = before.min(now() - chrono::TimeDelta::days(MIN_RETENTION_DAYS));
        let mut conn = self.conn()?;
        crate::store::delete_in_batches(
            &mut conn,
            batch,
            progress,
            |conn, batch| {
                Ok(e::smartcar_webhook_events
                    .filter(e::processed.eq(true))
                    .filter(e::outcome.ne(Outcome::Dead.as_str()))
                    .filter(e::received_at.lt(before))
                    .order(e::id.asc())
                    .limit(batch)
                    .select(e::id)
                    .load(conn)?)
            },
            |conn, ids| {
                Ok(
                    diesel::delete(e::smartcar_webhook_events.filter(e::id.eq_any(ids)))
                        .execute(conn)?,
                )
            },
        )
    }
}

impl Tx<'_> {
    /// Stores an event unless its id is already stored, in one statement (`ON CONFLICT DO
    /// NOTHING`): concurrent deliveries of one event store it once and exactly one sees `New`.
    pub fn record_event(&mut self, event: &NewEvent<'_>) -> Result<Recorded> {
        record_event(self.conn, event)
    }

    /// How many events are stored, seen from inside the transaction (the spool's cap is checked
    /// with it, so that two writers cannot both see room for the same last place).
    pub fn event_count(&mut self) -> Result<i64> {
        use smartcar_webhook_events::dsl as e;
        Ok(e::smartcar_webhook_events
            .count()
            .get_result(&mut *self.conn)?)
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
        Recorded::AlreadyReceived
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

#[derive(QueryableByName)]
struct SeenRow {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Bool)]
    processed: bool,
}

/// The stored events among `ids`: whether each is processed.
pub(crate) fn load_seen(conn: &mut DbConnection, ids: &[&str]) -> Result<HashMap<String, bool>> {
    let mut stored = HashMap::new();
    if ids.is_empty() {
        return Ok(stored);
    }
    // One constant statement whatever the batch's size, so that it is prepared once.
    let rows: Vec<SeenRow> = match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => prepared::fixed!(
            "SELECT event_id, processed FROM smartcar_webhook_events WHERE event_id = ANY(?)",
            [Bind::Texts(ids.to_vec())]
        )
        .load(c)?,
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => prepared::fixed!(
            "SELECT event_id, processed FROM smartcar_webhook_events \
             WHERE event_id IN (SELECT value FROM json_each(?))",
            [Bind::Text(serde_json::to_string(ids).unwrap_or_default())]
        )
        .load(c)?,
    };
    stored.extend(rows.into_iter().map(|r| (r.event_id, r.processed)));
    Ok(stored)
}

/// A stored event a batch processed: its outcome.
#[derive(Debug, Clone)]
pub(crate) struct FinishedEvent<'a> {
    pub event_id: &'a str,
    pub outcome: Outcome,
    pub error: Option<&'a str>,
    pub at: NaiveDateTime,
}

/// Writes a batch's processed events: inserts the received ones with their outcome (one
/// statement on PostgreSQL, one prepared statement per row on SQLite) and marks the stored ones
/// processed. Fails with [`StoreError::Conflict`] when another writer stored or processed one
/// meanwhile.
pub(crate) fn write_processed(
    conn: &mut DbConnection,
    received: &[NewEvent<'_>],
    stored: &[FinishedEvent<'_>],
) -> Result<()> {
    use smartcar_webhook_events::dsl as e;
    for finished in stored {
        let n = diesel::update(
            e::smartcar_webhook_events
                .filter(e::event_id.eq(finished.event_id))
                .filter(e::processed.eq(false)),
        )
        .set((
            e::processed.eq(true),
            e::processed_at.eq(Some(finished.at)),
            e::outcome.eq(finished.outcome.as_str()),
            e::error.eq(finished.error),
            e::attempts.eq(e::attempts + 1),
            e::next_attempt_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        if n != 1 {
            return Err(StoreError::Conflict(format!(
                "event {} was processed by another writer meanwhile",
                finished.event_id
            )));
        }
    }
    let rows = received;
    let stored: usize = prepared::insert_rows!(&mut *conn, rows,
        pg: |c, all| {
            use prepared::column;
            prepared::fixed!(
                "INSERT INTO smartcar_webhook_events (event_id, event_type, \
                     smartcar_vehicle_id, payload, received_at, processed, processed_at, \
                     outcome, error, attempts, next_attempt_at) \
                     SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], \
                     ?::timestamp[], ?::boolean[], ?::timestamp[], ?::text[], ?::text[], \
                     ?::integer[], ?::timestamp[]) \
                     ON CONFLICT (event_id) DO NOTHING",
                [
                    Bind::Texts(column(all, |r| r.event_id)),
                    Bind::Texts(column(all, |r| r.event_type)),
                    Bind::OptionalTexts(column(all, |r| r.smartcar_vehicle_id)),
                    Bind::Texts(column(all, |r| r.payload)),
                    Bind::Timestamps(column(all, |r| r.received_at)),
                    Bind::Bools(column(all, |r| r.processed)),
                    Bind::OptionalTimestamps(column(all, |r| r.processed_at)),
                    Bind::Texts(column(all, |r| r.outcome)),
                    Bind::OptionalTexts(column(all, |r| r.error)),
                    Bind::Integers(column(all, |r| r.attempts)),
                    Bind::OptionalTimestamps(column(all, |r| r.next_attempt_at)),
                ]
            )
            .execute(c)
        },
        sqlite: |c, one| {
            diesel::insert_into(e::smartcar_webhook_events)
                .values(one)
                .on_conflict(e::event_id)
                .do_nothing()
                .execute(c)
        },
    )
    .into_iter()
    .sum();
    if stored != rows.len() {
        return Err(StoreError::Conflict(format!(
            "{} of {} events were stored by another writer meanwhile",
            rows.len() - stored,
            rows.len()
        )));
    }
    Ok(())
}
