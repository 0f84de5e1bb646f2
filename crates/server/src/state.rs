//! What every request handler shares.

use meterhook_ingest::Submitter;
use meterhook_smartcar::SigningKeys;
use meterhook_store::Store;

use crate::error::ApiError;

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
    /// Failed logins to the API and the pages, limited per peer and overall.
    pub failures: std::sync::Arc<crate::auth::Failures>,
    /// Where verified deliveries go to be made durable.
    pub ingest: Submitter,
    /// The ingest pipeline, for the API's registrations (which process the events that waited
    /// for a vehicle).
    pub pipeline: meterhook_ingest::Pipeline,
}

/// How large a request body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes.
    pub max_bytes: usize,
    /// From the end of the head to the end of the body.
    pub timeout: std::time::Duration,
}

impl BodyLimits {
    /// Reads a whole request body within the size limit (413) and the client timeout (408):
    /// actix bounds the time to send the request head, this bounds the body, so a client that
    /// stalls mid-body cannot hold a connection (and a worker's attention) forever. Every route
    /// that takes a body reads it here, after its credentials are checked.
    pub async fn read(
        &self,
        req: &actix_web::HttpRequest,
        mut payload: actix_web::web::Payload,
    ) -> Result<actix_web::web::Bytes, ApiError> {
        use futures_util::StreamExt as _;
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_bytes) {
            return Err(ApiError::PayloadTooLarge(self.max_bytes));
        }
        // Grown as the bytes arrive, never sized from the declared length: a client that
        // declares the limit and then stalls must not hold that much memory.
        let mut body = actix_web::web::BytesMut::new();
        let read = async {
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(ApiError::PayloadTooLarge(self.max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(result) => result.map(|()| body.freeze()),
            Err(_) => Err(ApiError::Timeout),
        }
    }
}
