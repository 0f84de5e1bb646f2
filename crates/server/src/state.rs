//! What every request handler shares, and the ingest path.

use chrono::NaiveDateTime;
use log::{error, info, warn};
use meterhook_domain::{Policy, Reading};
use meterhook_smartcar::{Event, EventType, SigningKeys};
use meterhook_store::{
    BatchEvent, BatchOutcome, BatchWork, NewEvent, NewSignal, Outcome, ProcessResult, Recorded,
    Store, StoreError, Tx,
};

use crate::config::RetryPolicy;
use crate::error::ApiError;
use crate::processor;
use crate::writer::WriterHandle;

/// Shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (reads, readiness).
    pub store: Store,
    /// A local SQLite file that takes events while a PostgreSQL `store` is unreachable.
    pub spool: Option<Store>,
    /// Accepted `SC-Signature` keys; the first answers challenges.
    pub keys: SigningKeys,
    /// Request body limits.
    pub limits: BodyLimits,
    /// The process's metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The read API's token; the API is off without one.
    pub api_token: Option<crate::routes::api::ApiToken>,
    /// Where verified deliveries go to be committed.
    pub writer: WriterHandle,
}

/// How large a request body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes.
    pub max_bytes: usize,
    /// From the end of the head to the end of the body.
    pub timeout: std::time::Duration,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now and processed (or left pending after a failure) with this outcome.
    Stored(Outcome),
    /// Already stored: a redelivery, not processed again.
    AlreadyReceived,
    /// The main database is unreachable; kept in the local spool, processed when it is back.
    Spooled,
}

/// A verified delivery waiting to be committed.
#[derive(Debug)]
pub struct Delivery {
    /// Its identity (`eventId`, or the body hash).
    pub event_id: String,
    /// The parsed event.
    pub event: Event,
    /// The raw body, stored as received.
    pub body: actix_web::web::Bytes,
    /// When it arrived.
    pub received_at: NaiveDateTime,
    /// For a vehicle state the batch path can take: its signal values and odometer reading,
    /// worked out on the HTTP worker rather than on the writer thread.
    pub prepared: Option<(Vec<NewSignal>, Option<Reading>)>,
}

impl Delivery {
    /// A verified delivery, prepared for the writer.
    pub fn new(
        event_id: String,
        event: Event,
        body: actix_web::web::Bytes,
        received_at: NaiveDateTime,
    ) -> Delivery {
        let prepared = batch_work(&event, received_at);
        Delivery {
            event_id,
            event,
            body,
            received_at,
            prepared,
        }
    }
}

/// Stores and processes events: used by the writer threads and the background passes.
#[derive(Debug, Clone)]
pub struct Ingestor {
    /// The database.
    pub store: Store,
    /// The outage spool, with PostgreSQL.
    pub spool: Option<Store>,
    /// The odometer rules' policy.
    pub policy: Policy,
    /// How failed processing is retried.
    pub retry: RetryPolicy,
    /// Set while the database is presumed down, so deliveries go straight to the spool instead
    /// of each waiting for a connection timeout.
    pub outage: std::sync::Arc<OutageGate>,
}

/// Remembers a database outage for a short while (a circuit breaker).
#[derive(Debug, Default)]
pub struct OutageGate {
    until_ms: std::sync::atomic::AtomicI64,
}

impl OutageGate {
    /// How long an outage is presumed after a failure before the database is tried again.
    const HOLD_MS: i64 = 2_000;

    /// Whether the database is presumed down now.
    pub fn active(&self) -> bool {
        self.until_ms.load(std::sync::atomic::Ordering::Relaxed)
            > chrono::Utc::now().timestamp_millis()
    }

