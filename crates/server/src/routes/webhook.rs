//! `POST /api/smartcar/webhook`: verify, store durably, process, answer.
//!
//! The answer waits for the event's commit; processing failures do not change it (the event is
//! stored and retried in the background).

use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use log::{info, warn};
use meterhook_domain::Outcome;
use meterhook_ingest::{classify, Delivery, IngestError, Ingested};
use meterhook_smartcar::{
    is_safe_challenge, parse_event, parse_event_with, ChallengeAnswer, DeliveryHeaders, Event,
    EventType, SignatureCheck, DATA_AGE_HEADER, SIGNATURE_HEADER, UNIT_SYSTEM_HEADER,
};
use serde::Serialize;

use crate::error::ApiError;
use crate::rejections::Noted;
use crate::state::AppState;

/// What a delivery is answered with when it was stored.
#[derive(Debug, Serialize)]
struct Accepted {
    status: &'static str,
    #[serde(rename = "eventId")]
    event_id: String,
    outcome: &'static str,
}

/// The webhook endpoint.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = state.limits.read(&req, payload).await?;
    let received_at = meterhook_store::now();
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .map(HeaderValue::as_bytes);
    let check = state.keys.verify(header, &body);
    if check != SignatureCheck::Valid {
        // The handshake is sent unsigned; anything else must be signed.
        if check == SignatureCheck::Missing {
            if let Ok(event) = parse_event(&body) {
                if event.event_type == EventType::Verify {
                    return answer_challenge(&req, &state, &event);
                }
            }
        }
        let noted = if check == SignatureCheck::Missing {
            Noted::MissingSignature
        } else {
            Noted::InvalidSignature
        };
        state.metrics.signature_failure(noted);
        // Anyone can send these: counted, and logged once per interval (see `rejections`).
        state.rejections.note(noted, peer(&req));
        return Err(ApiError::Unauthorized);
    }

    let (deliveries, event_type) = match parse_event_with(&body, &delivery_headers(&req)) {
        Ok(event) if event.event_type == EventType::Verify => {
            return answer_challenge(&req, &state, &event)
        }
        Ok(event) => (
            classify::received(&event, &body, received_at, state.ingest.intake()),
            event.event_type.as_str().to_owned(),
        ),
        // A signed body that is not a JSON object, or breaks the string limits: kept as
        // received, then 400.
        Err(parse_error) => {
            let delivery = classify::malformed(&body, &parse_error, received_at);
            let answer = submit(&req, &state, delivery).await?;
            state.metrics.event("other", Outcome::Malformed.as_str());
            let id = meterhook_smartcar::EventId::from_body(&body).value;
            let event_id = meterhook_smartcar::Escaped(&id);
            match answer {
                Ingested::AlreadyReceived => {
                    info!("Webhook event {event_id}: malformed again; already kept")
                }
                _ => warn!(
                    "Webhook event {event_id}: malformed ({parse_error}); kept in the event log"
                ),
            }
            // The error never repeats the body's text, only what rule it broke.
            return Err(ApiError::BadRequest(parse_error.to_string()));
        }
    };
    // One delivery, or one per vehicle of a v2 body: the answer waits for all of them, so a
    // failure leaves Smartcar to deliver the whole body again (the stored ones are skipped).
    let started = std::time::Instant::now();
    let mut answers = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let event_id = delivery.event_id.clone();
        let outcome = submit(&req, &state, delivery).await?;
        let (status, outcome) = match outcome {
            Ingested::Stored(outcome) => ("accepted", outcome.as_str()),
            Ingested::AlreadyReceived => ("duplicate", "already_received"),
            Ingested::Spooled => ("spooled", "spooled"),
        };
        state.metrics.event(&event_type, outcome);
        answers.push(Accepted {
            status,
            event_id,
            outcome,
        });
    }
    state.metrics.ingest_took(started.elapsed());
    let mut answers = answers.into_iter();
    let Some(first) = answers.next() else {
        return Err(ApiError::BadRequest(
            "the body names no vehicle to deliver to".into(),
        ));
    };
    let vehicles: Vec<Accepted> = answers.collect();
    if vehicles.is_empty() {
        return Ok(HttpResponse::Ok().json(first));
    }
    // A v2 body of several vehicles: the first in the top level, every one under `vehicles`.
    let mut all = vec![first];
    all.extend(vehicles);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": all[0].status,
        "eventId": all[0].event_id,
        "outcome": all[0].outcome,
        "vehicles": all,
    })))
}

/// The request headers a v2 body's readings depend on (`SC-Unit-System`, `SC-Data-Age`).
fn delivery_headers(req: &HttpRequest) -> DeliveryHeaders {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    DeliveryHeaders {
        unit_system: header(UNIT_SYSTEM_HEADER),
        data_age: header(DATA_AGE_HEADER),
    }
}

/// Hands a verified delivery to the writers; a refusal under overload is counted and summarised
/// like the other refusals, not logged one line each.
async fn submit(
    req: &HttpRequest,
    state: &AppState,
    delivery: Delivery,
) -> Result<Ingested, ApiError> {
    state.ingest.submit(delivery).await.map_err(|e| {
        match e {
            IngestError::Overloaded => {
                state.metrics.refused("queue_full");
                state.rejections.note(Noted::Overloaded, peer(req));
            }
            IngestError::SpoolFull => {
                state.metrics.refused("spool_full");
                state.rejections.note(Noted::SpoolFull, peer(req));
            }
            IngestError::Unavailable | IngestError::Failed(_) => {}
        }
        ApiError::from_ingest(e)
    })
}

fn answer_challenge(
    req: &HttpRequest,
    state: &AppState,
    event: &Event,
) -> Result<HttpResponse, ApiError> {
    // Unsigned requests: logged in the periodic summary, never one line each.
    let Some(challenge) = event.challenge.as_deref() else {
        state.rejections.note(Noted::ChallengeRefused, peer(req));
        state.metrics.event("VERIFY", "challenge_refused");
        return Err(ApiError::BadRequest("VERIFY without a challenge".into()));
    };
    if !is_safe_challenge(challenge) {
        // Answering would sign arbitrary text with the management token.
        state.rejections.note(Noted::ChallengeRefused, peer(req));
        state.metrics.event("VERIFY", "challenge_refused");
        return Err(ApiError::BadRequest(
            "the challenge must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -".into(),
        ));
    }
    let answer = state.keys.answer_challenge(challenge);
    state.rejections.note(Noted::ChallengeAnswered, peer(req));
    state.metrics.event("VERIFY", "challenge_answered");
    Ok(HttpResponse::Ok().json(ChallengeAnswer { challenge: answer }))
}

fn peer(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}
