//! Deliveries written in one go: the only way an event is stored and processed.
//!
//! [`Tx::write_batch`] takes a batch of classified deliveries ([`WorkItem`]s, new ones or stored
//! ones processed again) and, in a handful of statements whatever the batch's size: reads which
//! of them are already stored, locks their vehicles, looks up each reading's stored neighbours
//! (point lookups on indexes shaped for them, never a window of rows), lets the domain judge the
//! readings in order ([`meterhook_domain::judge`]), then writes events, signals, entries and sync
//! logs (`crate::prepared::insert_rows!`: on PostgreSQL one statement per table, on SQLite one
//! prepared statement run per row). A batch of one is a delivery on its own: there is no
//! other path.
//!
//! It fails with [`StoreError::Conflict`] when another writer stored or processed one of its
//! events meanwhile; the caller rolls back (to a savepoint) and tries again, and the second run
//! sees the other writer's row.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use meterhook_domain::{
    judge, Candidate, ClockCorrection, Decision, Policy, Reading, Stored, Write,
};

use crate::db::DbConnection;
use crate::entries::{load_neighbours, timestamp, NewMeterEntry, SOURCE_SMARTCAR_WEBHOOK};
use crate::events::{record_event, stored_outcome, NewEvent, Recorded};
use crate::outcome::{Outcome, SyncStatus};
use crate::prepared::{self, Bind};
use crate::schema::{smartcar_webhook_events, vehicle_signals};
use crate::signals::NewSignal;
use crate::supersession::{settle, supersession_point, Refusal};
use crate::sync_logs::{sync_data, NewSyncLog};
use crate::vehicle_errors::{reconnected, record_errors, ErrorReport};
use crate::vehicles::Vehicle;
use crate::{now, to_timestamp, Result, StoreError, Tx};

/// A classified delivery for [`Tx::write_batch`].
#[derive(Debug, Clone)]
pub struct WorkItem<'a> {
    /// Smartcar's `eventId` (or the body hash).
    pub event_id: &'a str,
    /// Its type, as stored.
    pub event_type: &'a str,
    /// The Smartcar vehicle it is about, when known.
    pub smartcar_vehicle_id: Option<&'a str>,
    /// Whether it arrives now or is stored already.
    pub origin: Origin<'a>,
    /// What processing it takes.
    pub work: Work<'a>,
}

/// Where a [`WorkItem`] comes from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// Received now (or drained from the spool): stored with its outcome unless its id is known.
    Received {
        /// The raw body.
        payload: &'a str,
        /// When it arrived.
        received_at: NaiveDateTime,
    },
    /// Stored and not processed yet (a retry, a reprocessing, a wait for its vehicle).
    Stored {
        /// Processing attempts so far.
        attempts: i32,
    },
}

/// The processing a [`WorkItem`] takes.
#[derive(Debug, Clone)]
pub enum Work<'a> {
    /// Nothing but an outcome, an error text and, optionally, a sync log.
    Complete {
        /// The outcome.
        outcome: Outcome,
        /// Why, when it is a failure.
        error: Option<&'a str>,
        /// A sync log to write: (sync type, JSON data).
        sync: Option<(&'a str, &'a str)>,
    },
    /// A vehicle state of [`WorkItem::smartcar_vehicle_id`]: every signal kept, its odometer
    /// reading (if any) judged by the rules.
    State {
        /// Every signal value to keep.
        signals: &'a [NewSignal],
        /// Its odometer reading.
        odometer: Odometer<'a>,
        /// A test delivery: its signals are kept marked as test, nothing else is done
        /// (`test_event`).
        test: bool,
    },
    /// A VEHICLE_ERROR of [`WorkItem::smartcar_vehicle_id`].
    Errors {
        /// The conditions reported.
        reports: &'a [ErrorReport],
        /// The sync log's JSON data.
        data: &'a str,
    },
}

