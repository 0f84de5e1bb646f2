#![doc = include_str!("../README.md")]

pub mod classify;
mod passes;
mod pipeline;
mod writer;

use std::time::Duration;

use meterhook_domain::Outcome;
use meterhook_domain::Policy;
use meterhook_store::{Store, StoreError};

pub use classify::Intake;
pub use meterhook_store::Delivery;
pub use passes::{drain_pass, prune_pass, retry_pass, Retention, Schedule};
pub use pipeline::{Answers, Pipeline, RetryPolicy};
pub use writer::Submitter;

/// Deliveries committed together at most.
pub const MAX_BATCH: usize = 256;

/// The default of [`IngestOptions::queue`]: deep enough for a burst of a whole fleet, small
/// enough that a stalled writer is noticed (as 503s) within seconds.
pub const DEFAULT_QUEUE: usize = 4_096;

/// The default of [`IngestOptions::spool_max_events`]: with typical 2–5 KB events, a few
/// hundred MB of spool.
pub const DEFAULT_SPOOL_MAX_EVENTS: u64 = 100_000;

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now and processed (or left pending for a retry) with this outcome.
    Stored(Outcome),
    /// Already stored: a redelivery, not processed again.
    AlreadyReceived,
    /// The main database is unreachable; kept in the local spool, processed when it is back.
    Spooled,
}

/// Why a delivery was not made durable. None of them stores anything: the sender is to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The database (and the spool, if any) cannot take it now.
    #[error("storage unavailable")]
    Unavailable,
    /// The writers' queues are full.
    #[error("too many deliveries waiting")]
    Overloaded,
    /// The database is away and the outage spool holds as many events as it may.
    #[error("the database is unavailable and the spool is full")]
    SpoolFull,
    /// A failure that is not the database being away (a bug, or a writer that stopped).
    #[error("{0}")]
    Failed(String),
}

impl IngestError {
    /// A store failure: transient ones are [`IngestError::Unavailable`].
    pub fn from_store(e: StoreError) -> IngestError {
        if e.is_transient() {
            IngestError::Unavailable
        } else {
            IngestError::Failed(e.to_string())
        }
    }
}

/// How the pipeline runs. Plain values: the embedding service parses its own configuration.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The odometer rules' policy.
    pub policy: Policy,
    /// How deliveries are classified (clock tolerance, test events).
    pub intake: Intake,
    /// How failed processing is retried.
    pub retry: RetryPolicy,
    /// Writer threads (1 suits SQLite, whose writes are serial anyway).
    pub writers: usize,
    /// Deliveries waiting for each writer at most; more are refused as overloaded.
    pub queue: usize,
    /// Events the outage spool holds at most; more are refused with [`IngestError::SpoolFull`].
    pub spool_max_events: u64,
    /// The background passes.
    pub schedule: Schedule,
}

impl IngestOptions {
    /// The defaults for `policy` and `retry`: one writer on SQLite, two on PostgreSQL.
    pub fn new(store: &Store, policy: Policy, retry: RetryPolicy) -> IngestOptions {
        IngestOptions {
            policy,
            intake: Intake::default(),
            retry,
            writers: match store.backend() {
                meterhook_store::Backend::Sqlite => 1,
                meterhook_store::Backend::Postgres => 2,
            },
            queue: DEFAULT_QUEUE,
            spool_max_events: DEFAULT_SPOOL_MAX_EVENTS,
            schedule: Schedule {
                retry_every: Duration::from_secs(5)
                    .min(retry.backoff.max(Duration::from_millis(100))),
                drain_every: Duration::from_secs(2),
                prune: None,
            },
        }
    }
}

/// The running pipeline: writer threads fed by [`Submitter`]s, and the background passes.
pub struct Ingest {
    pipeline: Pipeline,
    writers: writer::Writers,
    submitter: Submitter,
    passes: Option<passes::Passes>,
    schedule: Schedule,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl Ingest {
    /// Starts the writer threads on `store` (and the outage `spool`, with PostgreSQL). The
    /// background passes start with [`Ingest::start_background`], on a Tokio runtime.
    pub fn start(
        options: IngestOptions,
        store: Store,
        spool: Option<Store>,
    ) -> std::io::Result<Ingest> {
        let pipeline = Pipeline::new(store, spool, options.policy, options.intake, options.retry)
            .with_spool_limit(options.spool_max_events);
        let (writers, submitter) =
            writer::Writers::start(&pipeline, options.writers, options.queue, MAX_BATCH)?;
        Ok(Ingest {
            pipeline,
            writers,
            submitter,
            passes: None,
            schedule: options.schedule,
        })
    }

    /// Starts the retry, spool drain and prune passes on the current Tokio runtime.
    pub fn start_background(&mut self) {
        if self.passes.is_none() {
            self.passes = Some(passes::Passes::start(&self.pipeline, &self.schedule));
        }
    }

    /// A handle to submit deliveries with.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// Submits a delivery and waits until it is durable.
    pub async fn submit(&self, delivery: Delivery) -> Result<Ingested, IngestError> {
        self.submitter.submit(delivery).await
    }

    /// The blocking core, for work outside the writers (reprocessing).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Stops: once every other [`Submitter`] is dropped, the writers commit what is queued and
    /// end (waited for up to `timeout`), then the background passes finish and stop.
    pub async fn shutdown(self, timeout: Duration) {
        let Ingest {
            writers,
            submitter,
            passes,
            ..
        } = self;
        drop(submitter);
        let joined =
            tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || writers.join()))
                .await;
        if joined.is_err() {
            log::warn!("the writers did not finish within {timeout:?}");
        }
        if let Some(passes) = passes {
            passes.stop().await;
        }
    }
}
