//! `POST /api/smartcar/webhook`: verify, store durably, process, answer.
//!
//! The answer waits for the event's commit; processing failures do not change it (the event is
//! stored and retried in the background).

use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use log::{info, warn};
use meterhook_ingest::{Delivery, Ingested};
use meterhook_smartcar::{
    is_safe_challenge, parse_event, ChallengeAnswer, Event, EventType, SignatureCheck,
    SIGNATURE_HEADER,
};
use meterhook_store::Outcome;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::{AppState, BodyLimits};

/// What a delivery is answered with when it was stored.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    status: &'static str,
    #[serde(rename = "eventId")]
    event_id: &'a str,
    outcome: &'a str,
}

/// The webhook endpoint.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, &state.limits).await?;
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
                    return answer_challenge(&state, &event);
                }
            }
        }
        state.metrics.signature_failure();
        warn!(
            "Rejected webhook from {}: {} {SIGNATURE_HEADER} ({} bytes)",
            peer(&req),
            if check == SignatureCheck::Missing {
                "missing"
            } else {
                "invalid"
            },
            body.len()
        );
        return Err(ApiError::Unauthorized);
    }

    let (delivery, event_type) = match parse_event(&body) {
        Ok(event) if event.event_type == EventType::Verify => {
            return answer_challenge(&state, &event)
        }
        Ok(event) => (
            Delivery::received(&event, &body, received_at),
            event.event_type.as_str().to_owned(),
        ),
        // A signed body that is not a JSON object: kept as received, then 400.
        Err(parse_error) => {
            let delivery = Delivery::malformed(&body, &parse_error, received_at);
            let answer = state
                .ingest
                .submit(delivery)
                .await
                .map_err(ApiError::from_ingest)?;
            state.metrics.event("other", Outcome::Malformed.as_str());
            let event_id = meterhook_smartcar::EventId::from_body(&body).value;
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
    let event_id = delivery.event_id().to_owned();
    let started = std::time::Instant::now();
    let outcome = state
        .ingest
        .submit(delivery)
        .await
        .map_err(ApiError::from_ingest)?;
    let (status, outcome) = match outcome {
        Ingested::Stored(outcome) => ("accepted", outcome.as_str()),
        Ingested::AlreadyReceived => ("duplicate", "already_received"),
        Ingested::Spooled => ("spooled", "spooled"),
    };
    state.metrics.ingest_took(started.elapsed());
    state.metrics.event(&event_type, outcome);
    Ok(HttpResponse::Ok().json(Accepted {
        status,
        event_id: &event_id,
        outcome,
    }))
}

/// Reads the whole body within the size limit and the client timeout: actix bounds the time to
/// send the request head, this bounds the body, so a client that stalls mid-body cannot hold a
/// connection (and a worker's attention) forever.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: &BodyLimits,
) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes) {
        return Err(ApiError::PayloadTooLarge(limits.max_bytes));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limits.max_bytes));
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
            if body.len() + chunk.len() > limits.max_bytes {
                return Err(ApiError::PayloadTooLarge(limits.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(result) => result.map(|()| body.freeze()),
        Err(_) => Err(ApiError::Timeout),
    }
}

fn answer_challenge(state: &AppState, event: &Event) -> Result<HttpResponse, ApiError> {
    info!("Webhook verification requested");
    let Some(challenge) = event.challenge.as_deref() else {
        warn!("Webhook verification refused: no challenge in the VERIFY body");
        state.metrics.event("VERIFY", "challenge_refused");
        return Err(ApiError::BadRequest("VERIFY without a challenge".into()));
    };
    if !is_safe_challenge(challenge) {
        // Answering would sign arbitrary text with the management token.
        warn!("Webhook verification refused: the challenge is not 1-128 characters of A-Z a-z 0-9 _ -");
        state.metrics.event("VERIFY", "challenge_refused");
        return Err(ApiError::BadRequest(
            "the challenge must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -".into(),
        ));
    }
    let answer = state.keys.answer_challenge(challenge);
    info!("Webhook verification successful");
    state.metrics.event("VERIFY", "challenge_answered");
    Ok(HttpResponse::Ok().json(ChallengeAnswer { challenge: answer }))
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown peer".to_owned(), |a| a.ip().to_string())
}
