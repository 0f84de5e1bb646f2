//! Self-healing in the store: each refused reading remembers the active entry that refused it
//! (`meter_entries.refused_by`), and when enough of them agree the domain's
//! [`meterhook_domain::supersession`] rule voids that entry and they are judged again.
//!
//! It runs inside [`crate::Tx::write_batch`], after the batch's entries are written, in the same
//! transaction: the one write path. Only refused readings cost anything here; an accepted one
//! never reaches it.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Nullable, Timestamp};
use meterhook_domain::{judge, supersession, Candidate, Policy, Reading};

use crate::db::{on_backend, DbConnection};
use crate::entries::{load_neighbours, stored_reading, timestamp};
use crate::outcome::SyncStatus;
use crate::prepared::{self, Bind};
use crate::schema::{meter_entries, smartcar_sync_logs};
use crate::sync_logs::NewSyncLog;
use crate::{Result, StoreError};

/// How many of the latest refused readings of one entry are considered: twice the number that
/// supersedes (so a set that agrees is found among stray ones), at least 4, at most 64. A bound
/// on the work a flood of refusals can cause.
fn considered(policy: &Policy) -> usize {
    usize::try_from(policy.supersede_after)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .clamp(4, 64)
}

/// A reading of the batch written as a void entry, and the reading that refused it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal<'a> {
    /// The app vehicle.
    pub vehicle_id: &'a str,
    /// The void entry written for it.
    pub entry_id: i64,
    /// The active reading (stored, or accepted earlier in the batch) that refused it.
    pub refused_by: Reading,
    /// The event it came in, for the sync log of a supersession.
    pub event_id: &'a str,
    /// The Smartcar vehicle, for that sync log.
    pub smartcar_vehicle_id: Option<&'a str>,
}

/// What [`supersession_point`] found about a batch's refused readings.
#[derive(Debug, Default)]
pub(crate) struct Tally<'a> {
    /// Where the batch must end: just after the refused reading that completes a supersession.
    pub cut: Option<usize>,
    /// The stored entry behind each refusing reading, by (app vehicle, reading); `None` for a
    /// reading accepted earlier in the batch (not stored yet).
    pub refusers: Vec<((&'a str, Reading), Option<i64>)>,
}

impl Tally<'_> {
    /// The stored entry that refused `reading` of `vehicle_id`, when it was stored before the
    /// batch.
    pub(crate) fn stored_refuser(&self, vehicle_id: &str, reading: Reading) -> Option<i64> {
        self.refusers
            .iter()
            .find(|((v, r), _)| *v == vehicle_id && *r == reading)
            .and_then(|(_, id)| *id)
    }
}

