//! The pipeline: a batch of deliveries committed in one transaction (group commit), a failing
//! batch isolated by splitting it, the outage spool when the database is away.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use meterhook_domain::Outcome;
use meterhook_domain::Policy;
use meterhook_store::{Processed, Receipt, Reprocess, Store, StoreError, Tx};

use crate::classify::{self, spooled_row};
use crate::{Delivery, IngestError, Ingested, Intake};

/// How failed processing is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before an event ends as `dead` (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one, capped at an hour.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failure (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(Duration::from_secs(3600))
    }
}

impl Default for RetryPolicy {
    /// 8 attempts, 5 s first backoff: the retries come about 5 s to 5 min apart, and an event
    /// is `dead` after some 10 minutes of failures.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            backoff: Duration::from_secs(5),
        }
    }
}

/// Remembers a database outage for a short while (a circuit breaker), so that deliveries go
/// straight to the spool instead of each waiting for a connection timeout.
#[derive(Debug, Default)]
pub(crate) struct OutageGate {
    until_ms: AtomicI64,
}

impl OutageGate {
    /// How long an outage is presumed after a failure before the database is tried again.
    const HOLD_MS: i64 = 2_000;

    pub(crate) fn active(&self) -> bool {
        self.until_ms.load(Ordering::Relaxed) > chrono::Utc::now().timestamp_millis()
    }

    pub(crate) fn trip(&self) {
        self.until_ms.store(
            chrono::Utc::now().timestamp_millis() + Self::HOLD_MS,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn clear(&self) {
        self.until_ms.store(0, Ordering::Relaxed);
    }
}

/// The blocking core every delivery goes through: the writers, the retry pass, the spool drain
/// and reprocessing all call [`Pipeline::commit`] (or, for the spool drain, its main-database
/// half). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    spool: Option<Store>,
    spool_limit: u64,
    /// Set while the spool is at or above [`SPOOL_ALARM_PERCENT`] of its limit, so that crossing
    /// is logged once each way, not once per batch.
    spool_near_full: Arc<AtomicBool>,
    policy: Policy,
    intake: Intake,
    retry: RetryPolicy,
    outage: Arc<OutageGate>,
}

/// The share of the spool's limit at which a warning is logged.
pub const SPOOL_ALARM_PERCENT: u64 = 80;

/// One answer per delivery.
pub type Answers = Vec<Result<Ingested, IngestError>>;

/// How one try of a batch went (the database being away is an error instead: it ends the
/// transaction).
enum Attempt {
    /// Written: a receipt for each delivery of the batch.
    Written(Vec<Receipt>),
    /// Failed for a reason of its own deliveries; nothing of it was kept.
    Failed(StoreError),
}

impl Pipeline {
    /// A pipeline on `store`, with an outage `spool` (a local SQLite store) when the store is
    /// PostgreSQL.
    pub fn new(
        store: Store,
        spool: Option<Store>,
        policy: Policy,
        intake: Intake,
        retry: RetryPolicy,
    ) -> Self {
        Pipeline {
            store,
            spool,
            spool_limit: u64::MAX,
            spool_near_full: Arc::default(),
            policy,
            intake,
            retry,
            outage: Arc::default(),
        }
    }

    /// How deliveries are classified, for those the pipeline takes up itself (retries,
    /// reprocessing, the spool drain).
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// The same pipeline with its spool holding at most `events` (unbounded without this).
    pub fn with_spool_limit(mut self, events: u64) -> Self {
        self.spool_limit = events.max(1);
        self
    }

    /// The main store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The outage spool, when there is one.
    pub fn spool(&self) -> Option<&Store> {
        self.spool.as_ref()
    }

