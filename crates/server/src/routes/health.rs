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

/// Ready: the database answers a query, or, while it does not, the spool takes events (the
/// instance still acknowledges deliveries, so a load balancer must keep sending them).
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let checked = web::block(move || match st.store.ping() {
        Ok(()) => Ok("ready"),
        Err(e) => match &st.spool {
            Some(spool) if spool.ping().is_ok() => {
                log::warn!("readiness: database unavailable ({e}); spooling");
                Ok("ready (database unavailable: events go to the spool)")
            }
            _ => Err(e),
        },
    })
    .await;
    match checked {
        Ok(Ok(body)) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body)),
        Ok(Err(e)) => {
            log::warn!("readiness check failed: {e}");
            Err(ApiError::Unavailable)
        }
        Err(_) => Err(ApiError::Unavailable),
    }
}
