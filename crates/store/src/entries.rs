//! Meter entries: the odometer log, its pages, void and unvoid, and the stored neighbours the
//! rules judge a reading against.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use meterhook_domain::{judge, Candidate, Decision, Distance, Policy, Reading, Stored};

use crate::changes::{record_changes, ChangeType, NewChange};
use crate::db::{on_backend, DbConnection};
use crate::prepared::{self, Bind};
use crate::schema::meter_entries;
use crate::vehicles::lock_app_vehicle;
use crate::{to_timestamp, Result, Store, StoreError};

/// `source_type` of entries made from webhooks.
pub const SOURCE_SMARTCAR_WEBHOOK: &str = "smartcar_webhook";

/// How Diesel writes a `Timestamp` into SQLite (text, compared as text).
#[cfg(feature = "sqlite")]
const SQLITE_TIMESTAMP: &str = "%F %T%.f";

/// A time as SQLite stores it, for statements that pass times inside a JSON array: they then
/// compare as the column's do.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_time(t: &NaiveDateTime) -> String {
    // The format parsed once, not at every call (three times a reading).
    static ITEMS: std::sync::OnceLock<Vec<chrono::format::Item<'static>>> =
        std::sync::OnceLock::new();
    let items =
        ITEMS.get_or_init(|| chrono::format::StrftimeItems::new(SQLITE_TIMESTAMP).collect());
    t.format_with_items(items.iter()).to_string()
}

/// A stored entry's value and time as a reading; `None` for a value no reading can have.
pub(crate) fn stored_reading(value_m: i64, entry_date: NaiveDateTime) -> Option<Reading> {
    let distance = Distance::from_metres(value_m).ok()?;
    Some(Reading::new(distance, crate::to_millis(entry_date)))
}

/// A meter entry.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = meter_entries)]
pub struct MeterEntry {
    /// Row id.
    pub id: i64,
    /// The app's vehicle id.
    pub vehicle_id: String,
    /// The odometer value in whole metres (exact; shown as km).
    pub value_m: i64,
    /// When the reading was taken on the car (UTC).
    pub entry_date: NaiveDateTime,
    /// Where it came from: `smartcar_webhook`.
    pub source_type: String,
    /// A note naming the webhook event.
    pub notes: Option<String>,
    /// The webhook event it came from.
    pub event_id: Option<String>,
    /// Whether it is voided (left out of the rules and the latest value).
    pub void: bool,
    /// Why it is voided.
    pub void_reason: Option<String>,
    /// When it was written (UTC).
    pub created_at: NaiveDateTime,
    /// For a refused reading, the active entry that refused it (self-healing counts these).
    pub refused_by: Option<i64>,
    /// When it last changed: written, voided or unvoided (UTC).
    pub updated_at: NaiveDateTime,
    /// Why it is void, for programs (JSON text: `rule`, and the figures the rule compared).
    pub void_detail: Option<String>,
}

/// Where a page of entries continues: after the entry with this reading time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryCursor {
    /// The last entry's reading time.
    pub entry_date: NaiveDateTime,
    /// The last entry's id.
    pub id: i64,
}

impl MeterEntry {
    /// The cursor that continues a page after this entry.
    pub fn cursor(&self) -> EntryCursor {
        EntryCursor {
            entry_date: self.entry_date,
            id: self.id,
        }
    }

    /// The value as a distance.
    pub fn distance(&self) -> Distance {
        Distance::from_metres(self.value_m).unwrap_or(Distance::ZERO)
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meter_entries, treat_none_as_default_value = false)]
pub(crate) struct NewMeterEntry<'a> {
    pub vehicle_id: &'a str,
    pub value_m: i64,
    pub entry_date: NaiveDateTime,
    pub source_type: &'a str,
    pub notes: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub void: bool,
    pub void_reason: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub refused_by: Option<i64>,
    pub updated_at: NaiveDateTime,
    pub void_detail: Option<String>,
}

