//! Background work beside the HTTP server: retrying failed processing, draining the spool into
//! the main database, and pruning old events. Each pass is short and bounded; on shutdown the
//! current pass finishes and no new one starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use meterhook_store::{NewEvent, Recorded};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::processor;
use crate::state::Ingestor;

/// Events handled per pass.
const BATCH: i64 = 200;
/// A never-tried pending event older than this had its first processing interrupted.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The running background tasks.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How often each pass runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Retry pass interval.
    pub retry_every: Duration,
    /// Spool drain interval.
    pub drain_every: Duration,
    /// Pruning: (retention window, interval), when configured.
    pub prune: Option<(Duration, Duration)>,
}

impl Background {
    /// Starts the passes on the current Tokio runtime.
    pub fn start(state: Ingestor, schedule: Schedule) -> Background {
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(state);
        let mut tasks = vec![every(schedule.retry_every, stopped.clone(), {
            let state = state.clone();
            move || {
                retry_pass(&state);
            }
        })];
        if state.spool.is_some() {
            let migrated = Arc::new(AtomicBool::new(false));
            tasks.push(every(schedule.drain_every, stopped.clone(), {
                let state = state.clone();
                move || {
                    drain_pass(&state, &migrated);
                }
            }));
        }
        if let Some((window, interval)) = schedule.prune {
            tasks.push(every(interval, stopped, {
                let state = state.clone();
                move || {
                    prune_pass(&state, window);
                }
            }));
        }
        Background { stop, tasks }
    }

    /// Asks every task to stop after its current pass, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Runs `pass` on a blocking thread every `interval` until told to stop.
fn every<F>(interval: Duration, mut stopped: watch::Receiver<bool>, pass: F) -> JoinHandle<()>
where
    F: Fn() + Send + Sync + 'static,
{
    let pass = Arc::new(pass);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.changed() => break,
            }
            let pass = pass.clone();
            if tokio::task::spawn_blocking(move || pass()).await.is_err() {
                error!("a background pass panicked; it runs again at the next interval");
            }
            if *stopped.borrow() {
                break;
            }
        }
    })
}

/// Processes events whose processing failed and is due again, or was interrupted.
pub fn retry_pass(state: &Ingestor) -> usize {
    let now = meterhook_store::now();
    let stale = now - chrono::TimeDelta::from_std(STALE_AFTER).unwrap_or_default();
    let due = match state.store.due_events(now, stale, BATCH) {
        Ok(due) => due,
        Err(e) => {
            warn!("retry pass: cannot read due events: {e}");
            return 0;
        }
    };
    for record in &due {
        match processor::process_stored(&state.store, record, &state.policy, &state.retry) {
            Ok(outcome) => info!(
                "Webhook event {} (retry {}): {outcome}",
                record.event_id,
                record.attempts + 1
            ),
            Err(e) => {
                warn!("retry pass: database unavailable ({e}); trying again later");
                break;
            }
        }
    }
    due.len()
}

/// Moves spooled events into the main database, processing each once; stops at the first
/// failure (the database is still away) and tries again next time.
pub fn drain_pass(state: &Ingestor, migrated: &AtomicBool) -> usize {
    let Some(spool) = &state.spool else { return 0 };
    if !migrated.load(Ordering::Relaxed) {
        // meterhook may have started while the database was away: migrate as soon as it answers.
        match state.store.migrate() {
            Ok(n) => {
                if n > 0 {
                    info!("applied {n} database migrations");
                }
                migrated.store(true, Ordering::Relaxed);
            }
            Err(_) => return 0,
        }
    }
    let spooled = match spool.events_after(0, BATCH) {
        Ok(events) if events.is_empty() => return 0,
        Ok(events) => events,
        Err(e) => {
            error!("spool: cannot read: {e}");
            return 0;
        }
    };
    let mut moved = 0;
    for record in &spooled {
        let new = NewEvent::pending(
            &record.event_id,
            &record.event_type,
            record.smartcar_vehicle_id.as_deref(),
            &record.payload,
            record.received_at,
        );
        let moved_in = state.store.write(|tx| match tx.record_event(&new)? {
            Recorded::New => {
                processor::process_or_schedule(tx, &record.event_id, &state.retry, 0, |tx| {
                    processor::process_record(tx, record, &state.policy)
                })
                .map(|r| Some(r.outcome))
            }
            Recorded::AlreadySeen => Ok(None),
        });
        if moved_in.is_ok() {
            state.outage.clear();
        }
        match moved_in {
            Ok(Some(outcome)) => info!(
                "Webhook event {} (from the spool): {outcome}",
                record.event_id
            ),
            Ok(None) => info!(
                "Webhook event {} (from the spool): already received",
                record.event_id
            ),
            Err(e) => {
                warn!(
                    "spool: database still unavailable ({e}); {} events wait",
                    spooled.len() - moved
                );
                return moved;
            }
        }
        // Only now is it safe to forget it locally: it is committed in the main database.
        if let Err(e) = spool.delete_event(&record.event_id) {
            error!(
                "spool: cannot remove drained event {}: {e}",
                record.event_id
            );
            return moved;
        }
        moved += 1;
    }
    moved
}

/// Deletes processed events older than the retention window.
pub fn prune_pass(state: &Ingestor, window: Duration) -> u64 {
    let before = meterhook_store::now() - chrono::TimeDelta::from_std(window).unwrap_or_default();
    match state.store.prune_events(before, 500) {
        Ok(0) => 0,
        Ok(n) => {
            info!("pruned {n} processed events received before {before}");
            n
        }
        Err(e) => {
            warn!("prune: {e}");
            0
        }
    }
}
