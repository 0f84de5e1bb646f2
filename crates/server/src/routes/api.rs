//! The API for the app, off unless `METERHOOK_API_TOKEN` is set, then behind
//! `Authorization: Bearer <token>` (see `crate::auth`); one token for reads and writes. Described
//! in `docs/openapi.yaml`.
//!
//! - `/api/vehicles/{vehicle_id}/…`: what is stored about one of the app's vehicles;
//! - `/api/smartcar-vehicles…`: which Smartcar vehicle feeds which app vehicle, so that the app
//!   registers a car when its user connects it.
//!
//! Listings page with a cursor (`after=`, answered as `next_after`), never offsets: rows that
//! arrive meanwhile do not shift a page. The token is checked before anything else, so that an
//! unauthenticated caller learns nothing, not even that its query is malformed.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike};
use meterhook_store::EntryCursor;
use serde::Deserialize;
use serde_json::json;

use super::{blocking, path_id};
use crate::error::ApiError;
use crate::registration::{self, RegistrationError};
use crate::state::AppState;
use crate::views;

/// Largest page.
const MAX_LIMIT: i64 = 1_000;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/changes", web::get().to(super::changes::changes))
        .service(
            web::scope("/api/vehicles/{vehicle_id}")
                .route("/meter-entries", web::get().to(meter_entries))
                .route("/signals/latest", web::get().to(latest_signals))
                .route("/health", web::get().to(health)),
        )
        .route("/api/smartcar-vehicles", web::get().to(list_vehicles))
        .route(
            "/api/smartcar-vehicles/{smartcar_vehicle_id}",
            web::put().to(register_vehicle),
        )
        .route(
            "/api/smartcar-vehicles/{smartcar_vehicle_id}",
            web::delete().to(purge_vehicle),
        )
        .route(
            "/api/smartcar-vehicles/{smartcar_vehicle_id}/deactivate",
            web::post().to(deactivate_vehicle),
        )
        .route(
            "/api/smartcar-vehicles/{smartcar_vehicle_id}/activate",
            web::post().to(activate_vehicle),
        );
}

pub(crate) fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    crate::auth::check(req, state, crate::auth::Realm::Api)
}

/// The query, parsed after the token check; unknown parameters (`offset`) are refused.
pub(crate) fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))
}

/// `limit`, checked: 1 to [`MAX_LIMIT`], `default` when absent.
pub(crate) fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )))
    }
}

/// Paging of `meter-entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    limit: Option<i64>,
    after: Option<String>,
    include_void: Option<bool>,
    /// Only entries written, voided or unvoided at or after this time (RFC 3339).
    updated_since: Option<String>,
}

/// An entry cursor as text: `<reading time in µs since the epoch>_<id>`; opaque to clients.
fn entry_cursor_text(c: EntryCursor) -> String {
    format!("{}_{}", c.entry_date.and_utc().timestamp_micros(), c.id)
}

/// Reading times a cursor may carry: years 1 to 9999, within what both backends store
/// (PostgreSQL's `timestamp` ends at 4713 BC and chrono's reach is far wider: a forged cursor
/// dated outside it got 500).
const CURSOR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn parse_entry_cursor(text: &str) -> Result<EntryCursor, ApiError> {
    let bad = || ApiError::BadRequest("after is not a cursor this API gave (next_after)".into());
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    let entry_date = DateTime::from_timestamp_micros(micros)
        .filter(|t| CURSOR_YEARS.contains(&t.year()))
        .ok_or_else(bad)?
        .naive_utc();
    Ok(EntryCursor { entry_date, id })
}

async fn meter_entries(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let page: EntriesQuery = query(&req)?;
    let vehicle_id = path_id("vehicle_id", path.into_inner())?;
    let limit = page_limit(page.limit, 100)?;
    let after = page.after.as_deref().map(parse_entry_cursor).transpose()?;
    let include_void = page.include_void.unwrap_or(false);
    let updated_since = page
        .updated_since
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.naive_utc())
                .map_err(|_| ApiError::BadRequest("updated_since is not an RFC 3339 time".into()))
        })
        .transpose()?;
    let store = state.store.clone();
    let id = vehicle_id.clone();
    // One more than asked tells whether there is a next page.
    let mut entries = blocking(move || match updated_since {
        Some(since) => store.entries_updated_since(&id, since, include_void, limit + 1, after),
        None => store.entries_page(&id, include_void, limit + 1, after),
    })
    .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let next_after = more
        .then(|| entries.last().map(|e| entry_cursor_text(e.cursor())))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "vehicle_id": vehicle_id,
        "entries": entries.iter().map(views::entry).collect::<Vec<_>>(),
        "limit": limit,
        "next_after": next_after,
    })))
}