impl NewMeterEntry<'_> {
    /// The entry as stored under row id `id`.
    fn stored(&self, id: i64) -> MeterEntry {
        MeterEntry {
            id,
            vehicle_id: self.vehicle_id.to_owned(),
            value_m: self.value_m,
            entry_date: self.entry_date,
            source_type: self.source_type.to_owned(),
            notes: self.notes.map(str::to_owned),
            event_id: self.event_id.map(str::to_owned),
            void: self.void,
            void_reason: self.void_reason.map(str::to_owned),
            created_at: self.created_at,
            refused_by: self.refused_by,
            updated_at: self.updated_at,
            void_detail: self.void_detail.clone(),
        }
    }
}

/// When an app vehicle's newest active reading was taken.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LastReading {
    /// The app's vehicle id.
    #[diesel(sql_type = Text)]
    pub vehicle_id: String,
    /// The reading time (UTC); `None` when the vehicle has no active entry.
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamp>)]
    pub at: Option<NaiveDateTime>,
}

/// Why an entry could not be unvoided.
#[derive(Debug, Clone, PartialEq)]
pub enum UnvoidRefusal {
    /// It is not void.
    NotVoid,
    /// The rules refuse it against the active entries now.
    Rules(Decision),
}

impl Store {
    /// A vehicle's meter entries by reading time, oldest first.
    pub fn list_entries(&self, vehicle_id: &str, include_void: bool) -> Result<Vec<MeterEntry>> {
        let mut conn = self.conn()?;
        let mut entries = newest_first(
            &mut conn,
            vehicle_id,
            ByDate {
                include_void,
                ..ByDate::default()
            },
        )?;
        entries.reverse();
        Ok(entries)
    }

    /// A page of an app vehicle's entries, newest reading first (by reading time, then id),
    /// continuing after `after` (the last entry of the previous page). Keyset paging: entries
    /// that arrive meanwhile never shift a page.
    pub fn entries_page(
        &self,
        vehicle_id: &str,
        include_void: bool,
        limit: i64,
        after: Option<EntryCursor>,
    ) -> Result<Vec<MeterEntry>> {
        let mut conn = self.conn()?;
        newest_first(
            &mut conn,
            vehicle_id,
            ByDate {
                include_void,
                after,
                limit: Some(limit.max(0)),
                ..ByDate::default()
            },
        )
    }

