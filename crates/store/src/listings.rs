//! Read-only look-ups for the operator's listings: events by outcome, vehicle and time, and the
//! entry a reading made. Nothing here writes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{meter_entries, smartcar_sync_logs, smartcar_webhook_events, vehicle_signals};
use meterhook_domain::Outcome;

use crate::{now, EventSummary, MeterEntry, Result, Store, MIN_RETENTION_DAYS};

/// Which events [`Store::list_events`] shows; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events with this outcome.
    pub outcome: Option<Outcome>,
    /// Only events of these Smartcar vehicles (an empty list matches none).
    pub smartcar_vehicle_ids: Option<Vec<String>>,
    /// Only events received at or after this time (UTC).
    pub since: Option<NaiveDateTime>,
}

impl Store {
    /// Events matching `filter`, newest first by the time they were received (then by id): an
    /// event drained from the outage spool late is listed when it arrived, not when it was moved.
    pub fn list_events(&self, filter: &EventFilter, limit: i64) -> Result<Vec<EventSummary>> {
        use smartcar_webhook_events::dsl as e;
        let mut conn = self.conn()?;
        let mut query = e::smartcar_webhook_events
            .order((e::received_at.desc(), e::id.desc()))
            .limit(limit.max(0))
            .select(EventSummary::as_select())
            .into_boxed();
        if let Some(outcome) = filter.outcome {
            query = query.filter(e::outcome.eq(outcome.as_str()));
        }
        if let Some(ids) = &filter.smartcar_vehicle_ids {
            query = query.filter(e::smartcar_vehicle_id.eq_any(ids));
        }
        if let Some(since) = filter.since {
            query = query.filter(e::received_at.ge(since));
        }
        Ok(query.load(&mut *conn)?)
    }

    /// The meter entry (active or void) that `event_id` made for app vehicle `vehicle_id` from a
    /// reading observed at `observed_at`, if any: read on the vehicle's by-date indexes (entries
    /// are not indexed by event).
    pub fn entry_for_reading(
        &self,
        vehicle_id: &str,
        event_id: &str,
        observed_at: NaiveDateTime,
    ) -> Result<Option<MeterEntry>> {
        use meter_entries::dsl as m;
        let mut conn = self.conn()?;
        Ok(m::meter_entries
            .filter(m::vehicle_id.eq(vehicle_id))
            .filter(m::entry_date.eq(observed_at))
            .filter(m::event_id.eq(event_id))
            .order(m::id.desc())
            .select(MeterEntry::as_select())
            .first(&mut *conn)
            .optional()?)
    }

    /// How many rows `prune_events_with(before, …)` would delete now (`prune --dry-run`); the
    /// same conditions, kept equal by the store tests.
    pub fn count_prunable_events(&self, before: NaiveDateTime) -> Result<i64> {
        use smartcar_webhook_events::dsl as e;
        let before = before.min(now() - chrono::TimeDelta::days(MIN_RETENTION_DAYS));
        let mut conn = self.conn()?;
        Ok(e::smartcar_webhook_events
            .filter(e::processed.eq(true))
            .filter(e::outcome.ne(Outcome::Dead.as_str()))
            .filter(e::received_at.lt(before))
            .count()
            .get_result(&mut *conn)?)
    }

    /// How many rows `prune_signals(before, …)` would delete now (`prune --dry-run`).
    pub fn count_prunable_signals(&self, before: NaiveDateTime) -> Result<i64> {
        use vehicle_signals::dsl as s;
        let mut conn = self.conn()?;
        Ok(s::vehicle_signals
            .filter(s::created_at.lt(before))
            .count()
            .get_result(&mut *conn)?)
    }

    /// How many rows `prune_sync_logs(before, …)` would delete now (`prune --dry-run`).
    pub fn count_prunable_sync_logs(&self, before: NaiveDateTime) -> Result<i64> {
        use smartcar_sync_logs::dsl as s;
        let mut conn = self.conn()?;
        Ok(s::smartcar_sync_logs
            .filter(s::created_at.lt(before))
            .count()
            .get_result(&mut *conn)?)
    }
}
