//! Many deliveries in a handful of statements: the writer's fast path.
//!
//! [`Tx::ingest_batch`] stores and processes a batch of new events with about ten statements
//! whatever its size (instead of about sixteen per event): it reads which ids are already stored,
//! the batch's vehicles, and the active meter entries around every reading of the batch in one
//! query each; applies the rules in memory, in the batch's order, each reading seeing the ones
//! accepted before it; then writes the events with their outcomes, the signals, the entries and
//! the sync logs with one multi-row `INSERT` each. What it stores is exactly what processing the
//! events one by one would store (a test holds it to that).
//!
//! It gives up with [`StoreError::Conflict`] when another writer stored one of its events
//! meanwhile; the caller then rolls the transaction back and takes the one-by-one path.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use meterhook_domain::{decide, Decision, Distance, Neighbours, Policy, Reading};

use crate::db::{on_backend, DbConnection};
use crate::models::{NewMeterEntry, NewSyncLog};
use crate::repo::{sync_data, SOURCE_SMARTCAR_WEBHOOK};
use crate::schema::{
    meter_entries, smartcar_sync_logs, smartcar_vehicles, smartcar_webhook_events, vehicle_signals,
};
use crate::{
    now, to_millis, to_timestamp, NewEvent, NewSignal, Outcome, ProcessResult, Result, StoreError,
    SyncStatus, Tx, Vehicle,
};

/// How Diesel writes a `Timestamp` into SQLite (text, compared as text).
const SQLITE_TIMESTAMP: &str = "%F %T%.f";

/// Bound parameters per statement at most: under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// A new delivery for [`Tx::ingest_batch`].
#[derive(Debug, Clone)]
pub struct BatchEvent<'a> {
    /// Smartcar's `eventId` (or the body hash).
    pub event_id: &'a str,
    /// Its type, as stored.
    pub event_type: &'a str,
    /// The Smartcar vehicle it is about, when known.
    pub smartcar_vehicle_id: Option<&'a str>,
    /// The raw body.
    pub payload: &'a str,
    /// When it arrived.
    pub received_at: NaiveDateTime,
    /// What processing it takes.
    pub work: BatchWork<'a>,
}

/// The processing a [`BatchEvent`] takes; anything else goes the one-by-one way.
#[derive(Debug, Clone)]
pub enum BatchWork<'a> {
    /// Nothing but an outcome (`ignored`, `no_odometer`), no sync log.
    Complete(Outcome),
    /// A vehicle state: its signals kept, its odometer reading (if any) judged by the rules.
    State {
        /// The Smartcar vehicle.
        smartcar_vehicle_id: &'a str,
        /// Every signal value to keep.
        signals: &'a [NewSignal],
        /// The odometer reading; `None` ends as `no_odometer`. Its time must be one
        /// [`to_timestamp`] can represent.
        reading: Option<Reading>,
    },
}

/// What [`Tx::ingest_batch`] did with one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    /// Stored before (or earlier in the batch): not processed again.
    AlreadySeen,
    /// Stored now and processed.
    Processed(ProcessResult),
}

#[derive(QueryableByName)]
struct NearRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    vehicle_id: String,
    #[diesel(sql_type = BigInt)]
    value_m: i64,
    #[diesel(sql_type = Timestamp)]
    entry_date: NaiveDateTime,
}

/// The active meter entries of one app vehicle around the batch's readings, by time; the rules'
/// neighbours come from here exactly as `load_neighbours` finds them in the table.
#[derive(Debug, Default)]
struct Nearby {
    entries: Vec<(NaiveDateTime, i64)>,
}

impl Nearby {
    fn neighbours(&self, at: NaiveDateTime, window: TimeDelta) -> Neighbours {
        let reading = |&(date, value_m): &(NaiveDateTime, i64)| {
            Distance::from_metres(value_m)
                .ok()
                .map(|d| Reading::new(d, to_millis(date)))
        };
        // Entries are sorted by (time, value): the last at or before `at` has the latest time and,
        // among ties, the highest value; the first after it the earliest time, lowest value.
        let split = self.entries.partition_point(|(date, _)| *date <= at);
        let before = split.checked_sub(1).and_then(|i| reading(&self.entries[i]));
        let after = self.entries.get(split).and_then(reading);
        let from = at.checked_sub_signed(window).unwrap_or(NaiveDateTime::MIN);
        let to = at.checked_add_signed(window).unwrap_or(NaiveDateTime::MAX);
        let start = self.entries.partition_point(|(date, _)| *date < from);
        let end = self.entries.partition_point(|(date, _)| *date <= to);
        Neighbours {
            before,
            after,
            window: self.entries[start..end]
                .iter()
                .filter_map(reading)
                .collect(),
        }
    }