    /// An app vehicle's entries read at or after `since`, void ones too, newest reading first, at
    /// most `limit`.
    pub fn entries_since(
        &self,
        vehicle_id: &str,
        since: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<MeterEntry>> {
        let mut conn = self.conn()?;
        newest_first(
            &mut conn,
            vehicle_id,
            ByDate {
                include_void: true,
                since: Some(since),
                limit: Some(limit.max(0)),
                ..ByDate::default()
            },
        )
    }

    /// When each app vehicle's newest active reading was taken, `None` for a vehicle without one;
    /// for the app vehicles of registered Smartcar vehicles, by app vehicle id, at most `limit`.
    /// One statement, one index seek per vehicle: it does not grow with the entries' number.
    pub fn last_readings(&self, limit: i64) -> Result<Vec<LastReading>> {
        let mut conn = self.conn()?;
        // `void = FALSE` as a literal, so that the planners use the partial active-date index.
        // The limit is a literal: the placeholders' syntax differs between the backends.
        let query = diesel::sql_query(
            "SELECT v.vehicle_id AS vehicle_id, (SELECT MAX(m.entry_date) FROM meter_entries m \
               WHERE m.vehicle_id = v.vehicle_id AND m.void = FALSE) AS at \
             FROM (SELECT DISTINCT vehicle_id FROM smartcar_vehicles) v \
             ORDER BY v.vehicle_id LIMIT ",
        )
        .sql(limit.max(0).to_string());
        Ok(on_backend!(&mut *conn, |c| query.load(c))?)
    }

    /// Voids an entry: it stays, marked, and leaves the rules and the latest value. An active
    /// entry voided is a `meter_entry.voided` change; a void one only gets the new reason.
    pub fn void_entry(&self, id: i64, reason: &str) -> Result<MeterEntry> {
        use meter_entries::dsl as m;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid("a void needs a reason".into()));
        }
        self.write(|tx| {
            let conn = &mut *tx.conn;
            let before = find_entries(conn, &[id])?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no meter entry {id}")))?;
            let at = crate::now();
            diesel::update(m::meter_entries.filter(m::id.eq(id)))
                .set((
                    m::void.eq(true),
                    m::void_reason.eq(reason),
                    m::updated_at.eq(at),
                    m::void_detail.eq(Some(r#"{"rule":"operator"}"#)),
                ))
                .execute(conn)?;
            let entry = find_entries(conn, &[id])?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no meter entry {id}")))?;
            if !before.void {
                let change = entry_change(conn, ChangeType::MeterEntryVoided, &entry, at)?;
                record_changes(conn, &[change])?;
            }
            Ok(entry)
        })
    }

    /// Makes a void entry active again if the rules accept it against the active entries now
    /// (a `meter_entry.unvoided` change).
    pub fn unvoid_entry(
        &self,
        id: i64,
        policy: &Policy,
    ) -> Result<std::result::Result<MeterEntry, UnvoidRefusal>> {
        use meter_entries::dsl as m;
        self.write(|tx| {
            let conn = &mut *tx.conn;
            let Some(entry) = find_entries(conn, &[id])?.pop() else {
                return Err(StoreError::NotFound(format!("no meter entry {id}")));
            };
            if !entry.void {
                return Ok(Err(UnvoidRefusal::NotVoid));
            }
            lock_app_vehicle(conn, &entry.vehicle_id)?;
            let reading = Reading::new(entry.distance(), crate::to_millis(entry.entry_date));
            // Judged as a batch of one, against the active entries now.
            let mut candidate = [Candidate {
                vehicle: entry.vehicle_id.as_str(),
                reading,
                stored: Default::default(),
            }];
            let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
            let [stored] = <[_; 1]>::try_from(load_neighbours(conn, &candidate, window)?)
                .map_err(|_| StoreError::Invalid("no neighbours".into()))?;
            candidate[0].stored = stored;
            let decision = judge(&candidate, policy).remove(0).decision;
            if !decision.is_accept() {
                return Ok(Err(UnvoidRefusal::Rules(decision)));
            }
            let at = crate::now();
            diesel::update(m::meter_entries.filter(m::id.eq(id)))
                .set((
                    m::void.eq(false),
                    m::void_reason.eq(None::<String>),
                    m::updated_at.eq(at),
                    m::void_detail.eq(None::<String>),
                ))
                .execute(conn)?;
            let entry = find_entries(conn, &[id])?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no meter entry {id}")))?;
            let change = entry_change(conn, ChangeType::MeterEntryUnvoided, &entry, at)?;
            record_changes(conn, &[change])?;
            Ok(Ok(entry))
        })
    }
}

/// A change to `entry` made outside a delivery: named with the Smartcar vehicle of the event
/// it came in, when there is one.
fn entry_change(
    conn: &mut DbConnection,
    change_type: ChangeType,
    entry: &MeterEntry,
    at: NaiveDateTime,
) -> Result<NewChange> {
    use crate::schema::smartcar_webhook_events::dsl as e;
    let smartcar_vehicle_id: Option<String> = match &entry.event_id {
        Some(event_id) => e::smartcar_webhook_events
            .filter(e::event_id.eq(event_id))
            .select(e::smartcar_vehicle_id)
            .first::<Option<String>>(conn)
            .optional()?
            .flatten(),
        None => None,
    };
    Ok(NewChange::entry(
        change_type,
        entry,
        smartcar_vehicle_id.as_deref(),
        at,
    ))
}

/// The entries with these ids, in id order.
pub(crate) fn find_entries(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<MeterEntry>> {
    use meter_entries::dsl as m;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(m::meter_entries
        .filter(m::id.eq_any(ids))
        .order(m::id.asc())
        .select(MeterEntry::as_select())
        .load(conn)?)
}

/// Inserts the batch's entries (on PostgreSQL in one statement, on SQLite one prepared
/// statement per row); returns them as stored, with their ids, in the order given.
pub(crate) fn insert_entries(
    conn: &mut DbConnection,
    rows: &[NewMeterEntry<'_>],
) -> Result<Vec<MeterEntry>> {
    let returned: Vec<EntryId> = prepared::insert_rows!(&mut *conn, rows,
        pg: |c, all| {
            use prepared::column;
            prepared::fixed!(
                "INSERT INTO meter_entries (vehicle_id, value_m, entry_date, source_type, \
                     notes, event_id, void, void_reason, created_at, refused_by, updated_at, \
                     void_detail) \
                     SELECT * FROM unnest(?::text[], ?::bigint[], ?::timestamp[], ?::text[], \
                     ?::text[], ?::text[], ?::boolean[], ?::text[], ?::timestamp[], \
                     ?::bigint[], ?::timestamp[], ?::text[]) \
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
                    Bind::OptionalTexts(column(all, |r| r.void_detail.as_deref())),
                ]
            )
            .load::<EntryId>(c)
        },
        sqlite: |c, one| {
            diesel::insert_into(meter_entries::table)
                .values(one)
                .returning((meter_entries::id, meter_entries::event_id))
                .get_results::<(i64, Option<String>)>(c)
                .map(|rows| {
                    rows.into_iter()
                        .map(|(id, event_id)| EntryId { id, event_id })
                        .collect::<Vec<_>>()
                })
        },
    )
    .into_iter()
    .flatten()
    .collect();
    // The batch's entries each come from their own event: matched by it, whatever order the
    // database returned them in.
    let stored: Vec<MeterEntry> = rows
        .iter()
        .filter_map(|row| {
            let id = returned
                .iter()
                .find(|r| r.event_id.as_deref() == row.event_id)?
                .id;
            Some(row.stored(id))
        })
        .collect();
    if stored.len() != rows.len() {
        return Err(StoreError::Invalid(format!(
            "{} meter entries inserted, {} matched",
            rows.len(),
            stored.len()
        )));
    }
    Ok(stored)
}

/// An inserted entry's row id and event (`RETURNING`).
#[derive(QueryableByName)]
struct EntryId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    event_id: Option<String>,
}

/// Which of a vehicle's entries [`newest_first`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ByDate {
    pub include_void: bool,
    /// Only those after this one, newest first (keyset paging).
    pub after: Option<EntryCursor>,
    /// Only those read at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Only those written, voided or unvoided at or after this time.
    pub updated_since: Option<NaiveDateTime>,
    pub limit: Option<i64>,
}

