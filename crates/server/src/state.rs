//! What every request handler shares.

use chrono::NaiveDateTime;
use log::{error, info};
use meterhook_domain::Policy;
use meterhook_smartcar::{Event, SigningKeys};
use meterhook_store::{NewEvent, Outcome, Recorded, Store};

use crate::error::ApiError;
use crate::processor;

/// Shared by the handlers: the store, the accepted signing keys and the rules' policy.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Accepted `SC-Signature` keys; the first answers challenges.
    pub keys: SigningKeys,
    /// The odometer rules' policy.
    pub policy: Policy,
}

impl AppState {
    /// Stores a verified event durably, then processes it. `None` when it was already stored (a
    /// redelivery, not processed again). Blocking.
    ///
    /// An error here means the event is not stored: the caller must not answer 2xx.
    pub fn ingest(
        &self,
        event_id: &str,
        event: &Event,
        body: &[u8],
        received_at: NaiveDateTime,
    ) -> Result<Option<Outcome>, ApiError> {
        // A parsed event is valid JSON, hence valid UTF-8.
        let payload = String::from_utf8_lossy(body);
        let new = NewEvent::pending(
            event_id,
            event.event_type.as_str(),
            event.vehicle_id.as_deref(),
            &payload,
            received_at,
        );
        match self
            .store
            .record_event(&new)
            .map_err(ApiError::from_store)?
        {
            Recorded::AlreadySeen => {
                info!(
                    "Webhook event {event_id} ({}): already received; not processed again",
                    event.event_type
                );
                return Ok(None);
            }
            Recorded::New => {}
        }
        let received_ms = meterhook_store::to_millis(received_at);
        match processor::process(&self.store, event_id, event, received_ms, &self.policy) {
            Ok(result) => {
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
                Ok(Some(result.outcome))
            }
            Err(e) => {
                // Stored but not processed: it stays pending for a retry; the delivery succeeded.
                error!(
                    "Webhook event {event_id} ({}): stored, processing failed: {e}",
                    event.event_type
                );
                Ok(Some(Outcome::Pending))
            }
        }
    }
}