async fn latest_signals(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let vehicle_id = path_id("vehicle_id", path.into_inner())?;
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
    let vehicle_id = path_id("vehicle_id", path.into_inner())?;
    let store = state.store.clone();
    let id = vehicle_id.clone();
    let (vehicles, errors, latest) = blocking(move || {
        Ok((
            store.vehicles_for(&id)?,
            store.open_errors_for_vehicle(&id)?,
            store.entries_page(&id, false, 1, None)?,
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

/// Paging of `smartcar-vehicles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VehiclesQuery {
    limit: Option<i64>,
    after: Option<String>,
}

async fn list_vehicles(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let page: VehiclesQuery = query(&req)?;
    let limit = page_limit(page.limit, 100)?;
    let after = page
        .after
        .as_deref()
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                ApiError::BadRequest("after is not a cursor this API gave (next_after)".into())
            })
        })
        .transpose()?;
    let store = state.store.clone();
    let mut vehicles = blocking(move || store.vehicles_page(after, limit + 1)).await?;
    let more = vehicles.len() as i64 > limit;
    vehicles.truncate(limit as usize);
    let next_after = more
        .then(|| vehicles.last().map(|v| v.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "vehicles": vehicles.iter().map(views::vehicle).collect::<Vec<_>>(),
        "limit": limit,
        "next_after": next_after,
    })))
}

/// The body of a registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    vehicle_id: String,
}

async fn register_vehicle(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The token before a byte of the body: a caller without it holds nothing.
    authorize(&req, &state)?;
    let smartcar_vehicle_id = path_id("smartcar_vehicle_id", path.into_inner())?;
    let body = state.limits.read(&req, payload).await?;
    let body: RegisterBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad body: {e}")))?;
    let pipeline = state.pipeline.clone();
    let registered = web::block(move || {
        registration::register(&pipeline, &smartcar_vehicle_id, &body.vehicle_id)
    })
    .await
    .map_err(|_| ApiError::Internal("the registration task stopped".into()))?
    .map_err(|e| match e {
        RegistrationError::Invalid(e) => ApiError::BadRequest(e.to_string()),
        RegistrationError::Store(meterhook_store::StoreError::Invalid(reason)) => {
            ApiError::BadRequest(reason)
        }
        RegistrationError::Store(e) => ApiError::from_store(e),
        RegistrationError::Ingest(e) => ApiError::from_ingest(e),
    })?;
    state.changes.poke();
    Ok(HttpResponse::Ok().json(json!({
        "vehicle": views::vehicle(&registered.vehicle),
        "processed_events": registered.processed,
        "entries_created": registered.entries_created,
        // Allowed (a car can be reconnected under a new id), but said: their readings are judged
        // as one odometer.
        "other_smartcar_vehicles": registered.others.iter().map(views::vehicle).collect::<Vec<_>>(),
    })))
}

async fn set_active(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    active: bool,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let smartcar_vehicle_id = path_id("smartcar_vehicle_id", path.into_inner())?;
    let store = state.store.clone();
    let vehicle = web::block(move || store.set_vehicle_active(&smartcar_vehicle_id, active))
        .await
        .map_err(|_| ApiError::Internal("the query task stopped".into()))?
        .map_err(|e| match e {
            meterhook_store::StoreError::NotFound(reason) => ApiError::NotFound(reason),
            e => ApiError::from_store(e),
        })?;
    state.changes.poke();
    Ok(HttpResponse::Ok().json(views::vehicle(&vehicle)))
}

async fn deactivate_vehicle(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_active(req, path, state, false).await
}

async fn activate_vehicle(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_active(req, path, state, true).await
}

/// The query of a purge: `purge=true`, said explicitly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeQuery {
    purge: Option<bool>,
}

async fn purge_vehicle(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let confirm: PurgeQuery = query(&req)?;
    let smartcar_vehicle_id = path_id("smartcar_vehicle_id", path.into_inner())?;
    if confirm.purge != Some(true) {
        return Err(ApiError::BadRequest(
            "deleting erases the vehicle and everything it sent: confirm with ?purge=true \
             (or deactivate it to keep the data)"
                .into(),
        ));
    }
    let store = state.pipeline.store().clone();
    let by = match req.peer_addr() {
        Some(peer) => format!("the API from {}", peer.ip()),
        None => "the API".to_owned(),
    };
    let purged = web::block(move || registration::purge(&store, &smartcar_vehicle_id, &by))
        .await
        .map_err(|_| ApiError::Internal("the purge task stopped".into()))?
        .map_err(|e| match e {
            meterhook_store::StoreError::NotFound(reason) => ApiError::NotFound(reason),
            e => ApiError::from_store(e),
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "vehicle": views::vehicle(&purged.vehicle),
        "erased": {
            "meter_entries": purged.entries,
            "signals": purged.signals,
            "errors": purged.errors,
            "sync_logs": purged.sync_logs,
            "events": purged.events,
        },
    })))
}