    /// Commits `batch` in one transaction; one answer per delivery, in order. An `Ok` means the
    /// delivery is durable (committed, or kept in the spool). Blocking.
    pub fn commit(&self, batch: &[Delivery]) -> Answers {
        if batch.is_empty() {
            return Vec::new();
        }
        if self.spool.is_some() && self.outage.active() {
            return self.spool_or_refuse(batch, "database presumed unavailable");
        }
        match self.commit_to_store(batch) {
            Ok(answers) => answers,
            Err(e) if e.is_transient() => {
                self.outage.trip();
                self.spool_or_refuse(batch, &e.to_string())
            }
            Err(e) => {
                error!(
                    "a batch of {} deliveries could not be committed: {e}",
                    batch.len()
                );
                batch
                    .iter()
                    .map(|_| Err(IngestError::Failed(e.to_string())))
                    .collect()
            }
        }
    }

    /// Commits `batch` to the main database only; an error means nothing was committed.
    pub(crate) fn commit_to_store(&self, batch: &[Delivery]) -> Result<Answers, StoreError> {
        let receipts = self.store.write(|tx| self.write_isolated(tx, batch))?;
        self.outage.clear();
        Ok(receipts
            .into_iter()
            .zip(batch)
            .map(|(receipt, d)| {
                let receipt = receipt.map_err(|e| {
                    error!(
                        "Webhook event {}: could not be stored: {e}",
                        d.event_id.escape_debug()
                    );
                    IngestError::from_store(e)
                })?;
                Ok(match receipt {
                    Receipt::AlreadyReceived => {
                        info!(
                            "Webhook event {} ({}): already received; not processed again",
                            d.event_id.escape_debug(),
                            d.event_type.escape_debug()
                        );
                        Ingested::AlreadyReceived
                    }
                    Receipt::Processed(processed) => {
                        log_processed(d, &processed);
                        Ingested::Stored(processed.outcome)
                    }
                })
            })
            .collect())
    }

    /// Writes `batch` in a savepoint; when it fails for a reason other than the database being
    /// away, each half is written on its own, down to single deliveries: the one place a batch
    /// is split. A delivery that fails alone is stored (never lost) and scheduled for a retry,
    /// or `dead` after the last attempt.
    fn write_isolated(
        &self,
        tx: &mut Tx<'_>,
        batch: &[Delivery],
    ) -> Result<Vec<Result<Receipt, StoreError>>, StoreError> {
        let error = match self.attempt(tx, batch)? {
            Attempt::Written(receipts) => return Ok(receipts.into_iter().map(Ok).collect()),
            Attempt::Failed(error) => error,
        };
        if let [d] = batch {
            // Another writer stored or processed it meanwhile: once more sees its row.
            let error = match error {
                StoreError::Conflict(_) => match self.attempt(tx, batch)? {
                    Attempt::Written(receipts) => {
                        return Ok(receipts.into_iter().map(Ok).collect())
                    }
                    Attempt::Failed(error) => error,
                },
                other => other,
            };
            return Ok(vec![self.fail_alone(tx, d, error)?]);
        }
        log::debug!(
            "a batch of {} failed ({error}); split in halves",
            batch.len()
        );
        let (first, second) = batch.split_at(batch.len() / 2);
        let mut receipts = self.write_isolated(tx, first)?;
        receipts.extend(self.write_isolated(tx, second)?);
        Ok(receipts)
    }

    /// One try of `batch` in a savepoint. An error means the database is away: the whole
    /// transaction is lost.
    fn attempt(&self, tx: &mut Tx<'_>, batch: &[Delivery]) -> Result<Attempt, StoreError> {
        match tx.savepoint(|tx| tx.write_batch(batch, &self.policy)) {
            Ok(written) => Ok(Attempt::Written(written)),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => Ok(Attempt::Failed(e)),
        }
    }