/// The odometer of a vehicle state.
#[derive(Debug, Clone, Copy)]
pub enum Odometer<'a> {
    /// No odometer signal: `no_odometer`.
    Missing,
    /// An odometer signal that cannot be used: `invalid_reading`, with why.
    Unusable(&'a str),
    /// An odometer signal the car or Smartcar reported as failed (`status: ERROR`):
    /// `odometer_unavailable`, with why; not an error of meterhook's.
    Unavailable(&'a str),
    /// A reading for the rules. A time [`to_timestamp`] cannot represent is `invalid_reading`.
    Reading {
        /// The reading.
        reading: Reading,
        /// How its time was corrected, when the car's clock was not trusted; kept in the sync log.
        correction: Option<ClockCorrection>,
    },
}

/// What [`Tx::write_batch`] did with one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Stored before (or earlier in the batch), or processed already: nothing done.
    AlreadySeen,
    /// Stored now (or updated) with its outcome.
    Processed(ProcessResult),
}

/// What processing an event did.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessResult {
    /// The outcome stored on the event.
    pub outcome: Outcome,
    /// The rules' decision, for odometer readings that reached them.
    pub decision: Option<Decision>,
    /// The meter entry written, if any.
    pub entry_id: Option<i64>,
    /// The app vehicle, when the Smartcar vehicle is registered.
    pub vehicle_id: Option<String>,
    /// False when the event had already been processed (by a concurrent or earlier delivery).
    pub processed_now: bool,
}

/// One item's processing, worked out before anything is written.
struct Done<'a> {
    index: usize,
    outcome: Outcome,
    error: Option<&'a str>,
    vehicle: Option<&'a Vehicle>,
    /// The judged reading, with its place in the judgements and its clock correction.
    judged: Option<(Reading, usize, Option<ClockCorrection>)>,
    /// (sync type, data) of its sync log.
    sync: Option<(&'a str, String)>,
    /// The error of a reading whose time cannot be stored.
    unusable_time: Option<String>,
    /// The conditions of a VEHICLE_ERROR to record.
    errors: Option<&'a [ErrorReport]>,
}

impl Tx<'_> {
    /// Stores and processes a batch (see the module's docs). Returns one answer per item, in
    /// order. On an error nothing of the batch may be kept: the caller rolls back.
    pub fn write_batch(&mut self, items: &[WorkItem<'_>], policy: &Policy) -> Result<Vec<Written>> {
        write_batch(self.conn, items, policy)
    }

    /// Records that processing `item` failed on its own: a received item is stored pending (so it
    /// is never lost), a stored one keeps its row; either way the attempt is counted, the error
    /// kept, and the next try set at `retry_at`; after `max_attempts` it ends as `dead`.
    pub fn record_failure(
        &mut self,
        item: &WorkItem<'_>,
        error: &str,
        retry_at: NaiveDateTime,
        max_attempts: i32,
    ) -> Result<Outcome> {
        if let Origin::Received {
            payload,
            received_at,
        } = item.origin
        {
            let new = NewEvent::pending(
                item.event_id,
                item.event_type,
                item.smartcar_vehicle_id,
                payload,
                received_at,
            );
            if record_event(self.conn, &new)? == Recorded::AlreadySeen {
                return stored_outcome(self.conn, item.event_id);
            }
        }
        self.record_processing_failure(item.event_id, error, retry_at, max_attempts)
    }
}

/// A signal value as [`write_signals`] inserts it.
#[derive(Insertable)]
#[diesel(table_name = vehicle_signals, treat_none_as_default_value = false)]
struct SignalRow<'a> {
    smartcar_vehicle_id: &'a str,
    code: &'a str,
    value: Option<f64>,
    unit: Option<&'a str>,
    raw: &'a str,
    observed_at: NaiveDateTime,
    event_id: &'a str,
    created_at: NaiveDateTime,
    test: bool,
}

/// An inserted entry's row id and event (PostgreSQL's `RETURNING` of the batch's entries).
#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct EntryIdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    event_id: Option<String>,
}

#[derive(QueryableByName)]
struct SeenRow {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Bool)]
    processed: bool,
}

