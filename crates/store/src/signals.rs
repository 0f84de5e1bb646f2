//! Signal values of vehicle states, every one kept, one per (vehicle, code, time).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use meterhook_domain::Millis;
use serde::Serialize;

use crate::db::DbConnection;
use crate::prepared;
#[cfg(feature = "postgres")]
use crate::prepared::Bind;
use crate::schema::vehicle_signals;
use crate::vehicles::smartcar_ids;
use crate::{Result, Store};

/// A signal value to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSignal {
    /// Signal code (`tractionbattery-stateofcharge`, …; per-tire codes for tires).
    pub code: String,
    /// The numeric value, normalised, when there is one.
    pub value: Option<f64>,
    /// Its unit, normalised when known.
    pub unit: Option<String>,
    /// The signal as received, JSON text.
    pub raw: String,
    /// When the car observed it.
    pub observed_at: Millis,
}

/// A kept signal value.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = vehicle_signals)]
pub struct SignalRow {
    /// Row id.
    pub id: i64,
    /// Smartcar's vehicle id.
    pub smartcar_vehicle_id: String,
    /// Signal code.
    pub code: String,
    /// Numeric value, when there is one.
    pub value: Option<f64>,
    /// Unit of the value.
    pub unit: Option<String>,
    /// The signal as received, JSON text.
    pub raw: String,
    /// When the car observed it (UTC).
    pub observed_at: NaiveDateTime,
    /// The event it came in.
    pub event_id: String,
    /// When it was stored (UTC).
    pub created_at: NaiveDateTime,
    /// Sent by a test delivery (the dashboard's `meta.mode: TEST`), not by the car.
    pub test: bool,
}

impl Store {
    /// The latest live value of every signal of an app vehicle (through its Smartcar vehicles);
    /// values of test deliveries are kept, and shown by [`Store::signal_history`], but never
    /// stand as the vehicle's latest.
    pub fn latest_signals(&self, vehicle_id: &str) -> Result<Vec<SignalRow>> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        let ids = smartcar_ids(&mut conn, vehicle_id)?;
        let codes: Vec<String> = s::vehicle_signals
            .filter(s::smartcar_vehicle_id.eq_any(&ids))
            .filter(s::test.eq(false))
            .select(s::code)
            .distinct()
            .order(s::code.asc())
            .load(&mut *conn)?;
        let mut latest = Vec::with_capacity(codes.len());
        for code in codes {
            let row = s::vehicle_signals
                .filter(s::smartcar_vehicle_id.eq_any(&ids))
                .filter(s::code.eq(&code))
                .filter(s::test.eq(false))
                .order((s::observed_at.desc(), s::id.desc()))
                .select(SignalRow::as_select())
                .first(&mut *conn)?;
            latest.push(row);
        }
        Ok(latest)
    }

    /// The values of one signal of an app vehicle, newest first.
    pub fn signal_history(
        &self,
        vehicle_id: &str,
        code: &str,
        limit: i64,
    ) -> Result<Vec<SignalRow>> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        let ids = smartcar_ids(&mut conn, vehicle_id)?;
        Ok(s::vehicle_signals
            .filter(s::smartcar_vehicle_id.eq_any(&ids))
            .filter(s::code.eq(code))
            .order((s::observed_at.desc(), s::id.desc()))
            .limit(limit.max(0))
            .select(SignalRow::as_select())
            .load(&mut *conn)?)
    }

    /// Deletes signal values stored before `before`, `batch` rows per transaction, calling
    /// `progress` with the rows deleted so far after each batch; returns how many. A value that
    /// old goes even when it is still a vehicle's latest for its code.
    pub fn prune_signals(
        &self,
        before: NaiveDateTime,
        batch: i64,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        crate::store::delete_in_batches(
            &mut conn,
            batch,
            progress,
            // Oldest first by id, which follows the time of writing: each batch finds its rows
            // at the start of the primary key.
            |conn, batch| {
                Ok(s::vehicle_signals
                    .filter(s::created_at.lt(before))
                    .order(s::id.asc())
                    .limit(batch)
                    .select(s::id)
                    .load(conn)?)
            },
            |conn, ids| {
                Ok(diesel::delete(s::vehicle_signals.filter(s::id.eq_any(ids))).execute(conn)?)
            },
        )
    }
}

/// A signal value as [`insert_signals`] inserts it.
#[derive(Insertable)]
#[diesel(table_name = vehicle_signals, treat_none_as_default_value = false)]
pub(crate) struct SignalInsert<'a> {
    pub smartcar_vehicle_id: &'a str,
    pub code: &'a str,
    pub value: Option<f64>,
    pub unit: Option<&'a str>,
    pub raw: &'a str,
    pub observed_at: NaiveDateTime,
    pub event_id: &'a str,
    pub created_at: NaiveDateTime,
    pub test: bool,
}

/// Inserts signal values, one per (vehicle, code, time): a value seen before is kept as it was.
pub(crate) fn insert_signals(conn: &mut DbConnection, rows: &[SignalInsert<'_>]) -> Result<()> {
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