    /// Records that `d` failed alone with `error`: stored pending with a retry, or `dead`.
    fn fail_alone(
        &self,
        tx: &mut Tx<'_>,
        d: &Delivery,
        error: StoreError,
    ) -> Result<Result<Receipt, StoreError>, StoreError> {
        let message = error.to_string();
        let attempt = d.attempts().saturating_add(1);
        let delay = self.retry.delay(attempt);
        let retry_at = meterhook_store::now()
            + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
        let max = i32::try_from(self.retry.max_attempts).unwrap_or(i32::MAX);
        let outcome = match tx.savepoint(|tx| tx.record_failure(d, &message, retry_at, max)) {
            Ok(outcome) => outcome,
            Err(e) if e.is_transient() => return Err(e),
            // Not even its failure can be stored: this delivery alone is refused (Smartcar
            // delivers it again), the rest of the batch goes on.
            Err(e) => return Ok(Err(e)),
        };
        if outcome == Outcome::Dead {
            error!(
                "Webhook event {}: processing failed for the last time ({message}); outcome dead",
                d.event_id.escape_debug()
            );
        } else {
            warn!(
                "Webhook event {}: processing failed ({message}); retrying in {}s",
                d.event_id.escape_debug(),
                delay.as_secs()
            );
        }
        Ok(Ok(Receipt::Processed(Processed {
            outcome,
            decision: None,
            entry_id: None,
            vehicle_id: None,
        })))
    }

    /// Keeps deliveries in the local spool, in one transaction, up to its limit; unavailable when
    /// there is no spool or it fails too, [`IngestError::SpoolFull`] for what does not fit.
    fn spool_or_refuse(&self, batch: &[Delivery], cause: &str) -> Answers {
        let refuse = || {
            batch
                .iter()
                .map(|_| Err(IngestError::Unavailable))
                .collect()
        };
        let Some(spool) = &self.spool else {
            warn!(
                "{} deliveries refused: database unavailable ({cause})",
                batch.len()
            );
            return refuse();
        };
        let limit = i64::try_from(self.spool_limit).unwrap_or(i64::MAX);
        let spooled = spool.write(|tx| {
            // Counted inside the write transaction: SQLite's writes are serial, so the count
            // cannot change before this commit.
            let held = tx.event_count()?;
            let room = usize::try_from(limit.saturating_sub(held).max(0)).unwrap_or(usize::MAX);
            for row in batch.iter().take(room).filter_map(spooled_row) {
                tx.record_event(&row)?;
            }
            Ok((held, room.min(batch.len())))
        });
        match spooled {
            Ok((held, kept)) => {
                for d in &batch[..kept] {
                    warn!(
                        "Webhook event {}: database unavailable ({cause}); kept in the local spool",
                        d.event_id.escape_debug()
                    );
                }
                if kept < batch.len() {
                    error!(
                        "{} deliveries refused (503): the database is unavailable ({cause}) and the spool is full ({limit} events, METERHOOK_SPOOL_MAX_EVENTS)",
                        batch.len() - kept
                    );
                }
                self.watch_spool_level(held.saturating_add(kept as i64));
                batch
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        if i < kept {
                            Ok(Ingested::Spooled)
                        } else {
                            Err(IngestError::SpoolFull)
                        }
                    })
                    .collect()
            }
            Err(e) => {
                error!("{} deliveries refused: database unavailable ({cause}) and the spool failed too ({e})", batch.len());
                refuse()
            }
        }
    }

    /// Logs when the spool's level crosses the alarm share of its limit, once each way.
    pub(crate) fn watch_spool_level(&self, held: i64) {
        let limit = self.spool_limit;
        let near = u64::try_from(held).unwrap_or(0).saturating_mul(100)
            >= limit.saturating_mul(SPOOL_ALARM_PERCENT);
        if near && !self.spool_near_full.swap(true, Ordering::Relaxed) {
            warn!(
                "spool: {held} of {limit} events held ({SPOOL_ALARM_PERCENT}% or more of METERHOOK_SPOOL_MAX_EVENTS); once full, deliveries are answered 503 until the database is back"
            );
        } else if !near && self.spool_near_full.swap(false, Ordering::Relaxed) {
            info!(
                "spool: back under {SPOOL_ALARM_PERCENT}% of its limit ({held} of {limit} events)"
            );
        }
    }

    /// Resets the chosen events and processes them again through the pipeline; returns (event
    /// id, outcome) for each. Blocking.
    pub fn reprocess(&self, which: Reprocess<'_>) -> Result<Vec<(String, Outcome)>, IngestError> {
        self.reprocess_with(which, |_, _| {})
    }

    /// [`Pipeline::reprocess`], calling `progress(done, total)` after each batch it commits.
    pub fn reprocess_with(
        &self,
        which: Reprocess<'_>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<(String, Outcome)>, IngestError> {
        let records = self
            .store
            .reset_for_reprocess(which)
            .map_err(IngestError::from_store)?;
        progress(0, records.len());
        let mut outcomes = Vec::with_capacity(records.len());
        for records in records.chunks(crate::MAX_BATCH) {
            let batch: Vec<Delivery> = records
                .iter()
                .map(|r| {
                    classify::stored(
                        &meterhook_store::EventRecord {
                            attempts: 0,
                            ..r.clone()
                        },
                        &self.intake,
                    )
                })
                .collect();
            let written = self
                .commit_to_store(&batch)
                .map_err(IngestError::from_store)?;
            for (d, answer) in batch.iter().zip(written) {
                let outcome = match answer? {
                    Ingested::Stored(outcome) => outcome,
                    // Processed meanwhile by a writer or another instance: what it stored.
                    Ingested::AlreadyReceived | Ingested::Spooled => self
                        .store
                        .find_event(&d.event_id)
                        .map_err(IngestError::from_store)?
                        .and_then(|e| e.outcome.parse().ok())
                        .unwrap_or(Outcome::Pending),
                };
                outcomes.push((d.event_id.clone(), outcome));
            }
            progress(outcomes.len(), records.len());
        }
        Ok(outcomes)
    }
}