    fn add(&mut self, date: NaiveDateTime, value_m: i64) {
        let at = self.entries.partition_point(|e| *e <= (date, value_m));
        self.entries.insert(at, (date, value_m));
    }
}

/// Rows per multi-row statement for a table of `columns` columns.
fn chunk(columns: usize) -> usize {
    (MAX_PARAMS / columns).max(1)
}

impl Tx<'_> {
    /// Stores and processes these deliveries (see the module's docs). `vehicles` are the rows of
    /// the batch's Smartcar vehicles, read (and on PostgreSQL locked) in this transaction. Returns
    /// one outcome per delivery, in order, or an error, [`StoreError::Conflict`] when another
    /// writer stored one of them meanwhile.
    ///
    /// No savepoint of its own (two round trips fewer on PostgreSQL): on an error the caller
    /// returns it from [`Store::write`](crate::Store::write), which rolls the whole transaction
    /// back.
    pub fn ingest_batch(
        &mut self,
        events: &[BatchEvent<'_>],
        vehicles: &[Vehicle],
        policy: &Policy,
    ) -> Result<Vec<BatchOutcome>> {
        ingest(self.conn, events, vehicles, policy)
    }

    /// The rows of these Smartcar vehicles. On PostgreSQL they are locked until the transaction
    /// ends, with every other Smartcar vehicle feeding the same app vehicles (returned too), all
    /// taken in the order of their ids, so two transactions that share vehicles cannot deadlock.
    pub fn lock_vehicles(&mut self, smartcar_vehicle_ids: &[&str]) -> Result<Vec<Vehicle>> {
        use smartcar_vehicles::dsl as v;
        if smartcar_vehicle_ids.is_empty() {
            return Ok(Vec::new());
        }
        match &mut *self.conn {
            // One statement, siblings included; PostgreSQL locks the rows in the ORDER BY order
            // (LockRows sits above the sort).
            DbConnection::Pg(c) => {
                let siblings = diesel::alias!(smartcar_vehicles as siblings);
                Ok(v::smartcar_vehicles
                    .filter(
                        v::smartcar_vehicle_id
                            .eq_any(smartcar_vehicle_ids)
                            .or(v::vehicle_id.eq_any(
                                siblings
                                    .filter(
                                        siblings
                                            .field(v::smartcar_vehicle_id)
                                            .eq_any(smartcar_vehicle_ids),
                                    )
                                    .select(siblings.field(v::vehicle_id)),
                            )),
                    )
                    .order(v::smartcar_vehicle_id.asc())
                    .select(Vehicle::as_select())
                    .for_update()
                    .load(c)?)
            }
            // SQLite's single write lock (taken by `BEGIN IMMEDIATE`) serialises writers already.
            DbConnection::Sqlite(c) => Ok(v::smartcar_vehicles
                .filter(v::smartcar_vehicle_id.eq_any(smartcar_vehicle_ids))
                .select(Vehicle::as_select())
                .load(c)?),
        }
    }
}

