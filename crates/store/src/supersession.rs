//! Self-healing in the store: each refused reading remembers the active entry that refused it
//! (`meter_entries.refused_by`); the domain's rule ([`meterhook_domain::supersede`],
//! [`meterhook_domain::Tally`]) decides when readings that agree outvote that entry. This module
//! only loads what the rule needs and saves what it decides, inside [`crate::Tx::write_batch`],
//! in the same transaction. Only refused readings cost anything here.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Nullable, Timestamp};
use meterhook_domain::{
    supersede, supersession_window, Candidate, Outcome, Policy, Reading, Tally,
};

use crate::changes::{ChangeType, NewChange};
use crate::db::{on_backend, DbConnection};
use crate::entries::{find_entries, load_neighbours, stored_reading, timestamp};
use crate::prepared::{self, Bind};
use crate::schema::{meter_entries, smartcar_sync_logs};
use crate::sync_logs::{NewSyncLog, SyncStatus};
use crate::{Result, StoreError};

/// A reading of the batch refused because of an active reading (stored, or accepted earlier in
/// the batch).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused<'a> {
    /// The delivery's place in the batch.
    pub index: usize,
    /// The app vehicle.
    pub vehicle_id: &'a str,
    /// The refused reading.
    pub reading: Reading,
    /// The active reading that refused it.
    pub by: Reading,
}

/// A refused reading written as a void entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal<'a> {
    /// The app vehicle.
    pub vehicle_id: &'a str,
    /// The void entry written for it.
    pub entry_id: i64,
    /// The active reading that refused it.
    pub refused_by: Reading,
    /// The event it came in, for the sync log of a supersession.
    pub event_id: &'a str,
    /// The Smartcar vehicle, for that sync log and the changes.
    pub smartcar_vehicle_id: Option<&'a str>,
}

/// The refusing readings of a batch and the stored entry behind each; `None` for a reading
/// accepted earlier in the batch (not stored yet).
#[derive(Debug, Default)]
pub(crate) struct Refusers<'a> {
    entries: Vec<((&'a str, Reading), Option<i64>)>,
}

impl Refusers<'_> {
    /// The stored entry that refused `reading` of `vehicle_id`, when it was stored before the
    /// batch.
    pub(crate) fn stored(&self, vehicle_id: &str, reading: Reading) -> Option<i64> {
        self.entries
            .iter()
            .find(|((v, r), _)| *v == vehicle_id && *r == reading)
            .and_then(|(_, id)| *id)
    }
}

/// The refusing readings of `refused` (in the batch's order) with their stored entries, and
/// where the batch must end so that a supersession happens where it would one delivery at a
/// time: just after the first refusal that completes one ([`Tally`]). Reads only.
pub(crate) fn refusers<'a>(
    conn: &mut DbConnection,
    refused: &[Refused<'a>],
    policy: &Policy,
) -> Result<(Refusers<'a>, Option<usize>)> {
    let mut found = Refusers::default();
    for r in refused {
        let key = (r.vehicle_id, r.by);
        if !found.entries.iter().any(|(k, _)| *k == key) {
            found.entries.push((key, None));
        }
    }
    let keys: Vec<(&str, Reading)> = found.entries.iter().map(|(k, _)| *k).collect();
    let mut tally = Tally::new(policy);
    let loaded = load_refusers(conn, &keys, supersession_window(policy))?;
    for ((key, entry), (stored, earlier)) in found.entries.iter_mut().zip(loaded) {
        *entry = stored;
        tally.stored(*key, earlier);
    }
    let end = refused
        .iter()
        .find(|r| tally.refuse((r.vehicle_id, r.by), r.reading, policy))
        .map(|r| r.index + 1);
    Ok((found, end))
}

/// The latest void entries refused because of `entry`: (id, reading).
fn refused_of(conn: &mut DbConnection, entry: i64, latest: usize) -> Result<Vec<(i64, Reading)>> {
    use meter_entries::dsl as m;
    let rows: Vec<(i64, i64, NaiveDateTime)> = m::meter_entries
        .filter(m::refused_by.eq(Some(entry)))
        .filter(m::void.eq(true))
        .order(m::id.desc())
        .limit(i64::try_from(latest).unwrap_or(i64::MAX))
        .select((m::id, m::value_m, m::entry_date))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .rev()
        .filter_map(|(id, value_m, date)| Some((id, stored_reading(value_m, date)?)))
        .collect())
}

