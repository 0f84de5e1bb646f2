//! Monitoring figures: the seed's stats over a window, deliveries by hour, the backlog gauges,
//! the newest arrival.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;

use crate::db::DbConnection;
use meterhook_domain::Outcome;

use crate::schema::{smartcar_sync_logs, smartcar_webhook_events};
use crate::sync_logs::SyncStatus;
use crate::{Result, Store};

/// Events not finished yet, and those that gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Backlog {
    /// Unprocessed events never tried yet (their first processing was interrupted).
    pub pending: i64,
    /// Unprocessed events that failed at least once and wait for their next try.
    pub retrying: i64,
    /// Events whose processing failed every attempt.
    pub dead: i64,
}

impl Backlog {
    /// Every unprocessed event: pending and retrying.
    pub fn unprocessed(&self) -> i64 {
        self.pending + self.retrying
    }
}

/// How many events of one outcome arrived in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyCount {
    /// The start of the hour (UTC).
    pub hour: NaiveDateTime,
    /// The outcome's stored name.
    pub outcome: String,
    /// How many.
    pub count: i64,
}

#[derive(QueryableByName)]
struct HourRow {
    #[diesel(sql_type = Text)]
    hour: String,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A count of events of one type in one processed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// Event type.
    pub event_type: String,
    /// Processed or not.
    pub processed: bool,
    /// How many.
    pub count: i64,
}

/// The seed's monitoring figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Start of the window (UTC).
    pub since: NaiveDateTime,
    /// Events received in the window.
    pub events_total: i64,
    /// Events by type and processed state.
    pub events_by_type: Vec<TypeCount>,
    /// Events by outcome.
    pub events_by_outcome: Vec<(String, i64)>,
    /// Processed events whose outcome is not an error, over all processed events (0 to 1).
    pub processing_success_rate: f64,
    /// Odometer syncs skipped as duplicates, over all odometer syncs (0 to 1).
    pub duplicate_rate: f64,
    /// Events whose outcome is an error (invalid, malformed, dead), over all events (0 to 1).
    pub error_rate: f64,
    /// Sync log rows in the window.
    pub syncs_total: i64,
    /// Sync log rows with status `success`.
    pub syncs_success: i64,
    /// Events not processed yet.
    pub pending: i64,
    /// Events that failed every attempt.
    pub dead: i64,
}

impl Store {
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

    /// Pending, retrying and dead events, for the backlog gauges and the status page.
    pub fn backlog(&self) -> Result<Backlog> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        // Unprocessed rows are few (events are inserted processed), and the partial pending index
        // holds exactly them.
        let unprocessed = || {
            e::smartcar_webhook_events.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "processed = FALSE",
            ))
        };
        let retrying = unprocessed()
            .filter(e::attempts.gt(0))
            .count()
            .get_result(&mut *conn)?;
        let pending = unprocessed()
            .filter(e::attempts.eq(0))
            .count()
            .get_result(&mut *conn)?;
        let dead = e::smartcar_webhook_events
            // A literal, so that the planners count the partial dead index.
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "outcome = 'dead'",
            ))
            .count()
            .get_result(&mut *conn)?;
        Ok(Backlog {
            pending,
            retrying,
            dead,
        })
    }

    /// Events received since `since`, counted by hour (UTC) and outcome, oldest hour first. One
    /// grouped range read on the `received_at` index; at most one row per hour and outcome.
    pub fn hourly_outcomes(&self, since: NaiveDateTime) -> Result<Vec<HourlyCount>> {
        let mut conn = self.conn()?;
        let conn: &mut DbConnection = &mut conn;
        // The hour is text in the same form on both backends, so one parser reads it.
        let rows: Vec<HourRow> = match conn {
            #[cfg(feature = "postgres")]
            DbConnection::Pg(c) => diesel::sql_query(
                "SELECT to_char(date_trunc('hour', received_at), 'YYYY-MM-DD HH24:00:00') AS hour, \
                   outcome, COUNT(*) AS n FROM smartcar_webhook_events \
                 WHERE received_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .bind::<Timestamp, _>(since)
            .load(c)?,
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(c) => diesel::sql_query(
                "SELECT strftime('%Y-%m-%d %H:00:00', received_at) AS hour, \
                   outcome, COUNT(*) AS n FROM smartcar_webhook_events \
                 WHERE received_at >= ? GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .bind::<Timestamp, _>(since)
            .load(c)?,
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let hour = NaiveDateTime::parse_from_str(&r.hour, "%Y-%m-%d %H:%M:%S").ok()?;
                Some(HourlyCount {
                    hour,
                    outcome: r.outcome,
                    count: r.n,
                })
            })
            .collect())
    }

    /// When the newest event arrived.
    pub fn newest_event_at(&self) -> Result<Option<NaiveDateTime>> {
        use diesel::dsl::max;
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .select(max(e::received_at))
            .first(&mut *conn)?)
    }
}
