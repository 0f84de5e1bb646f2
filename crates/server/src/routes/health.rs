//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers too).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// Alive: answers without touching the database.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// Ready: the database answers a query.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready")),
        Ok(Err(e)) => {
            log::warn!("readiness check failed: {e}");
            Err(ApiError::Unavailable)
        }
        Err(_) => Err(ApiError::Unavailable),
    }
}