#[derive(QueryableByName)]
struct RefuserRow {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    entry: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    refused: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    value_m: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    entry_date: Option<NaiveDateTime>,
}

/// For each (app vehicle, reading) of `keys`: the active entry of that reading, and the latest
/// `latest` void entries it refused, oldest first. One statement for the whole batch (point
/// look-ups on the active entries' index and the refusals' index), as [`load_neighbours`] is:
/// a refused reading costs two look-ups, not two statements.
fn load_refusers(
    conn: &mut DbConnection,
    keys: &[(&str, Reading)],
    latest: usize,
) -> Result<Vec<(Option<i64>, Vec<Reading>)>> {
    let mut found = vec![(None, Vec::new()); keys.len()];
    if keys.is_empty() {
        return Ok(found);
    }
    let mut bounds = Vec::with_capacity(keys.len());
    for (vehicle, by) in keys {
        bounds.push((*vehicle, timestamp(*by)?, by.distance.metres()));
    }
    let latest = i64::try_from(latest).unwrap_or(i64::MAX).max(1);
    let mut rows = refuser_rows(conn, &bounds, latest)?;
    rows.sort_by_key(|r| (r.i, r.refused));
    for row in rows {
        let Some((entry, earlier)) = usize::try_from(row.i).ok().and_then(|i| found.get_mut(i))
        else {
            continue;
        };
        *entry = row.entry;
        if let (Some(_), Some(value_m), Some(date)) = (row.refused, row.value_m, row.entry_date) {
            earlier.extend(stored_reading(value_m, date));
        }
    }
    Ok(found)
}

/// The rows of [`load_refusers`]: for each key's index, its active entry and the latest
/// refusals of that entry.
fn refuser_rows(
    conn: &mut DbConnection,
    bounds: &[(&str, NaiveDateTime, i64)],
    latest: i64,
) -> Result<Vec<RefuserRow>> {
    // One statement text whatever the batch's size, so that it is prepared once.
    Ok(match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            let vehicle: Vec<&str> = bounds.iter().map(|b| b.0).collect();
            let at: Vec<NaiveDateTime> = bounds.iter().map(|b| b.1).collect();
            let value: Vec<i64> = bounds.iter().map(|b| b.2).collect();
            prepared::fixed!(
                "SELECT k.i - 1 AS i, e.id AS entry, r.id AS refused, r.value_m, r.entry_date \
                 FROM unnest(?::text[], ?::timestamp[], ?::bigint[]) \
                   WITH ORDINALITY AS k(vehicle_id, at, value_m, i) \
                 LEFT JOIN LATERAL (SELECT x.id FROM meter_entries x \
                     WHERE x.vehicle_id = k.vehicle_id AND x.void = FALSE \
                     AND x.entry_date = k.at AND x.value_m = k.value_m \
                     ORDER BY x.id LIMIT 1) e ON TRUE \
                 LEFT JOIN LATERAL (SELECT y.id, y.value_m, y.entry_date FROM meter_entries y \
                     WHERE y.refused_by = e.id AND y.void = TRUE \
                     ORDER BY y.id DESC LIMIT ?) r ON TRUE",
                [
                    Bind::Texts(vehicle),
                    Bind::Timestamps(at),
                    Bind::BigInts(value),
                    Bind::BigInt(latest),
                ]
            )
            .load(c)?
        }
        // The refusals kept are those at or after the latest-th newest: one range on the
        // refusals' index per entry.
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => {
            let json: Vec<serde_json::Value> = bounds
                .iter()
                .map(|(vehicle, at, value)| {
                    serde_json::json!([vehicle, crate::entries::sqlite_time(at), value])
                })
                .collect();
            prepared::fixed!(
                "WITH k(i, vehicle_id, at, value_m) AS ( \
                       SELECT j.key, j.value ->> 0, j.value ->> 1, j.value ->> 2 \
                       FROM json_each(?) j), \
                     e(i, id) AS MATERIALIZED (SELECT k.i, (SELECT x.id FROM meter_entries x \
                       WHERE x.vehicle_id = k.vehicle_id AND x.void = FALSE \
                       AND x.entry_date = k.at AND x.value_m = k.value_m \
                       ORDER BY x.id LIMIT 1) FROM k) \
                     SELECT e.i AS i, e.id AS entry, y.id AS refused, y.value_m AS value_m, \
                       y.entry_date AS entry_date \
                     FROM e LEFT JOIN meter_entries y ON y.refused_by = e.id AND y.void = TRUE \
                       AND y.id >= COALESCE((SELECT z.id FROM meter_entries z \
                         WHERE z.refused_by = e.id AND z.void = TRUE \
                         ORDER BY z.id DESC LIMIT 1 OFFSET ? - 1), 0)",
                [
                    Bind::Text(serde_json::Value::Array(json).to_string()),
                    Bind::BigInt(latest),
                ]
            )
            .load(c)?
        }
    })
}