fn write_batch(
    conn: &mut DbConnection,
    items: &[WorkItem<'_>],
    policy: &Policy,
) -> Result<Vec<Written>> {
    let at = now();

    // Which items to process: received ones whose id is new, stored ones still unprocessed, each
    // id once.
    let ids: Vec<&str> = items.iter().map(|i| i.event_id).collect();
    let stored = load_stored(conn, &ids)?;
    let mut taken: HashSet<&str> = HashSet::with_capacity(items.len());
    let take: Vec<bool> = items
        .iter()
        .map(|item| {
            let fresh = match item.origin {
                Origin::Received { .. } => !stored.contains_key(item.event_id),
                Origin::Stored { .. } => stored.get(item.event_id) == Some(&false),
            };
            fresh && taken.insert(item.event_id)
        })
        .collect();

    // The vehicles (on PostgreSQL locked, with their siblings, in one statement).
    let mut vehicle_ids: Vec<&str> = items
        .iter()
        .zip(&take)
        .filter(|(item, take)| **take && !matches!(item.work, Work::Complete { .. }))
        .filter_map(|(item, _)| item.smartcar_vehicle_id)
        .collect();
    vehicle_ids.sort_unstable();
    vehicle_ids.dedup();
    let locked = lock_vehicles(conn, &vehicle_ids)?;
    let vehicles: HashMap<&str, &Vehicle> = locked
        .iter()
        .map(|v| (v.smartcar_vehicle_id.as_str(), v))
        .collect();

    // Every item's outcome, the readings to judge among them.
    let mut done: Vec<Done<'_>> = Vec::new();
    let mut candidates: Vec<Candidate<&str>> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if !take[index] {
            continue;
        }
        let vehicle = item
            .smartcar_vehicle_id
            .and_then(|v| vehicles.get(v).copied());
        let unregistered = || match vehicle {
            None => Some(Outcome::UnknownVehicle),
            Some(v) if !v.is_active => Some(Outcome::InactiveVehicle),
            Some(_) => None,
        };
        let about = || serde_json::json!({ "smartcarVehicleId": item.smartcar_vehicle_id });
        let mut d = Done {
            index,
            outcome: Outcome::Pending,
            error: None,
            vehicle: None,
            judged: None,
            sync: None,
            unusable_time: None,
            errors: None,
        };
        match &item.work {
            Work::Complete {
                outcome,
                error,
                sync,
            } => {
                d.outcome = *outcome;
                d.error = *error;
                d.sync = sync.map(|(kind, data)| (kind, data.to_owned()));
            }
            Work::State { test: true, .. } => d.outcome = Outcome::TestEvent,
            Work::State {
                odometer: Odometer::Missing,
                ..
            } => d.outcome = Outcome::NoOdometer,
            Work::State {
                odometer: Odometer::Unavailable(message),
                ..
            } => {
                d.outcome = Outcome::OdometerUnavailable;
                d.error = Some(message);
                let data = serde_json::json!({ "error": message });
                d.sync = Some(("odometer", data.to_string()));
            }
            Work::State {
                odometer: Odometer::Unusable(message),
                ..
            } => {
                d.outcome = Outcome::InvalidReading;
                d.error = Some(message);
                let data = serde_json::json!({ "error": message });
                d.sync = Some(("odometer", data.to_string()));
            }
            Work::State {
                odometer: Odometer::Reading { reading, .. },
                ..
            } if to_timestamp(reading.observed_at).is_none() => {
                d.outcome = Outcome::InvalidReading;
                d.unusable_time = Some(format!(
                    "odometer signal unusable: its time {} is out of range",
                    reading.observed_at
                ));
            }
            Work::State {
                odometer:
                    Odometer::Reading {
                        reading,
                        correction,
                    },
                ..
            } => match unregistered() {
                Some(outcome) => {
                    d.outcome = outcome;
                    d.sync = Some(("odometer", about().to_string()));
                }
                None => {
                    d.vehicle = vehicle;
                    d.judged = Some((*reading, candidates.len(), *correction));
                    candidates.push(Candidate {
                        vehicle: vehicle.map_or("", |v| v.vehicle_id.as_str()),
                        reading: *reading,
                        stored: Stored::default(),
                    });
                }
            },
            Work::Errors { reports, data } => match unregistered() {
                Some(outcome) => {
                    d.outcome = outcome;
                    d.sync = Some(("vehicle_error", (*data).to_owned()));
                }
                None => {
                    let vehicle =
                        vehicle.ok_or_else(|| StoreError::Invalid("no vehicle".into()))?;
                    d.errors = Some(reports);
                    d.outcome = Outcome::VehicleErrorRecorded;
                    d.vehicle = Some(vehicle);
                    d.sync = Some(("vehicle_error", (*data).to_owned()));
                }
            },
        }
        done.push(d);
    }

    // The rules, in the batch's order, against the stored neighbours of each reading.
    let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
    let found = load_neighbours(conn, &candidates, window)?;
    for (candidate, stored) in candidates.iter_mut().zip(found) {
        candidate.stored = stored;
    }
    let judgements = judge(&candidates, policy);

    // A reading that completes a supersession ends the batch there: the rest is written after
    // it, as one delivery at a time would be, so any split of the same deliveries leaves the
    // same rows. Nothing is written before this point.
    let refused: Vec<(usize, Candidate<&str>, Reading)> = done
        .iter()
        .filter_map(|d| {
            let (_, j, _) = d.judged?;
            Some((d.index, candidates[j].clone(), judgements[j].refused_by()?))
        })
        .collect();
    let tally = supersession_point(conn, &refused, policy)?;
    if let Some(cut) = tally.cut.filter(|&cut| cut < items.len()) {
        let mut written = write_batch(conn, &items[..cut], policy)?;
        written.extend(write_batch(conn, &items[cut..], policy)?);
        return Ok(written);
    }

    for d in &mut done {
        if let Some((_, j, _)) = d.judged {
            d.outcome = Outcome::from_decision(&judgements[j].decision);
        }
        if let (Some(reports), Some(vehicle)) = (d.errors, d.vehicle) {
            record_errors(conn, items[d.index].event_id, vehicle, reports, at)?;
        }
    }

    // A vehicle that needed its owner answers again: a live state with data clears that.
    for d in &done {
        let item = &items[d.index];
        let Work::State {
            signals,
            odometer,
            test: false,
        } = &item.work
        else {
            continue;
        };
        let vehicle = item
            .smartcar_vehicle_id
            .and_then(|v| vehicles.get(v).copied());
        if let Some(vehicle) = vehicle.filter(|v| v.needs_reconnection) {
            if !signals.is_empty() || matches!(odometer, Odometer::Reading { .. }) {
                reconnected(conn, item.event_id, vehicle, at)?;
            }
        }
    }

    write_events(conn, items, &done, at)?;
    write_signals(conn, items, &done, at)?;

    // The meter entries: accepted readings, and refused ones kept void with the reason.
    let notes: Vec<String> = done
        .iter()
        .map(|d| format!("Smartcar webhook event {}", items[d.index].event_id))
        .collect();
    let mut entries: Vec<NewMeterEntry<'_>> = Vec::new();
    for (d, note) in done.iter().zip(&notes) {
        let (Some((reading, j, _)), Some(vehicle)) = (d.judged, d.vehicle) else {
            continue;
        };
        let (void, void_reason) = match &judgements[j].write {
            Write::Active => (false, None),
            Write::Void { reason } => (true, Some(reason.as_str())),
            Write::Nothing => continue,
        };
        // A refused reading remembers the stored entry that refused it (one accepted earlier in
        // the batch is linked once it is written, by `settle`).
        let refused_by = judgements[j]
            .refused_by()
            .and_then(|by| tally.stored_refuser(&vehicle.vehicle_id, by));
        entries.push(NewMeterEntry {
            vehicle_id: &vehicle.vehicle_id,
            value_m: reading.distance.metres(),
            entry_date: timestamp(reading)?,
            source_type: SOURCE_SMARTCAR_WEBHOOK,
            notes: Some(note),
            event_id: Some(items[d.index].event_id),
            void,
            void_reason,
            created_at: at,
            refused_by,
            updated_at: at,
        });
    }
    let inserted = prepared::insert_rows!(&mut *conn, entries,
        pg: |c, all| {
            use prepared::column;
            prepared::fixed!(
                "INSERT INTO meter_entries (vehicle_id, value_m, entry_date, source_type, \
                     notes, event_id, void, void_reason, created_at, refused_by, updated_at) \
                     SELECT * FROM unnest(?::text[], ?::bigint[], ?::timestamp[], ?::text[], \
                     ?::text[], ?::text[], ?::boolean[], ?::text[], ?::timestamp[], \
                     ?::bigint[], ?::timestamp[]) \
                     RETURNING id, event_id",
                [
                    Bind::Texts(column(all, |r| r.vehicle_id)),
                    Bind::BigInts(column(all, |r| r.value_m)),
                    Bind::Timestamps(column(all, |r| r.entry_date)),
                    Bind::Texts(column(all, |r| r.source_type)),
                    Bind::OptionalTexts(column(all, |r| r.notes)),
                    Bind::OptionalTexts(column(all, |r| r.event_id)),
                    Bind::Bools(column(all, |r| r.void)),
                    Bind::OptionalTexts(column(all, |r| r.void_reason)),
                    Bind::Timestamps(column(all, |r| r.created_at)),
                    Bind::OptionalBigInts(column(all, |r| r.refused_by)),
                    Bind::Timestamps(column(all, |r| r.updated_at)),
                ]
            )
            .load::<EntryIdRow>(c)
            .map(|rows| rows.into_iter().map(|r| (r.id, r.event_id)).collect::<Vec<_>>())
        },
        sqlite: |c, one| {
            diesel::insert_into(crate::schema::meter_entries::table)
                .values(one)
                .returning((
                    crate::schema::meter_entries::id,
                    crate::schema::meter_entries::event_id,
                ))
                .get_results::<(i64, Option<String>)>(c)
        },
    );
    let entry_ids: HashMap<String, i64> = inserted
        .into_iter()
        .flatten()
        .filter_map(|(id, event)| Some((event?, id)))
        .collect();

    // Refused readings remember what refused them; enough that agree supersede it.
    let refusals: Vec<Refusal<'_>> = done
        .iter()
        .filter_map(|d| {
            let (_, j, _) = d.judged?;
            let refused_by = judgements[j].refused_by()?;
            let item = &items[d.index];
            Some(Refusal {
                vehicle_id: &d.vehicle?.vehicle_id,
                entry_id: *entry_ids.get(item.event_id)?,
                refused_by,
                event_id: item.event_id,
                smartcar_vehicle_id: item.smartcar_vehicle_id,
            })
        })
        .collect();
    settle(conn, &refusals, &tally, items.len(), policy, at)?;

    // The sync logs.
    for d in &mut done {
        if let Some((reading, j, correction)) = d.judged {
            let entry = entry_ids.get(items[d.index].event_id).copied();
            let data = sync_data(&judgements[j].decision, reading, correction, entry);
            d.sync = Some(("odometer", data.to_string()));
        }
    }
    let logs: Vec<NewSyncLog<'_>> = done
        .iter()
        .filter_map(|d| {
            let (sync_type, data) = d.sync.as_ref()?;
            Some(NewSyncLog {
                sync_type,
                smartcar_vehicle_id: items[d.index].smartcar_vehicle_id,
                vehicle_id: d.vehicle.map(|v| v.vehicle_id.as_str()),
                event_id: Some(items[d.index].event_id),
                status: SyncStatus::for_outcome(d.outcome).as_str(),
                outcome: d.outcome.as_str(),
                data,
                created_at: at,
            })
        })
        .collect();
    prepared::insert_rows!(&mut *conn, logs,
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
            diesel::insert_into(crate::schema::smartcar_sync_logs::table)
                .values(one)
                .execute(c)
        },
    );

    let mut answers = vec![Written::AlreadySeen; items.len()];
    for d in done {
        let event_id = items[d.index].event_id;
        let decision = d.judged.map(|(_, j, _)| judgements[j].decision.clone());
        answers[d.index] = Written::Processed(ProcessResult {
            outcome: d.outcome,
            entry_id: entry_ids
                .get(event_id)
                .copied()
                .filter(|_| decision.as_ref().is_some_and(Decision::is_accept)),
            decision,
            vehicle_id: d.vehicle.map(|v| v.vehicle_id.clone()),
            processed_now: true,
        });
    }
    Ok(answers)
}

