//! Deliveries written in one go: the only way an event is stored and processed.
//!
//! [`Tx::write_batch`] takes a batch of classified [`Delivery`]s (new ones, or stored ones
//! processed again) in three named phases, in a handful of statements whatever the batch's size:
//!
//! 1. **plan** ([`plan`], pure): which deliveries are new, and what each takes, given the
//!    vehicles they name (locked on PostgreSQL);
//! 2. **judge** ([`judge`]): the stored neighbours of each reading (point look-ups on indexes
//!    shaped for them), the domain's judgement in order, and where the batch ends;
//! 3. **write**: one insert per table, each in that table's module (events, signals, entries,
//!    sync logs), the vehicles' health, self-healing, then the changes an app follows, last.
//!
//! A batch of one is a delivery on its own: there is no other path. It fails with
//! [`StoreError::Conflict`] when another writer stored or processed one of its events
//! meanwhile; the caller rolls back (to a savepoint) and tries again, and the second run sees the
//! other writer's row.

mod judge;
mod plan;

use chrono::NaiveDateTime;
use meterhook_domain::{Decision, Keep, Outcome, Policy};

use self::judge::{judge_readings, Verdict};
use self::plan::{taken, vehicles_named, Plan, Step};
use crate::changes::{record_changes, ChangeType, NewChange};
use crate::db::DbConnection;
use crate::entries::{
    insert_entries, refusal_detail, timestamp, NewMeterEntry, SOURCE_SMARTCAR_WEBHOOK,
};
use crate::events::{load_seen, record_event, stored_outcome, write_processed, FinishedEvent};
use crate::events::{NewEvent, Recorded};
use crate::signals::{insert_signals, SignalInsert};
use crate::supersession::{settle, Refusal};
use crate::sync_logs::{insert_sync_logs, sync_data, NewSyncLog, SyncStatus};
use crate::vehicle_errors::{reconnected, record_errors};
use crate::vehicles::lock_vehicles;
use crate::{now, to_timestamp, Arrival, Delivery, Result, Tx, Work};

/// What [`Tx::write_batch`] did with one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Receipt {
    /// Its id was stored before (or earlier in the batch), or it is processed already: nothing
    /// done.
    AlreadyReceived,
    /// Stored now (or updated) and processed.
    Processed(Processed),
}

/// What processing a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// The outcome stored on the event.
    pub outcome: Outcome,
    /// The rules' decision, for odometer readings that reached them.
    pub decision: Option<Decision>,
    /// The active meter entry written, if any.
    pub entry_id: Option<i64>,
    /// The app vehicle, for a reading or an error report of a registered, active vehicle.
    pub vehicle_id: Option<String>,
}

impl Tx<'_> {
    /// Stores and processes `deliveries` (see the module's docs). Returns one receipt per
    /// delivery, in order. On an error nothing of the batch may be kept: the caller rolls back.
    pub fn write_batch(
        &mut self,
        deliveries: &[Delivery],
        policy: &Policy,
    ) -> Result<Vec<Receipt>> {
        let mut receipts = Vec::with_capacity(deliveries.len());
        // A refused reading that completes a supersession ends a part: the rest is written after
        // it, as one delivery at a time would be, so any split of the same deliveries into
        // batches leaves the same rows. Each part holds at least one delivery.
        while receipts.len() < deliveries.len() {
            receipts.extend(write_part(
                self.conn,
                &deliveries[receipts.len()..],
                policy,
            )?);
        }
        Ok(receipts)
    }

    /// Records that processing `delivery` failed on its own: a received one is stored pending
    /// (so it is never lost), a stored one keeps its row; either way the attempt is counted, the
    /// error kept, and the next try set at `retry_at`; after `max_attempts` it ends as `dead`.
    pub fn record_failure(
        &mut self,
        delivery: &Delivery,
        error: &str,
        retry_at: NaiveDateTime,
        max_attempts: i32,
    ) -> Result<Outcome> {
        if let Some((payload, received_at)) = delivery.received() {
            let new = NewEvent::pending(
                &delivery.event_id,
                &delivery.event_type,
                delivery.smartcar_vehicle_id.as_deref(),
                payload,
                received_at,
            );
            if record_event(self.conn, &new)? == Recorded::AlreadyReceived {
                return stored_outcome(self.conn, &delivery.event_id);
            }
        }
        self.record_processing_failure(&delivery.event_id, error, retry_at, max_attempts)
    }
}

/// Writes the deliveries up to the end of the first part (see [`Tx::write_batch`]): plan,
/// judge, write. At least the first delivery.
fn write_part(
    conn: &mut DbConnection,
    deliveries: &[Delivery],
    policy: &Policy,
) -> Result<Vec<Receipt>> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    let taken = taken(deliveries, &load_seen(conn, &ids)?);
    let vehicles = lock_vehicles(conn, &vehicles_named(deliveries, &taken))?;
    let mut plan = Plan::new(deliveries, &taken, &vehicles);
    let verdict = judge_readings(conn, &mut plan, deliveries.len(), policy)?;
    let plan = plan.until(verdict.end);
    let entries = write(conn, &plan, &verdict, policy)?;
    let mut receipts = vec![Receipt::AlreadyReceived; verdict.end];
    for step in &plan.steps {
        let entry = entries
            .iter()
            .find(|e| e.event_id == step.delivery.event_id);
        receipts[step.index] = Receipt::Processed(processed(step, entry));
    }
    Ok(receipts)
}