/// Where a batch must end so that a supersession happens where it would one delivery at a time:
/// just after the first refused reading that, with those refused before it because of the same
/// reading (stored, or earlier in the batch), outvotes it. `refused`: (the item's index, the
/// refused candidate, the reading that refused it), in the batch's order. Reads only.
pub(crate) fn supersession_point<'a>(
    conn: &mut DbConnection,
    refused: &[(usize, Candidate<&'a str>, Reading)],
    policy: &Policy,
) -> Result<Tally<'a>> {
    let mut tally = Tally::default();
    // The refusing readings, each once, in the batch's order; their entries and latest
    // refusals in one statement.
    for (_, candidate, by) in refused {
        let key = (candidate.vehicle, *by);
        if !tally.refusers.iter().any(|(k, _)| *k == key) {
            tally.refusers.push((key, None));
        }
    }
    let keys: Vec<(&str, Reading)> = tally.refusers.iter().map(|(k, _)| *k).collect();
    let found = refusers(conn, &keys, considered(policy))?;
    let mut counts: Vec<Vec<Reading>> = Vec::with_capacity(found.len());
    for ((_, entry), (stored, earlier)) in tally.refusers.iter_mut().zip(found) {
        *entry = stored;
        counts.push(earlier);
    }
    for (index, candidate, by) in refused {
        let key = (candidate.vehicle, *by);
        let Some(at) = tally.refusers.iter().position(|(k, _)| *k == key) else {
            continue;
        };
        if policy.supersede_after == 0 || tally.cut.is_some() {
            continue;
        }
        let readings = &mut counts[at];
        readings.push(candidate.reading);
        if readings.len() > considered(policy) {
            readings.remove(0);
        }
        if supersession(readings, policy).is_some() {
            tally.cut = Some(index + 1);
        }
    }
    Ok(tally)
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
fn refusers(
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
    // One statement text whatever the batch's size, so that it is prepared once.
    let mut rows: Vec<RefuserRow> = match conn {
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
    };
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

/// After the batch's entries are written: links the refusals whose refusing reading was
/// accepted in the batch (the others were linked as they were inserted), then, when the batch
/// ends with a refused reading that completes a supersession (`tally.cut` at its end), tries it.
pub(crate) fn settle(
    conn: &mut DbConnection,
    refusals: &[Refusal<'_>],
    tally: &Tally<'_>,
    batch_len: usize,
    policy: &Policy,
    at: NaiveDateTime,
) -> Result<()> {
    for refusal in refusals {
        if tally
            .stored_refuser(refusal.vehicle_id, refusal.refused_by)
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
    if tally.cut != Some(batch_len) {
        return Ok(());
    }
    // The batch ends with the refusal that completes the set: the last one.
    let Some(last) = refusals.last() else {
        return Ok(());
    };
    let Some(entry) = active_entry(conn, last.vehicle_id, last.refused_by)? else {
        return Ok(());
    };
    match conn.transaction(|conn| supersede(conn, entry, last, policy, at)) {
        // The entry was not their only obstacle: it stays, and so do they.
        Ok(()) | Err(StoreError::Query(DieselError::RollbackTransaction)) => Ok(()),
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

/// In a savepoint: voids `entry` when the readings it refused outvote it and are all accepted
/// without it; otherwise rolls back ([`DieselError::RollbackTransaction`]).
fn supersede(
    conn: &mut DbConnection,
    entry: i64,
    refusal: &Refusal<'_>,
    policy: &Policy,
    at: NaiveDateTime,
) -> Result<()> {
    use meter_entries::dsl as m;
    let rollback = || Err(StoreError::Query(DieselError::RollbackTransaction));
    let readings = refused_of(conn, entry, considered(policy))?;
    let all: Vec<Reading> = readings.iter().map(|(_, r)| *r).collect();
    let Some(outvoted) = supersession(&all, policy) else {
        return rollback();
    };
    let reason = outvoted.to_string();
    let voided = diesel::update(
        m::meter_entries
            .filter(m::id.eq(entry))
            .filter(m::void.eq(false)),
    )
    .set((
        m::void.eq(true),
        m::void_reason.eq(&reason),
        m::updated_at.eq(at),
    ))
    .execute(conn)?;
    if voided != 1 {
        return rollback();
    }
    // The agreeing readings, judged again in time order against the timeline without the entry.
    let mut revived: Vec<i64> = Vec::new();
    let mut candidates: Vec<Candidate<&str>> = Vec::new();
    for reading in &outvoted.agreeing {
        let Some((id, _)) = readings
            .iter()
            .find(|(id, r)| r == reading && !revived.contains(id))
        else {
            return rollback();
        };
        revived.push(*id);
        candidates.push(Candidate {
            vehicle: refusal.vehicle_id,
            reading: *reading,
            stored: Default::default(),
        });
    }
    let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
    let stored = load_neighbours(conn, &candidates, window)?;
    for (candidate, stored) in candidates.iter_mut().zip(stored) {
        candidate.stored = stored;
    }
    if !judge(&candidates, policy)
        .iter()
        .all(|j| j.decision.is_accept())
    {
        return rollback();
    }
    diesel::update(m::meter_entries.filter(m::id.eq_any(&revived)))
        .set((
            m::void.eq(false),
            m::void_reason.eq(None::<String>),
            m::updated_at.eq(at),
            m::refused_by.eq(None::<i64>),
        ))
        .execute(conn)?;
    let data = serde_json::json!({
        "decision": "superseded",
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
        status: SyncStatus::Success.as_str(),
        outcome: "superseded",
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
        refusal.vehicle_id
    );
    Ok(())
}
