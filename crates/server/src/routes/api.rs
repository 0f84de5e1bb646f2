//! The read API for the app, under `/api/vehicles/{vehicle_id}/…`: off unless
//! `METERHOOK_API_TOKEN` is set, then behind `Authorization: Bearer <token>` (see `crate::auth`).
//! Described in `docs/openapi.yaml`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::blocking;
/// Re-exported for `state.rs` and `startup.rs`, which still name it by this path.
use crate::error::ApiError;
use crate::state::AppState;
use crate::views;

/// Largest page of entries.
const MAX_LIMIT: i64 = 1_000;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/vehicles/{vehicle_id}")
            .route("/meter-entries", web::get().to(meter_entries))
            .route("/signals/latest", web::get().to(latest_signals))
            .route("/health", web::get().to(health)),
    );
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    match &state.api_token {
        Some(token) if token.admits(req) => Ok(()),
        _ => Err(ApiError::BadToken),
    }
}

/// Paging of `meter-entries`.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
    include_void: Option<bool>,
}

async fn meter_entries(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    // Parsed after the token check, so that an unauthenticated caller learns nothing.
    let page = web::Query::<Page>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?;
    let vehicle_id = path.into_inner();
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let offset = page.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest("offset must not be negative".into()));
    }
    let include_void = page.include_void.unwrap_or(false);
    let store = state.store.clone();
    let id = vehicle_id.clone();
    // One more than asked tells whether there is a next page.
    let mut entries =
        blocking(move || store.entries_page(&id, include_void, limit + 1, offset)).await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    Ok(HttpResponse::Ok().json(json!({
        "vehicle_id": vehicle_id,
        "entries": entries.iter().map(views::entry).collect::<Vec<_>>(),
        "limit": limit,
        "offset": offset,
        "next_offset": more.then_some(offset + limit),
    })))
}

async fn latest_signals(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let vehicle_id = path.into_inner();
    let store = state.store.clone();
    let id = vehicle_id.clone();
    let signals = blocking(move || store.latest_signals(&id)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "vehicle_id": vehicle_id,
        "signals": signals.iter().map(views::signal).collect::<Vec<_>>(),
    })))
}

async fn health(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let vehicle_id = path.into_inner();
    let store = state.store.clone();
    let id = vehicle_id.clone();
    let (vehicles, errors, latest) = blocking(move || {
        Ok((
            store.vehicles_for(&id)?,
            store.open_errors_for_vehicle(&id)?,
            store.entries_page(&id, false, 1, 0)?,
        ))
    })
    .await?;
    if vehicles.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no Smartcar vehicle is registered for vehicle {vehicle_id}"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({
        "vehicle_id": vehicle_id,
        "healthy": errors.is_empty(),
        "smartcar_vehicles": vehicles.iter().map(views::vehicle).collect::<Vec<_>>(),
        "open_errors": errors.iter().map(views::vehicle_error).collect::<Vec<_>>(),
        "latest_entry": latest.first().map(views::entry),
    })))
}