fn ingest(
    conn: &mut DbConnection,
    events: &[BatchEvent<'_>],
    vehicles: &[Vehicle],
    policy: &Policy,
) -> Result<Vec<BatchOutcome>> {
    use smartcar_webhook_events::dsl as e;
    let at = now();
    let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
    let vehicles: HashMap<&str, &Vehicle> = vehicles
        .iter()
        .map(|v| (v.smartcar_vehicle_id.as_str(), v))
        .collect();

    // Which are new: not stored, and the first of their id in the batch.
    let ids: Vec<&str> = events.iter().map(|e| e.event_id).collect();
    let mut seen: HashSet<String> = HashSet::new();
    for ids in ids.chunks(chunk(1)) {
        seen.extend(
            e::smartcar_webhook_events
                .filter(e::event_id.eq_any(ids))
                .select(e::event_id)
                .load::<String>(conn)?,
        );
    }
    let mut new = vec![false; events.len()];
    for (i, event) in events.iter().enumerate() {
        new[i] = seen.insert(event.event_id.to_owned());
    }

    // The active entries around every reading, per app vehicle, in one query.
    let mut nearby = load_nearby(conn, events, &new, &vehicles, window)?;

    // The rules, in the batch's order.
    struct Done<'a> {
        index: usize,
        outcome: Outcome,
        decision: Option<Decision>,
        vehicle: Option<&'a Vehicle>,
        entry: Option<(i64, NaiveDateTime, bool, Option<String>)>,
        reading: Option<Reading>,
        sync: bool,
    }
    let mut done: Vec<Done<'_>> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if !new[index] {
            continue;
        }
        let mut d = Done {
            index,
            outcome: Outcome::Pending,
            decision: None,
            vehicle: None,
            entry: None,
            reading: None,
            sync: false,
        };
        match &event.work {
            BatchWork::Complete(outcome) => d.outcome = *outcome,
            BatchWork::State { reading: None, .. } => d.outcome = Outcome::NoOdometer,
            BatchWork::State {
                smartcar_vehicle_id,
                reading: Some(reading),
                ..
            } => {
                d.sync = true;
                d.reading = Some(*reading);
                match vehicles.get(smartcar_vehicle_id) {
                    None => d.outcome = Outcome::UnknownVehicle,
                    Some(v) if !v.is_active => d.outcome = Outcome::InactiveVehicle,
                    Some(vehicle) => {
                        let date = to_timestamp(reading.observed_at).ok_or_else(|| {
                            StoreError::Invalid(format!(
                                "reading time {} is out of range",
                                reading.observed_at
                            ))
                        })?;
                        let near = nearby.entry(vehicle.vehicle_id.clone()).or_default();
                        let decision = decide(*reading, &near.neighbours(date, window), policy);
                        d.entry = match &decision {
                            Decision::Accept { .. } => {
                                near.add(date, reading.distance.metres());
                                Some((reading.distance.metres(), date, false, None))
                            }
                            Decision::Duplicate { .. } => None,
                            refused => Some((
                                reading.distance.metres(),
                                date,
                                true,
                                Some(refused.to_string()),
                            )),
                        };
                        d.outcome = Outcome::from_decision(&decision);
                        d.decision = Some(decision);
                        d.vehicle = Some(vehicle);
                    }
                }
            }
        }
        done.push(d);
    }

    // The events, stored already processed.
    let rows: Vec<NewEvent<'_>> = done
        .iter()
        .map(|d| {
            let event = &events[d.index];
            NewEvent {
                event_id: event.event_id,
                event_type: event.event_type,
                smartcar_vehicle_id: event.smartcar_vehicle_id,
                payload: event.payload,
                received_at: event.received_at,
                processed: true,
                processed_at: Some(at),
                outcome: d.outcome.as_str(),
                error: None,
                // As if claimed once, like the one-by-one path.
                attempts: 1,
                next_attempt_at: None,
            }
        })
        .collect();
    let mut stored = 0;
    for rows in rows.chunks(chunk(11)) {
        stored += on_backend!(&mut *conn, |c| diesel::insert_into(
            e::smartcar_webhook_events
        )
        .values(rows)
        .on_conflict(e::event_id)
        .do_nothing()
        .execute(c))?;
    }
    if stored != rows.len() {
        return Err(StoreError::Conflict(format!(
            "{} of {} events were stored by another writer meanwhile",
            rows.len() - stored,
            rows.len()
        )));
    }

    // Every signal value.
    let mut signals = Vec::new();
    for d in &done {
        let event = &events[d.index];
        if let BatchWork::State {
            smartcar_vehicle_id,
            signals: values,
            ..
        } = &event.work
        {
            for s in values.iter() {
                let Some(observed_at) = to_timestamp(s.observed_at) else {
                    continue;
                };
                signals.push((
                    vehicle_signals::smartcar_vehicle_id.eq(*smartcar_vehicle_id),
                    vehicle_signals::code.eq(s.code.as_str()),
                    vehicle_signals::value.eq(s.value.filter(|v| v.is_finite())),
                    vehicle_signals::unit.eq(s.unit.as_deref()),
                    vehicle_signals::raw.eq(s.raw.as_str()),
                    vehicle_signals::observed_at.eq(observed_at),
                    vehicle_signals::event_id.eq(event.event_id),
                    vehicle_signals::created_at.eq(at),
                ));
            }
        }
    }
    for rows in signals.chunks(chunk(8)) {
        on_backend!(&mut *conn, |c| diesel::insert_into(vehicle_signals::table)
            .values(rows)
            .on_conflict((
                vehicle_signals::smartcar_vehicle_id,
                vehicle_signals::code,
                vehicle_signals::observed_at
            ))
            .do_nothing()
            .execute(c))?;
    }

    // The meter entries: accepted readings, and refused ones kept void with the reason.
    let notes: Vec<String> = done
        .iter()
        .map(|d| format!("Smartcar webhook event {}", events[d.index].event_id))
        .collect();
    let entries: Vec<NewMeterEntry<'_>> = done
        .iter()
        .zip(&notes)
        .filter_map(|(d, note)| {
            let (value_m, entry_date, void, reason) = d.entry.as_ref()?;
            Some(NewMeterEntry {
                vehicle_id: &d.vehicle?.vehicle_id,
                value_m: *value_m,
                entry_date: *entry_date,
                source_type: SOURCE_SMARTCAR_WEBHOOK,
                notes: Some(note),
                event_id: Some(events[d.index].event_id),
                void: *void,
                void_reason: reason.as_deref(),
                created_at: at,
            })
        })
        .collect();
    let mut entry_ids: HashMap<String, i64> = HashMap::with_capacity(entries.len());
    for rows in entries.chunks(chunk(9)) {
        let ids: Vec<(i64, Option<String>)> =
            on_backend!(&mut *conn, |c| diesel::insert_into(meter_entries::table)
                .values(rows)
                .returning((meter_entries::id, meter_entries::event_id))
                .get_results(c))?;
        entry_ids.extend(ids.into_iter().filter_map(|(id, ev)| Some((ev?, id))));
    }

    // The sync logs, and the answers.
    let mut datas = Vec::new();
    for d in &done {
        if !d.sync {
            continue;
        }
        let event_id = events[d.index].event_id;
        let data = match (&d.decision, d.reading) {
            (Some(decision), Some(reading)) => {
                sync_data(decision, reading, entry_ids.get(event_id).copied())
            }
            _ => serde_json::json!({ "smartcarVehicleId": events[d.index].smartcar_vehicle_id }),
        };
        datas.push((d, data.to_string()));
    }
    let logs: Vec<NewSyncLog<'_>> = datas
        .iter()
        .map(|(d, data)| NewSyncLog {
            sync_type: "odometer",
            smartcar_vehicle_id: events[d.index].smartcar_vehicle_id,
            vehicle_id: d.vehicle.map(|v| v.vehicle_id.as_str()),
            event_id: Some(events[d.index].event_id),
            status: SyncStatus::for_outcome(d.outcome).as_str(),
            outcome: d.outcome.as_str(),
            data,
            created_at: at,
        })
        .collect();
    for rows in logs.chunks(chunk(8)) {
        on_backend!(&mut *conn, |c| diesel::insert_into(
            smartcar_sync_logs::table
        )
        .values(rows)
        .execute(c))?;
    }

    let mut outcomes = vec![BatchOutcome::AlreadySeen; events.len()];
    for d in done {
        let event_id = events[d.index].event_id;
        outcomes[d.index] = BatchOutcome::Processed(ProcessResult {
            outcome: d.outcome,
            entry_id: entry_ids
                .get(event_id)
                .copied()
                .filter(|_| d.decision.as_ref().is_some_and(Decision::is_accept)),
            decision: d.decision,
            vehicle_id: d.vehicle.map(|v| v.vehicle_id.clone()),
            processed_now: true,
        });
    }
    Ok(outcomes)
}