    /// Notes a failure: the database is presumed down for a while.
    pub fn trip(&self) {
        self.until_ms.store(
            chrono::Utc::now().timestamp_millis() + Self::HOLD_MS,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Notes that the database answered.
    pub fn clear(&self) {
        self.until_ms.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Ingestor {
    /// Commits deliveries in one transaction (group commit: one fsync for all), each stored and
    /// processed in savepoints of its own. Returns one answer per delivery, in order; an `Ok`
    /// means the delivery is committed (or spooled). Blocking.
    pub fn commit(&self, deliveries: &[Delivery]) -> Vec<Result<Ingested, ApiError>> {
        if self.spool.is_some() && self.outage.active() {
            return self.spool_or_refuse(deliveries, "database presumed unavailable");
        }
        // The writer sorted the batch by vehicle; each transaction locks them all first, in that
        // order, so that batches of several writers or instances never wait on each other in a
        // cycle.
        let mut ids: Vec<&str> = deliveries
            .iter()
            .filter_map(|d| d.event.vehicle_id.as_deref())
            .collect();
        ids.dedup();
        let fast = self.store.write(|tx| {
            let vehicles = tx.lock_vehicles(&ids)?;
            self.ingest_fast(tx, deliveries, &vehicles)
        });
        let committed = match fast {
            // Rolled back whole; again one by one (a conflict with another writer, or a statement
            // that failed on some delivery: the one-by-one path isolates it).
            Err(e) if !e.is_transient() => {
                log::debug!("batch path not taken ({e}); one by one");
                self.store.write(|tx| {
                    tx.lock_vehicles(&ids)?;
                    let mut answers = Vec::with_capacity(deliveries.len());
                    for delivery in deliveries {
                        match tx.savepoint(|tx| self.ingest_one(tx, delivery)) {
                            Ok(answer) => answers.push(Ok(answer)),
                            // The connection or the database is gone: nothing of this batch
                            // commits.
                            Err(e) if e.is_transient() => return Err(e),
                            Err(e) => answers.push(Err(e)),
                        }
                    }
                    Ok(answers)
                })
            }
            other => other,
        };
        match committed {
            Ok(answers) => answers
                .into_iter()
                .zip(deliveries)
                .map(|(answer, d)| {
                    answer.map_err(|e| {
                        error!("Webhook event {}: could not be stored: {e}", d.event_id);
                        ApiError::from_store(e)
                    })
                })
                .collect(),
            Err(e) if e.is_transient() => {
                self.outage.trip();
                self.spool_or_refuse(deliveries, &e.to_string())
            }
            Err(e) => {
                error!(
                    "a batch of {} deliveries could not be committed: {e}",
                    deliveries.len()
                );
                deliveries
                    .iter()
                    .map(|_| Err(ApiError::Internal(e.to_string())))
                    .collect()
            }
        }
    }

    /// The fast path: every delivery the batch statements can take ([`Tx::ingest_batch`]) in one
    /// go, the others (vehicle errors, unusable readings) one by one after them. On an error the
    /// transaction must be rolled back.
    fn ingest_fast(
        &self,
        tx: &mut Tx<'_>,
        deliveries: &[Delivery],
        vehicles: &[meterhook_store::Vehicle],
    ) -> Result<Vec<Result<Ingested, StoreError>>, StoreError> {
        let payloads: Vec<std::borrow::Cow<'_, str>> = deliveries
            .iter()
            // A parsed event is valid JSON, hence valid UTF-8.
            .map(|d| String::from_utf8_lossy(&d.body))
            .collect();
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            let event = &d.event;
            let work = match (&d.prepared, &event.event_type, event.vehicle_id.as_deref()) {
                (Some((signals, reading)), _, Some(vehicle)) => BatchWork::State {
                    smartcar_vehicle_id: vehicle,
                    signals,
                    reading: *reading,
                },
                (None, EventType::Verify | EventType::Other(_), _) => {
                    BatchWork::Complete(Outcome::Ignored)
                }
                _ => {
                    slow.push(i);
                    continue;
                }
            };
            fast.push((
                i,
                BatchEvent {
                    event_id: &d.event_id,
                    event_type: event.event_type.as_str(),
                    smartcar_vehicle_id: event.vehicle_id.as_deref(),
                    payload: &payloads[i],
                    received_at: d.received_at,
                    work,
                },
            ));
        }
        let (index, batch): (Vec<usize>, Vec<BatchEvent<'_>>) = fast.into_iter().unzip();
        let outcomes = tx.ingest_batch(&batch, vehicles, &self.policy)?;
        let mut answers: Vec<Option<Result<Ingested, StoreError>>> =
            deliveries.iter().map(|_| None).collect();
        for (i, outcome) in index.into_iter().zip(outcomes) {
            let d = &deliveries[i];
            answers[i] = Some(Ok(match outcome {
                BatchOutcome::AlreadySeen => {
                    log_already_received(d);
                    Ingested::AlreadyReceived
                }
                BatchOutcome::Processed(result) => {
                    log_processed(d, &result);
                    Ingested::Stored(result.outcome)
                }
            }));
        }
        for i in slow {
            let answer = match tx.savepoint(|tx| self.ingest_one(tx, &deliveries[i])) {
                Err(e) if e.is_transient() => return Err(e),
                answer => answer,
            };
            answers[i] = Some(answer);
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(StoreError::Invalid("not ingested".into()))))
            .collect())
    }

    fn ingest_one(&self, tx: &mut Tx<'_>, d: &Delivery) -> Result<Ingested, StoreError> {
        // A parsed event is valid JSON, hence valid UTF-8.
        let payload = String::from_utf8_lossy(&d.body);
        let event = &d.event;
        let new = NewEvent::pending(
            &d.event_id,
            event.event_type.as_str(),
            event.vehicle_id.as_deref(),
            &payload,
            d.received_at,
        );
        if tx.record_event(&new)? == Recorded::AlreadySeen {
            log_already_received(d);
            return Ok(Ingested::AlreadyReceived);
        }
        let received_ms = meterhook_store::to_millis(d.received_at);
        let result = processor::process_or_schedule(tx, &d.event_id, &self.retry, 0, |tx| {
            processor::process(tx, &d.event_id, event, received_ms, &self.policy)
        })?;
        log_processed(d, &result);
        Ok(Ingested::Stored(result.outcome))
    }

    /// Keeps deliveries in the local spool, in one transaction; 503 when there is no spool or it
    /// fails too.
    fn spool_or_refuse(
        &self,
        deliveries: &[Delivery],
        cause: &str,
    ) -> Vec<Result<Ingested, ApiError>> {
        let Some(spool) = &self.spool else {
            warn!(
                "{} deliveries refused: database unavailable ({cause})",
                deliveries.len()
            );
            return deliveries
                .iter()
                .map(|_| Err(ApiError::Unavailable))
                .collect();
        };
        let spooled = spool.write(|tx| {
            for d in deliveries {
                let payload = String::from_utf8_lossy(&d.body);
                tx.record_event(&NewEvent::pending(
                    &d.event_id,
                    d.event.event_type.as_str(),
                    d.event.vehicle_id.as_deref(),
                    &payload,
                    d.received_at,
                ))?;
            }
            Ok(())
        });
        match spooled {
            Ok(()) => {
                for d in deliveries {
                    warn!(
                        "Webhook event {}: database unavailable ({cause}); kept in the local spool",
                        d.event_id
                    );
                }
                deliveries.iter().map(|_| Ok(Ingested::Spooled)).collect()
            }
            Err(e) => {
                error!("{} deliveries refused: database unavailable ({cause}) and the spool failed too ({e})", deliveries.len());
                deliveries
                    .iter()
                    .map(|_| Err(ApiError::Unavailable))
                    .collect()
            }
        }
    }
}

/// What the batch path does with a delivery: for a vehicle state, its signal values and its
/// odometer reading; `None` when it takes the one-by-one path or is not a vehicle state.
fn batch_work(
    event: &Event,
    received_at: NaiveDateTime,
) -> Option<(Vec<NewSignal>, Option<Reading>)> {
    if event.event_type != EventType::VehicleState {
        return None;
    }
    let received_ms = meterhook_store::to_millis(received_at);
    let reading = match event.odometer_reading(received_ms) {
        None => None,
        // Representable times only; unusable readings are recorded the one-by-one way.
        Some(Ok(reading)) if meterhook_store::to_timestamp(reading.observed_at).is_some() => {
            Some(reading)
        }
        Some(_) => return None,
    };
    Some((processor::signal_rows(event, received_ms), reading))
}

fn log_already_received(d: &Delivery) {
    info!(
        "Webhook event {} ({}): already received; not processed again",
        d.event_id, d.event.event_type
    );
}

fn log_processed(d: &Delivery, result: &ProcessResult) {
    let detail = result
        .decision
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    info!(
        "Webhook event {} ({}, vehicle {}): {}{detail}",
        d.event_id,
        d.event.event_type,
        d.event.vehicle_id.as_deref().unwrap_or("-"),
        result.outcome
    );
}
