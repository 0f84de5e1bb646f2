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
use meterhook_domain::{judge, supersession, Candidate, Policy, Reading};

use crate::db::{on_backend, DbConnection};
use crate::entries::{load_neighbours, timestamp};
use crate::outcome::SyncStatus;
use crate::schema::{meter_entries, smartcar_sync_logs};
use crate::sync_logs::NewSyncLog;
use crate::{to_millis, Result, StoreError};

/// Refused readings of one entry considered at most (the latest): enough to find any agreeing
/// set a sane policy asks for, and a bound on the work a flood of refusals can cause.
const MAX_REFUSED: i64 = 16;

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

/// Where a batch must end so that a supersession happens where it would one delivery at a time:
/// just after the first refused reading that, with those refused before it because of the same
/// reading (stored, or earlier in the batch), outvotes it. `refused`: (the item's index, the
/// refused candidate, the reading that refused it), in the batch's order.
pub(crate) fn supersession_point(
    conn: &mut DbConnection,
    refused: &[(usize, Candidate<&str>, Reading)],
    policy: &Policy,
) -> Result<Option<usize>> {
    if policy.supersede_after == 0 {
        return Ok(None);
    }
    let mut tallies: Vec<((&str, Reading), Vec<Reading>)> = Vec::new();
    for (index, candidate, by) in refused {
        let key = (candidate.vehicle, *by);
        let at = match tallies.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let earlier = match active_entry(conn, candidate.vehicle, *by)? {
                    Some(entry) => refused_of(conn, entry)?
                        .into_iter()
                        .map(|(_, r)| r)
                        .collect(),
                    None => Vec::new(),
                };
                tallies.push((key, earlier));
                tallies.len() - 1
            }
        };
        let tally = &mut tallies[at].1;
        tally.push(candidate.reading);
        if tally.len() > 2 * MAX_REFUSED as usize {
            tally.drain(..tally.len() - MAX_REFUSED as usize);
        }
        if supersession(tally, policy).is_some() {
            return Ok(Some(index + 1));
        }
    }
    Ok(None)
}

/// The latest void entries refused because of `entry`: (id, reading).
fn refused_of(conn: &mut DbConnection, entry: i64) -> Result<Vec<(i64, Reading)>> {
    use meter_entries::dsl as m;
    let rows: Vec<(i64, i64, NaiveDateTime)> = m::meter_entries
        .filter(m::refused_by.eq(Some(entry)))
        .filter(m::void.eq(true))
        .order(m::id.desc())
        .limit(MAX_REFUSED)
        .select((m::id, m::value_m, m::entry_date))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .rev()
        .filter_map(|(id, value_m, date)| {
            let distance = meterhook_domain::Distance::from_metres(value_m).ok()?;
            Some((id, Reading::new(distance, to_millis(date))))
        })
        .collect())
}

/// Links each refusal to the entry that refused it, then supersedes the entries that enough of
/// their refused readings outvote.
pub(crate) fn settle(
    conn: &mut DbConnection,
    refusals: &[Refusal<'_>],
    policy: &Policy,
    at: NaiveDateTime,
) -> Result<()> {
    if policy.supersede_after == 0 {
        return Ok(());
    }
    let mut refusers: Vec<(i64, Refusal<'_>)> = Vec::new();
    for refusal in refusals {
        let Some(entry) = active_entry(conn, refusal.vehicle_id, refusal.refused_by)? else {
            continue;
        };
        diesel::update(meter_entries::table.filter(meter_entries::id.eq(refusal.entry_id)))
            .set(meter_entries::refused_by.eq(Some(entry)))
            .execute(conn)?;
        // The latest refusal of each entry completes its set (the batch ends there when it
        // does): the supersession is logged with its event.
        match refusers.iter_mut().find(|(e, _)| *e == entry) {
            Some(known) => known.1 = *refusal,
            None => refusers.push((entry, *refusal)),
        }
    }
    for (entry, refusal) in refusers {
        let attempt = conn.transaction(|conn| supersede(conn, entry, &refusal, policy, at));
        match attempt {
            // The entry was not their only obstacle: it stays, and so do they.
            Ok(()) | Err(StoreError::Query(DieselError::RollbackTransaction)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
    let readings = refused_of(conn, entry)?;
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
    .set((m::void.eq(true), m::void_reason.eq(&reason)))
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