/// The active entries around the new readings of registered, active vehicles: for each reading,
/// every entry from the last one at or before (its time − window) to the first one after (its
/// time + window), overlapping ranges of one app vehicle merged. One statement for the whole batch.
///
/// That is enough for the rules: an entry the table holds between a reading's time and either
/// bound lies inside the range, and an entry from another reading's range is a real entry too, so
/// the nearest ones found in memory are the nearest ones in the table.
fn load_nearby(
    conn: &mut DbConnection,
    events: &[BatchEvent<'_>],
    new: &[bool],
    vehicles: &HashMap<&str, &Vehicle>,
    window: TimeDelta,
) -> Result<HashMap<String, Nearby>> {
    let mut wanted: HashMap<&str, Vec<(NaiveDateTime, NaiveDateTime)>> = HashMap::new();
    for (event, _) in events.iter().zip(new).filter(|(_, new)| **new) {
        let BatchWork::State {
            smartcar_vehicle_id,
            reading: Some(reading),
            ..
        } = &event.work
        else {
            continue;
        };
        let Some(vehicle) = vehicles.get(smartcar_vehicle_id).filter(|v| v.is_active) else {
            continue;
        };
        let Some(date) = to_timestamp(reading.observed_at) else {
            continue;
        };
        let lo = date
            .checked_sub_signed(window)
            .unwrap_or(NaiveDateTime::MIN);
        let hi = date
            .checked_add_signed(window)
            .unwrap_or(NaiveDateTime::MAX);
        wanted
            .entry(&vehicle.vehicle_id)
            .or_default()
            .push((lo, hi));
    }
    let mut ranges: Vec<(&str, NaiveDateTime, NaiveDateTime)> = Vec::new();
    for (vehicle, mut spans) in wanted {
        spans.sort_unstable();
        let mut merged: Vec<(NaiveDateTime, NaiveDateTime)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        ranges.extend(merged.into_iter().map(|(lo, hi)| (vehicle, lo, hi)));
    }
    let mut nearby: HashMap<String, Nearby> = HashMap::new();
    if ranges.is_empty() {
        return Ok(nearby);
    }
    let rows: Vec<NearRow> = match conn {
        // One statement over arrays: PostgreSQL plans it in the same short time however many
        // ranges the batch has (an OR of one term per range took ~0.2 ms of planning per term).
        DbConnection::Pg(c) => {
            let vehicles: Vec<&str> = ranges.iter().map(|r| r.0).collect();
            let lo: Vec<NaiveDateTime> = ranges.iter().map(|r| r.1).collect();
            let hi: Vec<NaiveDateTime> = ranges.iter().map(|r| r.2).collect();
            diesel::sql_query(
                "SELECT m.id, b.vehicle_id, m.value_m, m.entry_date \
                 FROM unnest($1::text[], $2::timestamp[], $3::timestamp[]) AS b(vehicle_id, lo, hi) \
                 CROSS JOIN LATERAL (SELECT e.id, e.value_m, e.entry_date FROM meter_entries e \
                   WHERE e.vehicle_id = b.vehicle_id AND e.void = FALSE \
                   AND e.entry_date >= COALESCE((SELECT MAX(x.entry_date) FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date <= b.lo), b.lo) \
                   AND e.entry_date <= COALESCE((SELECT MIN(x.entry_date) FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date > b.hi), b.hi)) m",
            )
            .bind::<Array<Text>, _>(vehicles)
            .bind::<Array<Timestamp>, _>(lo)
            .bind::<Array<Timestamp>, _>(hi)
            .load(c)?
        }
        // SQLite has no arrays: the same over a JSON array of [vehicle, lo, hi], its times in
        // the text form Diesel stores (`%F %T%.f`), so that they compare as the column's do.
        DbConnection::Sqlite(c) => {
            let bounds: Vec<serde_json::Value> = ranges
                .iter()
                .map(|(vehicle, lo, hi)| {
                    serde_json::json!([
                        vehicle,
                        lo.format(SQLITE_TIMESTAMP).to_string(),
                        hi.format(SQLITE_TIMESTAMP).to_string()
                    ])
                })
                .collect();
            diesel::sql_query(
                "SELECT m.id, b.vehicle_id, m.value_m, m.entry_date \
                 FROM (SELECT j.value ->> 0 AS vehicle_id, j.value ->> 1 AS lo, j.value ->> 2 AS hi \
                       FROM json_each(?) j) b \
                 JOIN meter_entries m ON m.vehicle_id = b.vehicle_id AND m.void = FALSE \
                   AND m.entry_date >= COALESCE((SELECT MAX(x.entry_date) FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date <= b.lo), b.lo) \
                   AND m.entry_date <= COALESCE((SELECT MIN(x.entry_date) FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date > b.hi), b.hi)",
            )
            .bind::<Text, _>(serde_json::Value::Array(bounds).to_string())
            .load(c)?
        }
    };
    // Ranges of one vehicle can share their outer entries: each entry once.
    let mut seen = HashSet::with_capacity(rows.len());
    for row in rows {
        if seen.insert(row.id) {
            nearby
                .entry(row.vehicle_id)
                .or_default()
                .entries
                .push((row.entry_date, row.value_m));
        }
    }
    for near in nearby.values_mut() {
        near.entries.sort_unstable();
    }
    Ok(nearby)
}