/// The stored events among `ids`: whether each is processed.
fn load_stored(conn: &mut DbConnection, ids: &[&str]) -> Result<HashMap<String, bool>> {
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

/// The rows of these Smartcar vehicles. On PostgreSQL they are locked until the transaction ends,
/// with every other Smartcar vehicle feeding the same app vehicles (returned too), all taken in
/// the order of their ids, so two transactions that share vehicles cannot deadlock. SQLite's
/// single write lock (taken by `BEGIN IMMEDIATE`) serialises writers already.
fn lock_vehicles(conn: &mut DbConnection, smartcar_vehicle_ids: &[&str]) -> Result<Vec<Vehicle>> {
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

/// The events: received ones inserted with their outcome, stored ones updated.
fn write_events(
    conn: &mut DbConnection,
    items: &[WorkItem<'_>],
    done: &[Done<'_>],
    at: NaiveDateTime,
) -> Result<()> {
    use smartcar_webhook_events::dsl as e;
    let mut rows: Vec<NewEvent<'_>> = Vec::with_capacity(done.len());
    for d in done {
        let item = &items[d.index];
        match item.origin {
            Origin::Received {
                payload,
                received_at,
            } => rows.push(NewEvent {
                event_id: item.event_id,
                event_type: item.event_type,
                smartcar_vehicle_id: item.smartcar_vehicle_id,
                payload,
                received_at,
                processed: true,
                processed_at: Some(at),
                outcome: d.outcome.as_str(),
                error: d.error.or(d.unusable_time.as_deref()),
                // Processed on its first attempt.
                attempts: 1,
                next_attempt_at: None,
            }),
            Origin::Stored { .. } => {
                let n = diesel::update(
                    e::smartcar_webhook_events
                        .filter(e::event_id.eq(item.event_id))
                        .filter(e::processed.eq(false)),
                )
                .set((
                    e::processed.eq(true),
                    e::processed_at.eq(Some(at)),
                    e::outcome.eq(d.outcome.as_str()),
                    e::error.eq(d.error.or(d.unusable_time.as_deref())),
                    e::attempts.eq(e::attempts + 1),
                    e::next_attempt_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
                if n != 1 {
                    return Err(StoreError::Conflict(format!(
                        "event {} was processed by another writer meanwhile",
                        item.event_id
                    )));
                }
            }
        }
    }
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

/// Every signal value of the processed vehicle states; one per (vehicle, code, time).
fn write_signals(
    conn: &mut DbConnection,
    items: &[WorkItem<'_>],
    done: &[Done<'_>],
    at: NaiveDateTime,
) -> Result<()> {
    let mut rows = Vec::new();
    for d in done {
        let item = &items[d.index];
        let (Work::State { signals, test, .. }, Some(vehicle)) =
            (&item.work, item.smartcar_vehicle_id)
        else {
            continue;
        };
        for s in signals.iter() {
            let Some(observed_at) = to_timestamp(s.observed_at) else {
                continue;
            };
            rows.push(SignalRow {
                smartcar_vehicle_id: vehicle,
                code: s.code.as_str(),
                value: s.value.filter(|v| v.is_finite()),
                unit: s.unit.as_deref(),
                raw: s.raw.as_str(),
                observed_at,
                event_id: item.event_id,
                created_at: at,
                test: *test,
            });
        }
    }
    prepared::insert_rows!(&mut *conn, rows,
        pg: |c, all| {
            use prepared::column;
            prepared::fixed!(
                "INSERT INTO vehicle_signals (smartcar_vehicle_id, code, value, unit, raw, \
                     observed_at, event_id, created_at, test) \
                     SELECT * FROM unnest(?::text[], ?::text[], ?::double precision[], \
                     ?::text[], ?::text[], ?::timestamp[], ?::text[], ?::timestamp[], \
                     ?::boolean[]) \
                     ON CONFLICT (smartcar_vehicle_id, code, observed_at) DO NOTHING",
                [
                    Bind::Texts(column(all, |r| r.smartcar_vehicle_id)),
                    Bind::Texts(column(all, |r| r.code)),
                    Bind::OptionalDoubles(column(all, |r| r.value)),
                    Bind::OptionalTexts(column(all, |r| r.unit)),
                    Bind::Texts(column(all, |r| r.raw)),
                    Bind::Timestamps(column(all, |r| r.observed_at)),
                    Bind::Texts(column(all, |r| r.event_id)),
                    Bind::Timestamps(column(all, |r| r.created_at)),
                    Bind::Bools(column(all, |r| r.test)),
                ]
            )
            .execute(c)
        },
        sqlite: |c, one| {
            diesel::insert_into(vehicle_signals::table)
                .values(one)
                .on_conflict((
                    vehicle_signals::smartcar_vehicle_id,
                    vehicle_signals::code,
                    vehicle_signals::observed_at,
                ))
                .do_nothing()
                .execute(c)
        },
    );
    Ok(())
}