/// A vehicle's entries, newest reading first (by reading time, then id). Active and void entries
/// each have their own partial index by date (the rules read the active one, and an accepted
/// reading writes one index page the fewer); a listing of both reads each and merges them.
pub(crate) fn newest_first(
    conn: &mut DbConnection,
    vehicle_id: &str,
    how: ByDate,
) -> Result<Vec<MeterEntry>> {
    use meter_entries::dsl as m;
    // Literals, so that the planners use the partial indexes.
    let kinds: &[&str] = if how.include_void {
        &["void = FALSE", "void = TRUE"]
    } else {
        &["void = FALSE"]
    };
    let mut entries = Vec::new();
    for kind in kinds {
        let mut query = m::meter_entries
            .filter(m::vehicle_id.eq(vehicle_id))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(kind))
            .order((m::entry_date.desc(), m::id.desc()))
            .select(MeterEntry::as_select())
            .into_boxed();
        if let Some(c) = how.after {
            query = query.filter(
                m::entry_date
                    .lt(c.entry_date)
                    .or(m::entry_date.eq(c.entry_date).and(m::id.lt(c.id))),
            );
        }
        if let Some(since) = how.since {
            query = query.filter(m::entry_date.ge(since));
        }
        if let Some(since) = how.updated_since {
            query = query.filter(m::updated_at.ge(since));
        }
        if let Some(limit) = how.limit {
            query = query.limit(limit);
        }
        entries.extend(query.load(conn)?);
    }
    if kinds.len() > 1 {
        entries.sort_by_key(|e| std::cmp::Reverse((e.entry_date, e.id)));
        if let Some(limit) = how.limit {
            entries.truncate(usize::try_from(limit).unwrap_or(0));
        }
    }
    Ok(entries)
}