/// An entry the batch wrote: its row id and event.
struct Written {
    id: i64,
    event_id: String,
    active: bool,
}

/// The write phase: each table's rows in one insert, the vehicles' health, self-healing, and
/// last the changes (their positions are taken last, so that the lock that orders them is held
/// for the shortest time: `crate::changes`).
fn write(
    conn: &mut DbConnection,
    plan: &Plan<'_>,
    verdict: &Verdict<'_>,
    policy: &Policy,
) -> Result<Vec<Written>> {
    let at = now();
    let mut changes = health(conn, plan, at)?;
    let (received, stored) = event_rows(plan, at);
    write_processed(conn, &received, &stored)?;
    insert_signals(conn, &signal_rows(plan, at))?;
    let notes: Vec<String> = plan
        .steps
        .iter()
        .map(|s| format!("Smartcar webhook event {}", s.delivery.event_id))
        .collect();
    let entries = insert_entries(conn, &entry_rows(plan, verdict, &notes, at)?)?;
    let smartcar_id = |entry: &crate::MeterEntry| {
        plan.steps
            .iter()
            .find(|s| entry.event_id.as_deref() == Some(s.delivery.event_id.as_str()))
            .and_then(|s| s.delivery.smartcar_vehicle_id.as_deref())
    };
    changes.extend(
        entries
            .iter()
            .map(|e| NewChange::entry(ChangeType::MeterEntryCreated, e, smartcar_id(e), at)),
    );
    let refusals: Vec<Refusal<'_>> = plan
        .steps
        .iter()
        .filter_map(|step| {
            let by = step.reading.as_ref()?.judgement.as_ref()?.refused_by()?;
            let entry = entries
                .iter()
                .find(|e| e.event_id.as_deref() == Some(step.delivery.event_id.as_str()))?;
            Some(Refusal {
                vehicle_id: &step.active_vehicle()?.vehicle_id,
                entry_id: entry.id,
                refused_by: by,
                event_id: &step.delivery.event_id,
                smartcar_vehicle_id: step.delivery.smartcar_vehicle_id.as_deref(),
            })
        })
        .collect();
    changes.extend(settle(
        conn,
        &refusals,
        &verdict.refusers,
        verdict.completes,
        policy,
        at,
    )?);
    let logs = sync_rows(plan, &entries, at);
    insert_sync_logs(conn, &logs.iter().map(SyncRow::row).collect::<Vec<_>>())?;
    record_changes(conn, &changes)?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            Some(Written {
                id: e.id,
                active: !e.void,
                event_id: e.event_id?,
            })
        })
        .collect())
}

/// The vehicles' health: the error reports of the batch, and vehicles that needed their owner
/// answering again (a live state with data clears that).
fn health(conn: &mut DbConnection, plan: &Plan<'_>, at: NaiveDateTime) -> Result<Vec<NewChange>> {
    let mut changes = Vec::new();
    for step in &plan.steps {
        let Some(vehicle) = step.active_vehicle() else {
            continue;
        };
        let event_id = step.delivery.event_id.as_str();
        if let Some(reports) = step.errors {
            changes.extend(record_errors(conn, event_id, vehicle, reports, at)?);
        }
        let answers = match &step.delivery.work {
            Work::State {
                signals,
                odometer,
                test: false,
            } => !signals.is_empty() || matches!(odometer, crate::Odometer::Reading { .. }),
            _ => false,
        };
        if answers && vehicle.needs_reconnection {
            changes.extend(reconnected(conn, event_id, vehicle, at)?);
        }
    }
    Ok(changes)
}

/// The events' rows: received ones to insert with their outcome, stored ones to mark processed.
fn event_rows<'a>(
    plan: &'a Plan<'_>,
    at: NaiveDateTime,
) -> (Vec<NewEvent<'a>>, Vec<FinishedEvent<'a>>) {
    let mut received = Vec::new();
    let mut stored = Vec::new();
    for step in &plan.steps {
        let d = step.delivery;
        match &d.arrival {
            Arrival::Received {
                payload,
                received_at,
            } => received.push(NewEvent {
                processed: true,
                processed_at: Some(at),
                outcome: step.outcome.as_str(),
                error: step.error.as_deref(),
                // Processed on its first attempt.
                attempts: 1,
                ..NewEvent::pending(
                    &d.event_id,
                    &d.event_type,
                    d.smartcar_vehicle_id.as_deref(),
                    payload,
                    *received_at,
                )
            }),
            Arrival::Stored { .. } => stored.push(FinishedEvent {
                event_id: &d.event_id,
                outcome: step.outcome,
                error: step.error.as_deref(),
                at,
            }),
        }
    }
    (received, stored)
}