/// After the batch's entries are written: links the refusals whose refusing reading was
/// accepted in the batch (the others were linked as they were inserted), then, when the batch
/// ends with the refusal that completes a supersession (`completes`), tries it. Returns the
/// changes a supersession made.
pub(crate) fn settle(
    conn: &mut DbConnection,
    refusals: &[Refusal<'_>],
    refusers: &Refusers<'_>,
    completes: bool,
    policy: &Policy,
    at: NaiveDateTime,
) -> Result<Vec<NewChange>> {
    for refusal in refusals {
        if refusers
            .stored(refusal.vehicle_id, refusal.refused_by)
            .is_some()
        {
            continue;
        }
        let Some(entry) = active_entry(conn, refusal.vehicle_id, refusal.refused_by)? else {
            continue;
        };
        diesel::update(meter_entries::table.filter(meter_entries::id.eq(refusal.entry_id)))
            .set(meter_entries::refused_by.eq(Some(entry)))
            .execute(conn)?;
    }
    // The batch ends with the refusal that completes the set: the last one.
    let (true, Some(last)) = (completes, refusals.last()) else {
        return Ok(Vec::new());
    };
    let Some(entry) = active_entry(conn, last.vehicle_id, last.refused_by)? else {
        return Ok(Vec::new());
    };
    match conn.transaction(|conn| supersede_entry(conn, entry, last, policy, at)) {
        Ok(changes) => Ok(changes),
        // The entry was not their only obstacle: it stays, and so do they.
        Err(StoreError::Query(DieselError::RollbackTransaction)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The active entry of `vehicle_id` with this reading's time and value.
fn active_entry(
    conn: &mut DbConnection,
    vehicle_id: &str,
    reading: Reading,
) -> Result<Option<i64>> {
    use meter_entries::dsl as m;
    Ok(m::meter_entries
        .filter(m::vehicle_id.eq(vehicle_id))
        // A literal, so that the planners use the partial index of active entries.
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("void = FALSE"))
        .filter(m::entry_date.eq(timestamp(reading)?))
        .filter(m::value_m.eq(reading.distance.metres()))
        .order(m::id.asc())
        .select(m::id)
        .first(conn)
        .optional()?)
}

/// In a savepoint: asks the domain's rule whether the readings `entry` refused supersede it
/// (voiding it to show the rule the timeline without it); saves what it decides, or rolls back
/// ([`DieselError::RollbackTransaction`]) when the entry stays.
fn supersede_entry(
    conn: &mut DbConnection,
    entry: i64,
    refusal: &Refusal<'_>,
    policy: &Policy,
    at: NaiveDateTime,
) -> Result<Vec<NewChange>> {
    use meter_entries::dsl as m;
    let rollback = || StoreError::Query(DieselError::RollbackTransaction);
    let refused = refused_of(conn, entry, supersession_window(policy))?;
    let readings: Vec<Reading> = refused.iter().map(|(_, r)| *r).collect();
    let mut reason = String::new();
    let decided = supersede(&readings, policy, |agreeing| {
        reason = meterhook_domain::Supersession {
            agreeing: agreeing.to_vec(),
        }
        .to_string();
        let voided = diesel::update(
            m::meter_entries
                .filter(m::id.eq(entry))
                .filter(m::void.eq(false)),
        )
        .set((
            m::void.eq(true),
            m::void_reason.eq(&reason),
            m::updated_at.eq(at),
            m::void_detail.eq(Some(supersession_detail(agreeing))),
        ))
        .execute(&mut *conn)?;
        if voided != 1 {
            return Err(rollback());
        }
        let candidates: Vec<Candidate<&str>> = agreeing
            .iter()
            .map(|reading| Candidate {
                vehicle: refusal.vehicle_id,
                reading: *reading,
                stored: Default::default(),
            })
            .collect();
        let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
        load_neighbours(&mut *conn, &candidates, window)
    })?;
    let Some(outvoted) = decided else {
        return Err(rollback());
    };
    let revived = revive(conn, &refused, &outvoted.agreeing, at)?;
    log_supersession(conn, entry, &revived, &reason, refusal, at)?;
    let mut changed = find_entries(conn, &[entry])?;
    changed.extend(find_entries(conn, &revived)?);
    Ok(changed
        .iter()
        .map(|e| {
            let kind = if e.void {
                ChangeType::MeterEntryVoided
            } else {
                ChangeType::MeterEntryUnvoided
            };
            NewChange::entry(kind, e, refusal.smartcar_vehicle_id, at)
        })
        .collect())
}

/// Makes the entries of the agreeing readings (each once, among the `refused` ones) active
/// again; returns their ids, or rolls back when one is missing.
fn revive(
    conn: &mut DbConnection,
    refused: &[(i64, Reading)],
    agreeing: &[Reading],
    at: NaiveDateTime,
) -> Result<Vec<i64>> {
    use meter_entries::dsl as m;
    let mut revived: Vec<i64> = Vec::new();
    for reading in agreeing {
        let Some((id, _)) = refused
            .iter()
            .find(|(id, r)| r == reading && !revived.contains(id))
        else {
            return Err(StoreError::Query(DieselError::RollbackTransaction));
        };
        revived.push(*id);
    }
    diesel::update(m::meter_entries.filter(m::id.eq_any(&revived)))
        .set((
            m::void.eq(false),
            m::void_reason.eq(None::<String>),
            m::refused_by.eq(None::<i64>),
            m::updated_at.eq(at),
            m::void_detail.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(revived)
}

/// The sync log of a supersession, in the event of the refusal that completed it.
fn log_supersession(
    conn: &mut DbConnection,
    entry: i64,
    revived: &[i64],
    reason: &str,
    refusal: &Refusal<'_>,
    at: NaiveDateTime,
) -> Result<()> {
    let data = serde_json::json!({
        "decision": Outcome::Superseded.as_str(),
        "supersededEntryId": entry,
        "reason": reason,
        "revivedEntryIds": revived,
    })
    .to_string();
    let log = NewSyncLog {
        sync_type: "odometer",
        smartcar_vehicle_id: refusal.smartcar_vehicle_id,
        vehicle_id: Some(refusal.vehicle_id),
        event_id: Some(refusal.event_id),
        status: SyncStatus::for_outcome(Outcome::Superseded).as_str(),
        outcome: Outcome::Superseded.as_str(),
        data: &data,
        created_at: at,
    };
    on_backend!(&mut *conn, |c| diesel::insert_into(
        smartcar_sync_logs::table
    )
    .values(&log)
    .execute(c))?;
    log::info!(
        "vehicle {}: meter entry {entry} {reason}; entries {revived:?} accepted again",
        refusal.vehicle_id.escape_debug()
    );
    Ok(())
}

/// The `void_detail` of an entry superseded by `agreeing`.
fn supersession_detail(agreeing: &[Reading]) -> String {
    let readings: Vec<serde_json::Value> = agreeing.iter().map(|r| reading_json(*r)).collect();
    serde_json::json!({ "rule": Outcome::Superseded.as_str(), "agreeing": readings }).to_string()
}

/// A reading as the JSON details show it: value in km, time in RFC 3339.
pub(crate) fn reading_json(r: Reading) -> serde_json::Value {
    serde_json::json!({
        "value_km": r.distance.km(),
        "entry_date": crate::to_timestamp(r.observed_at).map(crate::views::rfc3339),
    })
}
