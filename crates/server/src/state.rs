//! What every request handler shares, and the ingest path.

use chrono::NaiveDateTime;
use log::{error, info, warn};
use meterhook_domain::Policy;
use meterhook_smartcar::{Event, SigningKeys};
use meterhook_store::{NewEvent, Outcome, Recorded, Store};

use crate::config::RetryPolicy;
use crate::error::ApiError;
use crate::processor;

/// Shared by the handlers and the background tasks.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// A local SQLite file that takes events while a PostgreSQL `store` is unreachable.
    pub spool: Option<Store>,
    /// Accepted `SC-Signature` keys; the first answers challenges.
    pub keys: SigningKeys,
    /// The odometer rules' policy.
    pub policy: Policy,
    /// How failed processing is retried.
    pub retry: RetryPolicy,
    /// Request body limits.
    pub limits: BodyLimits,
    /// The process's metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The read API's token; the API is off without one.
    pub api_token: Option<crate::routes::api::ApiToken>,
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

impl AppState {
    /// Stores a verified event durably, then processes it. Blocking.
    ///
    /// An error means the event is stored nowhere: the caller must not answer 2xx.
    pub fn ingest(
        &self,
        event_id: &str,
        event: &Event,
        body: &[u8],
        received_at: NaiveDateTime,
    ) -> Result<Ingested, ApiError> {
        // A parsed event is valid JSON, hence valid UTF-8.
        let payload = String::from_utf8_lossy(body);
        let new = NewEvent::pending(
            event_id,
            event.event_type.as_str(),
            event.vehicle_id.as_deref(),
            &payload,
            received_at,
        );
        match self.store.record_event(&new) {
            Ok(Recorded::AlreadySeen) => {
                info!(
                    "Webhook event {event_id} ({}): already received; not processed again",
                    event.event_type
                );
                return Ok(Ingested::AlreadyReceived);
            }
            Ok(Recorded::New) => {}
            Err(e) if e.is_transient() => return self.spool_or_refuse(event_id, &new, e),
            Err(e) => return Err(ApiError::from_store(e)),
        }
        let received_ms = meterhook_store::to_millis(received_at);
        let outcome = processor::with_retry(&self.store, event_id, &self.retry, 0, || {
            let result =
                processor::process(&self.store, event_id, event, received_ms, &self.policy)?;
            let detail = result
                .decision
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            info!(
                "Webhook event {event_id} ({}, vehicle {}): {}{detail}",
                event.event_type,
                event.vehicle_id.as_deref().unwrap_or("-"),
                result.outcome
            );
            Ok(result)
        });
        Ok(Ingested::Stored(outcome))
    }

    fn spool_or_refuse(
        &self,
        event_id: &str,
        new: &NewEvent<'_>,
        cause: meterhook_store::StoreError,
    ) -> Result<Ingested, ApiError> {
        let Some(spool) = &self.spool else {
            return Err(ApiError::from_store(cause));
        };
        match spool.record_event(new) {
            Ok(_) => {
                warn!("Webhook event {event_id}: database unavailable ({cause}); kept in the local spool");
                Ok(Ingested::Spooled)
            }
            Err(e) => {
                error!("Webhook event {event_id}: database unavailable ({cause}) and the spool failed too ({e})");
                Err(ApiError::Unavailable)
            }
        }
    }
}