/// Every signal value of the states whose signals are kept; one per (vehicle, code, time).
fn signal_rows<'a>(plan: &'a Plan<'_>, at: NaiveDateTime) -> Vec<SignalInsert<'a>> {
    let mut rows = Vec::new();
    for step in plan.steps.iter().filter(|s| s.keeps_signals) {
        let d = step.delivery;
        let (Work::State { signals, test, .. }, Some(vehicle)) =
            (&d.work, d.smartcar_vehicle_id.as_deref())
        else {
            continue;
        };
        for s in signals {
            let Some(observed_at) = to_timestamp(s.observed_at) else {
                continue;
            };
            rows.push(SignalInsert {
                smartcar_vehicle_id: vehicle,
                code: s.code.as_str(),
                value: s.value.filter(|v| v.is_finite()),
                unit: s.unit.as_deref(),
                raw: s.raw.as_str(),
                observed_at,
                event_id: &d.event_id,
                created_at: at,
                test: *test,
            });
        }
    }
    rows
}

/// The meter entries: accepted readings, and refused ones kept void with the reason. A
/// refused reading remembers the stored entry that refused it (one accepted earlier in the
/// batch is linked once it is written, by `settle`).
fn entry_rows<'a>(
    plan: &'a Plan<'_>,
    verdict: &Verdict<'_>,
    notes: &'a [String],
    at: NaiveDateTime,
) -> Result<Vec<NewMeterEntry<'a>>> {
    let mut rows = Vec::new();
    for (step, note) in plan.steps.iter().zip(notes) {
        let (Some(judged), Some(vehicle)) = (&step.reading, step.active_vehicle()) else {
            continue;
        };
        let Some(judgement) = &judged.judgement else {
            continue;
        };
        let (void, void_reason) = match &judgement.keep {
            Keep::Active => (false, None),
            Keep::Void { reason } => (true, Some(reason.as_str())),
            Keep::Nothing => continue,
        };
        let void_detail = void.then(|| refusal_detail(&judgement.decision));
        let refused_by = judgement
            .refused_by()
            .and_then(|by| verdict.refusers.stored(&vehicle.vehicle_id, by));
        rows.push(NewMeterEntry {
            vehicle_id: &vehicle.vehicle_id,
            value_m: judged.reading.distance.metres(),
            entry_date: timestamp(judged.reading)?,
            source_type: SOURCE_SMARTCAR_WEBHOOK,
            notes: Some(note),
            event_id: Some(&step.delivery.event_id),
            void,
            void_reason,
            created_at: at,
            refused_by,
            updated_at: at,
            void_detail,
        });
    }
    Ok(rows)
}

/// A step's sync log, its data owned.
struct SyncRow<'a> {
    step: &'a Step<'a>,
    sync_type: &'static str,
    data: String,
    at: NaiveDateTime,
}

impl SyncRow<'_> {
    fn row(&self) -> NewSyncLog<'_> {
        let d = self.step.delivery;
        NewSyncLog {
            sync_type: self.sync_type,
            smartcar_vehicle_id: d.smartcar_vehicle_id.as_deref(),
            vehicle_id: acting_vehicle(self.step),
            event_id: Some(&d.event_id),
            status: SyncStatus::for_outcome(self.step.outcome).as_str(),
            outcome: self.step.outcome.as_str(),
            data: &self.data,
            created_at: self.at,
        }
    }
}

/// The sync logs: a judged reading's says what the rules decided; the others are planned.
fn sync_rows<'a>(
    plan: &'a Plan<'a>,
    entries: &[crate::MeterEntry],
    at: NaiveDateTime,
) -> Vec<SyncRow<'a>> {
    plan.steps
        .iter()
        .filter_map(|step| {
            let (sync_type, data) = match (&step.reading, &step.sync) {
                (Some(judged), _) => {
                    let judgement = judged.judgement.as_ref()?;
                    let entry = entries
                        .iter()
                        .find(|e| e.event_id.as_deref() == Some(step.delivery.event_id.as_str()))
                        .map(|e| e.id);
                    let data = sync_data(
                        &judgement.decision,
                        judged.reading,
                        judged.correction,
                        entry,
                    );
                    ("odometer", data.to_string())
                }
                (None, Some(note)) => (note.sync_type, note.data.clone()),
                (None, None) => return None,
            };
            Some(SyncRow {
                step,
                sync_type,
                data,
                at,
            })
        })
        .collect()
}

/// The app vehicle a step acts on: an active vehicle's, for a reading or an error report.
fn acting_vehicle<'a>(step: &Step<'a>) -> Option<&'a str> {
    (step.reading.is_some() || step.errors.is_some())
        .then(|| step.active_vehicle())
        .flatten()
        .map(|v| v.vehicle_id.as_str())
}

/// A step's receipt; `entry` the entry it wrote, if any.
fn processed(step: &Step<'_>, entry: Option<&Written>) -> Processed {
    let decision = step
        .reading
        .as_ref()
        .and_then(|j| j.judgement.as_ref())
        .map(|j| j.decision.clone());
    Processed {
        outcome: step.outcome,
        entry_id: entry.filter(|e| e.active).map(|e| e.id),
        decision,
        vehicle_id: acting_vehicle(step).map(str::to_owned),
    }
}
