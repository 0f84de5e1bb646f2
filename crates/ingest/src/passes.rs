//! Background passes beside the writers: retrying failed processing, draining the spool into the
//! main database, pruning old events. Each pass is short and bounded and goes through the same
//! [`Pipeline`] as every delivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Delivery, Ingested, Pipeline};

/// Events handled per pass.
const BATCH: i64 = 200;
/// A never-tried pending event older than this had its first processing interrupted.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// How often each pass runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Retry pass interval.
    pub retry_every: Duration,
    /// Spool drain interval.
    pub drain_every: Duration,
    /// Pruning: what is kept how long, and how often the pass runs.
    pub prune: Option<(Retention, Duration)>,
}

/// How long each kind of row is kept; `None` keeps it for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Processed events (never unprocessed or `dead` ones, never younger than seven days).
    pub events: Option<Duration>,
    /// Signal values.
    pub signals: Option<Duration>,
    /// Sync logs.
    pub sync_logs: Option<Duration>,
}

/// The running background tasks.
pub(crate) struct Passes {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Passes {
    /// Starts the passes on the current Tokio runtime.
    pub(crate) fn start(pipeline: &Pipeline, schedule: &Schedule) -> Passes {
        let (stop, stopped) = watch::channel(false);
        let pipeline = Arc::new(pipeline.clone());
        let mut tasks = vec![every(schedule.retry_every, stopped.clone(), {
            let pipeline = pipeline.clone();
            move || {
                retry_pass(&pipeline);
            }
        })];
        if pipeline.spool().is_some() {
            let migrated = Arc::new(AtomicBool::new(false));
            tasks.push(every(schedule.drain_every, stopped.clone(), {
                let pipeline = pipeline.clone();
                move || {
                    drain_pass(&pipeline, &migrated);
                }
            }));
        }
        if let Some((retention, interval)) = schedule.prune {
            tasks.push(every(interval, stopped, {
                let pipeline = pipeline.clone();
                move || {
                    prune_pass(&pipeline, &retention);
                }
            }));
        }
        Passes { stop, tasks }
    }

    /// Asks every task to stop after its current pass, and waits for them.
    pub(crate) async fn stop(self) {
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

/// Processes events whose processing failed and is due again, or was interrupted. Returns how
/// many were due.
pub fn retry_pass(pipeline: &Pipeline) -> usize {
    let now = meterhook_store::now();
    let stale = now - chrono::TimeDelta::from_std(STALE_AFTER).unwrap_or_default();
    let due = match pipeline.store().due_events(now, stale, BATCH) {
        Ok(due) => due,
        Err(e) => {
            warn!("retry pass: cannot read due events: {e}");
            return 0;
        }
    };
    let batch: Vec<Delivery> = due
        .iter()
        .map(|r| crate::classify::stored(r, pipeline.intake()))
        .collect();
    match pipeline.commit_to_store(&batch) {
        Ok(answers) => {
            for (record, answer) in due.iter().zip(answers) {
                if let Ok(Ingested::Stored(outcome)) = answer {
                    info!(
                        "Webhook event {} (retry {}): {outcome}",
                        record.event_id.escape_debug(),
                        record.attempts + 1
                    );
                }
            }
        }
        Err(e) => warn!("retry pass: database unavailable ({e}); trying again later"),
    }
    due.len()
}

/// Moves spooled events into the main database, each processed once; stops at the first failure
/// (the database is still away) and tries again next time. Returns how many were moved.
pub fn drain_pass(pipeline: &Pipeline, migrated: &AtomicBool) -> usize {
    let Some(spool) = pipeline.spool() else {
        return 0;
    };
    if !migrated.load(Ordering::Relaxed) {
        // meterhook may have started while the database was away: migrate as soon as it answers.
        match pipeline.store().migrate() {
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
        Ok(events) if events.is_empty() => {
            pipeline.watch_spool_level(0);
            return 0;
        }
        Ok(events) => events,
        Err(e) => {
            error!("spool: cannot read: {e}");
            return 0;
        }
    };
    let batch: Vec<Delivery> = spooled
        .iter()
        .map(|r| crate::classify::unspooled(r, pipeline.intake()))
        .collect();
    if let Err(e) = pipeline.commit_to_store(&batch) {
        warn!(
            "spool: database still unavailable ({e}); {} events wait",
            spooled.len()
        );
        return 0;
    }
    info!("spool: {} events moved to the main database", spooled.len());
    // Only now is it safe to forget them locally: they are committed in the main database.
    let mut moved = 0;
    for record in &spooled {
        if let Err(e) = spool.delete_event(&record.event_id) {
            error!(
                "spool: cannot remove drained event {}: {e}",
                record.event_id.escape_debug()
            );
            return moved;
        }
        moved += 1;
    }
    if let Ok(left) = spool.unprocessed_count() {
        pipeline.watch_spool_level(left);
    }
    moved
}

/// Deletes what is older than its retention window; returns how many rows went.
pub fn prune_pass(pipeline: &Pipeline, retention: &Retention) -> u64 {
    let store = pipeline.store();
    let cut = |window: Duration| {
        // A window too long to represent keeps everything.
        chrono::TimeDelta::from_std(window)
            .ok()
            .and_then(|w| meterhook_store::now().checked_sub_signed(w))
    };
    let mut pruned = 0;
    let mut report =
        |what: &str, before, result: Result<u64, meterhook_store::StoreError>| match result {
            Ok(0) => {}
            Ok(n) => {
                info!("pruned {n} {what} older than {before}");
                pruned += n;
            }
            Err(e) => warn!("prune {what}: {e}"),
        };
    if let Some(before) = retention.events.and_then(cut) {
        report("processed events", before, store.prune_events(before, 500));
    }
    if let Some(before) = retention.signals.and_then(cut) {
        report(
            "signal values",
            before,
            store.prune_signals(before, 500, |_| {}),
        );
    }
    if let Some(before) = retention.sync_logs.and_then(cut) {
        report(
            "sync logs",
            before,
            store.prune_sync_logs(before, 500, |_| {}),
        );
    }
    pruned
}
