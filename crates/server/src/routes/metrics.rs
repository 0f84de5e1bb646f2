//! `GET /metrics`.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// The figures, from memory: the database gauges are refreshed in the background (see
/// `crate::metrics`), so a scrape never waits for, or takes, a database connection.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = state
        .metrics
        .encode_now(state.ingest.queued())
        .map_err(|e| ApiError::Internal(format!("metrics encoding: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}
