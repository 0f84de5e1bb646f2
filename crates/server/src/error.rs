//! The HTTP error policy, in one place.
//!
//! | error | status | why |
//! |---|---|---|
//! | `BadRequest` | 400 | the body can never succeed (malformed, unsafe challenge); Smartcar's retries would fail too |
//! | `Unauthorized` | 401 | missing or invalid `SC-Signature`; nothing is stored |
//! | `BadToken` | 401 + `WWW-Authenticate: Bearer` | the read API without the right bearer token |
//! | `BadPassword` | 401 + `WWW-Authenticate: Basic` | the status pages without the right password (the browser asks for it) |
//! | `TooManyFailures` | 429 + `Retry-After` | wrong credentials again and again from one peer, or from everyone (`crate::auth::Failures`); the right ones are still admitted |
//! | `NotFound` | 404 | the read API or a status page asked about a vehicle that is not registered |
//! | `Timeout` | 408 | the body did not arrive within `client_timeout` (the head is bounded by actix) |
//! | `PayloadTooLarge` | 413 | over `body_limit` (64 KiB; Smartcar sends at most 50 KB) |
//! | `Unavailable` | 503 + `Retry-After` | the event could not be stored now (storage away, writers' queues full, spool full); Smartcar retries |
//! | `Internal` | 500 | a bug; the event is not acknowledged, so Smartcar retries |
//!
//! There is no blanket conversion from other errors: each call site chooses.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use meterhook_store::StoreError;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// An error answered to an HTTP client. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("missing or invalid SC-Signature")]
    Unauthorized,
    /// 401 on the read API.
    #[error("missing or invalid bearer token")]
    BadToken,
    /// 401 on the status pages.
    #[error("missing or invalid password")]
    BadPassword,
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 429: too many wrong credentials lately; retry after this many seconds.
    #[error("too many failed logins; retry later")]
    TooManyFailures(u64),
    /// 408.
    #[error("the request body did not arrive in time")]
    Timeout,
    /// 413.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 503.
    #[error("storage unavailable, retry later")]
    Unavailable,
    /// 500.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A delivery the pipeline could not make durable: 503 (retry: the database or the spool is
    /// away, the writers' queues or the spool are full) unless it is a bug.
    pub fn from_ingest(e: meterhook_ingest::IngestError) -> ApiError {
        use meterhook_ingest::IngestError;
        match e {
            // Counted and logged in the periodic summary by the caller, not one line each.
            IngestError::Unavailable | IngestError::Overloaded | IngestError::SpoolFull => {
                ApiError::Unavailable
            }
            IngestError::Failed(detail) => ApiError::Internal(detail),
        }
    }

    /// A store failure while storing: transient ones are 503 (retry), the rest 500.
    pub fn from_store(e: StoreError) -> ApiError {
        if e.is_transient() {
            log::warn!("storage unavailable: {e}");
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadToken | ApiError::BadPassword => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            log::error!("internal error: {detail}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if let ApiError::TooManyFailures(seconds) = self {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, ApiError::BadToken) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if matches!(self, ApiError::BadPassword) {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                r#"Basic realm="meterhook", charset="UTF-8""#,
            ));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}