/// A reading's time as stored, or why it cannot be.
pub(crate) fn timestamp(reading: Reading) -> Result<NaiveDateTime> {
    to_timestamp(reading.observed_at).ok_or_else(|| {
        StoreError::Invalid(format!(
            "reading time {} is out of range",
            reading.observed_at
        ))
    })
}

#[derive(QueryableByName)]
struct NeighbourRow {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = BigInt)]
    side: i64,
    #[diesel(sql_type = BigInt)]
    value_m: i64,
    #[diesel(sql_type = Timestamp)]
    entry_date: NaiveDateTime,
}

/// Bounds of one candidate for [`load_neighbours`]: vehicle, time, value, and the duplicate
/// window's ends.
type Bounds<'a> = (&'a str, NaiveDateTime, i64, NaiveDateTime, NaiveDateTime);

/// The rows of [`load_neighbours`]: (candidate, side, value, time).
fn neighbour_rows(conn: &mut DbConnection, bounds: &[Bounds<'_>]) -> Result<Vec<NeighbourRow>> {
    // One statement text whatever the batch's size, so that it is prepared once.
    Ok(match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            let vehicle: Vec<&str> = bounds.iter().map(|b| b.0).collect();
            let at: Vec<NaiveDateTime> = bounds.iter().map(|b| b.1).collect();
            let value: Vec<i64> = bounds.iter().map(|b| b.2).collect();
            let lo: Vec<NaiveDateTime> = bounds.iter().map(|b| b.3).collect();
            let hi: Vec<NaiveDateTime> = bounds.iter().map(|b| b.4).collect();
            prepared::fixed!(
                "SELECT b.i - 1 AS i, n.side, n.value_m, n.entry_date \
                 FROM unnest(?::text[], ?::timestamp[], ?::bigint[], ?::timestamp[], ?::timestamp[]) \
                   WITH ORDINALITY AS b(vehicle_id, at, value_m, lo, hi, i) \
                 CROSS JOIN LATERAL ( \
                   (SELECT 0::bigint AS side, x.value_m, x.entry_date FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date <= b.at \
                     ORDER BY x.entry_date DESC, x.value_m DESC LIMIT 1) \
                   UNION ALL \
                   (SELECT 1::bigint, x.value_m, x.entry_date FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date > b.at \
                     ORDER BY x.entry_date ASC, x.value_m ASC LIMIT 1) \
                   UNION ALL \
                   (SELECT 2::bigint, x.value_m, x.entry_date FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.value_m = b.value_m \
                     AND x.entry_date BETWEEN b.lo AND b.hi)) n",
                [
                    Bind::Texts(vehicle),
                    Bind::Timestamps(at),
                    Bind::BigInts(value),
                    Bind::Timestamps(lo),
                    Bind::Timestamps(hi),
                ]
            )
            .load(c)?
        }
        // SQLite has no arrays: the same over a JSON array of [vehicle, at, value, lo, hi], the
        // times in the text form Diesel stores, so that they compare as the column's do.
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => {
            let json: Vec<serde_json::Value> = bounds
                .iter()
                .map(|(vehicle, at, value, lo, hi)| {
                    let (at, lo, hi) = (sqlite_time(at), sqlite_time(lo), sqlite_time(hi));
                    serde_json::json!([vehicle, at, value, lo, hi])
                })
                .collect();
            prepared::fixed!(
                "WITH b(i, vehicle_id, at, value_m, lo, hi) AS ( \
                   SELECT j.key, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, \
                     j.value ->> 4 FROM json_each(?) j) \
                 SELECT b.i AS i, 0 AS side, m.value_m, m.entry_date FROM b \
                   JOIN meter_entries m ON m.id = (SELECT x.id FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date <= b.at \
                     ORDER BY x.entry_date DESC, x.value_m DESC LIMIT 1) \
                 UNION ALL \
                 SELECT b.i, 1, m.value_m, m.entry_date FROM b \
                   JOIN meter_entries m ON m.id = (SELECT x.id FROM meter_entries x \
                     WHERE x.vehicle_id = b.vehicle_id AND x.void = FALSE AND x.entry_date > b.at \
                     ORDER BY x.entry_date ASC, x.value_m ASC LIMIT 1) \
                 UNION ALL \
                 SELECT b.i, 2, m.value_m, m.entry_date FROM b \
                   JOIN meter_entries m ON m.vehicle_id = b.vehicle_id AND m.void = FALSE \
                     AND m.value_m = b.value_m AND m.entry_date BETWEEN b.lo AND b.hi",
                [Bind::Text(serde_json::Value::Array(json).to_string())]
            )
            .load(c)?
        }
    })
}