fn log_processed(d: &Delivery, result: &Processed) {
    let detail = result
        .decision
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    info!(
        "Webhook event {} ({}, vehicle {}): {}{detail}",
        d.event_id.escape_debug(),
        d.event_type.escape_debug(),
        d.smartcar_vehicle_id
            .as_deref()
            .unwrap_or("-")
            .escape_debug(),
        result.outcome
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use meterhook_smartcar::ParseError;
    use meterhook_store::testing::TestDatabase;
    use meterhook_store::PoolOptions;

    use super::*;

    #[test]
    fn the_spool_holds_at_most_its_limit_and_its_level_is_watched() {
        // A main database that never answers, so every batch goes to the spool.
        let away = Store::open_lazy(
            "postgres://nobody@127.0.0.1:1/none",
            &PoolOptions {
                connection_timeout: Duration::from_millis(200),
                ..PoolOptions::default()
            },
        )
        .expect("lazy store");
        let spool_db = TestDatabase::sqlite();
        let spool = Store::open(spool_db.url(), &PoolOptions::default()).expect("spool");
        let pipeline = Pipeline::new(
            away,
            Some(spool.clone()),
            Policy::default(),
            Intake::default(),
            RetryPolicy::default(),
        )
        .with_spool_limit(5);
        let delivery = |i: usize| {
            classify::malformed(
                format!("body {i}").as_bytes(),
                &ParseError::NotObject,
                meterhook_store::now(),
            )
        };
        // 3 of 5: under the alarm share (80 %).
        let answers = pipeline.commit(&(0..3).map(delivery).collect::<Vec<_>>());
        assert!(
            answers.iter().all(|a| *a == Ok(Ingested::Spooled)),
            "{answers:?}"
        );
        assert!(!pipeline.spool_near_full.load(Ordering::Relaxed));
        // 4 more: 2 fit (5 of 5, the alarm is raised), 2 are refused as the spool being full.
        let answers = pipeline.commit(&(3..7).map(delivery).collect::<Vec<_>>());
        assert_eq!(
            answers,
            vec![
                Ok(Ingested::Spooled),
                Ok(Ingested::Spooled),
                Err(IngestError::SpoolFull),
                Err(IngestError::SpoolFull)
            ]
        );
        assert_eq!(spool.unprocessed_count().expect("count"), 5);
        assert!(pipeline.spool_near_full.load(Ordering::Relaxed));
        assert_eq!(
            pipeline.commit(&[delivery(9)]),
            vec![Err(IngestError::SpoolFull)]
        );
        // Drained: the alarm is lowered.
        pipeline.watch_spool_level(0);
        assert!(!pipeline.spool_near_full.load(Ordering::Relaxed));
    }
}
