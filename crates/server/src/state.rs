//! What every request handler shares.

use meterhook_ingest::Submitter;
use meterhook_smartcar::SigningKeys;
use meterhook_store::Store;

/// Shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database through the readers' own pool (read API, metrics, readiness): a read never
    /// holds a connection a delivery waits for. Deliveries go to `ingest`, which has its own.
    pub store: Store,
    /// The outage spool (PostgreSQL only), for readiness and its gauge, through the readers'
    /// own pool too.
    pub spool: Option<Store>,
    /// Accepted `SC-Signature` keys; the first answers challenges.
    pub keys: SigningKeys,
    /// Request body limits.
    pub limits: BodyLimits,
    /// The process's metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Refused and unsigned requests, logged as one summary line per interval.
    pub rejections: std::sync::Arc<crate::rejections::Rejections>,
    /// The read API's token; the API is off without one.
    pub api_token: Option<crate::auth::ApiToken>,
    /// The status pages' password; the pages are off without one.
    pub ui_password: Option<crate::auth::UiPassword>,
    /// Where verified deliveries go to be made durable.
    pub ingest: Submitter,
    /// The ingest pipeline, for the API's registrations (which process the events that waited
    /// for a vehicle).
    pub pipeline: meterhook_ingest::Pipeline,
    /// The change feed's last position, for the readers that wait for the next change.
    pub changes: crate::feed::ChangeTail,
}

/// How large a request body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes.
    pub max_bytes: usize,
    /// From the end of the head to the end of the body.
    pub timeout: std::time::Duration,
}
