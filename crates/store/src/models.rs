//! Rows as read and written, and the results the repositories return.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use meterhook_domain::{Decision, Distance};
use serde::Serialize;

use crate::schema::{
    meter_entries, smartcar_sync_logs, smartcar_vehicles, smartcar_webhook_events,
};
use crate::Outcome;

/// A registered Smartcar vehicle and the app vehicle it feeds.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_vehicles)]
pub struct Vehicle {
    /// Row id.
    pub id: i64,
    /// Smartcar's vehicle id.
    pub smartcar_vehicle_id: String,
    /// The app's vehicle id that meter entries are written for.
    pub vehicle_id: String,
    /// Whether events for it are processed.
    pub is_active: bool,
    /// The latest unresolved error Smartcar reported, if any.
    pub last_error: Option<String>,
    /// When that error was recorded.
    pub last_error_at: Option<NaiveDateTime>,
    /// When it was registered (UTC).
    pub created_at: NaiveDateTime,
    /// When it last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// An event to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = smartcar_webhook_events, treat_none_as_default_value = false)]
pub struct NewEvent<'a> {
    /// Smartcar's `eventId`, or `sha256:<hex>` of the raw body when it has none.
    pub event_id: &'a str,
    /// `VEHICLE_STATE`, `VEHICLE_ERROR`, `VERIFY`, or whatever type arrived.
    pub event_type: &'a str,
    /// The Smartcar vehicle it is about, when known.
    pub smartcar_vehicle_id: Option<&'a str>,
    /// The raw body as received.
    pub payload: &'a str,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether nothing more is to be done with it.
    pub processed: bool,
    /// When it was processed, if it was.
    pub processed_at: Option<NaiveDateTime>,
    /// Its outcome so far (`pending` until processed).
    pub outcome: &'a str,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// Processing attempts so far.
    pub attempts: i32,
    /// When processing may next be tried.
    pub next_attempt_at: Option<NaiveDateTime>,
}

impl<'a> NewEvent<'a> {
    /// A pending event received at `received_at`.
    pub fn pending(
        event_id: &'a str,
        event_type: &'a str,
        smartcar_vehicle_id: Option<&'a str>,
        payload: &'a str,
        received_at: NaiveDateTime,
    ) -> Self {
        NewEvent {
            event_id,
            event_type,
            smartcar_vehicle_id,
            payload,
            received_at,
            processed: false,
            processed_at: None,
            outcome: Outcome::Pending.as_str(),
            error: None,
            attempts: 0,
            next_attempt_at: None,
        }
    }
}

/// Whether recording an event stored it or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time seen: stored now.
    New,
    /// Seen before (a redelivery): nothing written.
    AlreadySeen,
}

/// A stored event, raw body included.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_webhook_events)]
pub struct EventRecord {
    /// Row id.
    pub id: i64,
    /// Smartcar's event id (or the body hash).
    pub event_id: String,
    /// The event type as received.
    pub event_type: String,
    /// The Smartcar vehicle, when known.
    pub smartcar_vehicle_id: Option<String>,
    /// The raw body.
    pub payload: String,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether processing is finished.
    pub processed: bool,
    /// When processing finished.
    pub processed_at: Option<NaiveDateTime>,
    /// The outcome (see [`Outcome`]).
    pub outcome: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Processing attempts.
    pub attempts: i32,
    /// When processing may next be tried.
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// A stored event without its body, for listings.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_webhook_events)]
pub struct EventSummary {
    /// Row id.
    pub id: i64,
    /// Smartcar's event id (or the body hash).
    pub event_id: String,
    /// The event type as received.
    pub event_type: String,
    /// The Smartcar vehicle, when known.
    pub smartcar_vehicle_id: Option<String>,
    /// When it arrived (UTC).
    pub received_at: NaiveDateTime,
    /// Whether processing is finished.
    pub processed: bool,
    /// When processing finished.
    pub processed_at: Option<NaiveDateTime>,
    /// The outcome (see [`Outcome`]).
    pub outcome: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Processing attempts.
    pub attempts: i32,
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
}

impl MeterEntry {
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
}

/// A sync log row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = smartcar_sync_logs)]
pub struct SyncLog {
    /// Row id.
    pub id: i64,
    /// `odometer`, `vehicle_error`, …
    pub sync_type: String,
    /// The Smartcar vehicle.
    pub smartcar_vehicle_id: Option<String>,
    /// The app's vehicle.
    pub vehicle_id: Option<String>,
    /// The webhook event.
    pub event_id: Option<String>,
    /// `success`, `skipped`, `rejected`, `failed`.
    pub status: String,
    /// The event's outcome.
    pub outcome: String,
    /// Details as JSON text (`meterEntryId` when an entry was made).
    pub data: String,
    /// When it was written (UTC).
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = smartcar_sync_logs, treat_none_as_default_value = false)]
pub(crate) struct NewSyncLog<'a> {
    pub sync_type: &'a str,
    pub smartcar_vehicle_id: Option<&'a str>,
    pub vehicle_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub status: &'a str,
    pub outcome: &'a str,
    pub data: &'a str,
    pub created_at: NaiveDateTime,
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
