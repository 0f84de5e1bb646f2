//! `GET /metrics`.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// The figures; the backlog gauges are read from the database (and the spool) now.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let backlog = web::block(move || {
        let backlog = st.store.backlog()?;
        let spooled = match &st.spool {
            Some(spool) => spool.unprocessed_count()?,
            None => 0,
        };
        let newest = st
            .store
            .newest_event_at()?
            .map(|t| (meterhook_store::now() - t).num_milliseconds() as f64 / 1000.0);
        let needing = st.store.vehicles_needing_reconnection()?;
        Ok::<_, meterhook_store::StoreError>((backlog, spooled, newest, needing))
    })
    .await
    .map_err(|_| ApiError::Internal("the metrics task stopped".into()))?;
    match backlog {
        Ok((backlog, spooled, newest, needing)) => {
            state
                .metrics
                .set_backlog(backlog.unprocessed(), backlog.dead, spooled, newest);
            state.metrics.set_needing_reconnection(needing);
        }
        // The counters are still worth scraping while the database is away.
        Err(e) => log::warn!("metrics: backlog unavailable: {e}"),
    }
    let body = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("metrics encoding: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}
