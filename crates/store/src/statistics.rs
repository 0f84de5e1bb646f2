//! Monitoring figures: the seed's stats over a window, the backlog gauges, the newest arrival.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use serde::Serialize;

use crate::outcome::{Outcome, SyncStatus};
use crate::schema::{smartcar_sync_logs, smartcar_webhook_events};
use crate::{Result, Store};

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

    /// Unprocessed and dead events, for the backlog gauges.
    pub fn backlog(&self) -> Result<(i64, i64)> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        let unprocessed = e::smartcar_webhook_events
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "processed = FALSE",
            ))
            .count()
            .get_result(&mut *conn)?;
        let dead = e::smartcar_webhook_events
            // A literal, so that the planners count the partial dead index.
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "outcome = 'dead'",
            ))
            .count()
            .get_result(&mut *conn)?;
        Ok((unprocessed, dead))
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