/// For each candidate, its app vehicle's active entries the rules need: the nearest one at or
/// before its time, the nearest one after it, and those of its value within the duplicate window.
/// Point lookups on the partial indexes of active entries, for the whole batch in one constant
/// statement: the cost of a reading does not grow with the vehicle's history.
pub(crate) fn load_neighbours(
    conn: &mut DbConnection,
    candidates: &[Candidate<&str>],
    window: TimeDelta,
) -> Result<Vec<Stored>> {
    let mut stored = vec![Stored::default(); candidates.len()];
    if candidates.is_empty() {
        return Ok(stored);
    }
    let mut bounds = Vec::with_capacity(candidates.len());
    for c in candidates {
        let at = timestamp(c.reading)?;
        let lo = at.checked_sub_signed(window).unwrap_or(NaiveDateTime::MIN);
        let hi = at.checked_add_signed(window).unwrap_or(NaiveDateTime::MAX);
        bounds.push((c.vehicle, at, c.reading.distance.metres(), lo, hi));
    }
    let rows = neighbour_rows(conn, &bounds)?;
    for row in rows {
        let (Some(s), Some(reading)) = (
            usize::try_from(row.i).ok().and_then(|i| stored.get_mut(i)),
            stored_reading(row.value_m, row.entry_date),
        ) else {
            continue;
        };
        match row.side {
            0 => s.before = Some(reading),
            1 => s.after = Some(reading),
            _ => s.same_value.push(reading),
        }
    }
    Ok(stored)
}

/// The `void_detail` of a refused reading: the rule, the reading it was compared with, and for
/// a jump the speed beyond the tolerance (absent when the times are equal).
pub(crate) fn refusal_detail(decision: &Decision) -> String {
    let (compared, speed_kmh) = match decision {
        Decision::OutOfSequence { neighbour, .. } => (Some(*neighbour), None),
        Decision::ImplausibleJump {
            neighbour,
            speed_kmh,
        } => (Some(*neighbour), Some(*speed_kmh).filter(|s| s.is_finite())),
        Decision::Duplicate { existing } => (Some(*existing), None),
        Decision::Accept { .. } => (None, None),
    };
    let mut detail =
        serde_json::json!({ "rule": meterhook_domain::Outcome::of(decision).as_str() });
    if let Some(reading) = compared {
        detail["compared_with"] = crate::supersession::reading_json(reading);
    }
    if let Some(speed) = speed_kmh {
        detail["speed_kmh"] = serde_json::json!(speed.round());
    }
    detail.to_string()
}
