//! `POST /api/smartcar/webhook`: verify, store durably, process, answer.
//!
//! The answer waits for the event's commit; processing failures do not change it (the event is
//! stored and retried in the background).

use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use log::{error, info, warn};
use meterhook_smartcar::{
    is_safe_challenge, parse_event, ChallengeAnswer, Event, EventId, EventType, SignatureCheck,
    SIGNATURE_HEADER,
};
use meterhook_store::{NewEvent, Outcome, Recorded};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::{AppState, BodyLimits, Delivery, Ingested};

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

    let event = match parse_event(&body) {
        Ok(event) => event,
        Err(parse_error) => return keep_malformed(state, body, received_at, parse_error).await,
    };
    if event.event_type == EventType::Verify {
        return answer_challenge(&state, &event);
    }

    let event_id = event.id.value.clone();
    let event_type = event.event_type.as_str().to_owned();
    let started = std::time::Instant::now();
    let outcome = state
        .writer
        .submit(Delivery::new(event_id.clone(), event, body, received_at))
        .await?;
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

/// A signed body that is not a JSON object: kept as received (hex when it is not UTF-8), then 400.
async fn keep_malformed(
    state: web::Data<AppState>,
    body: web::Bytes,
    received_at: chrono::NaiveDateTime,
    parse_error: meterhook_smartcar::ParseError,
) -> Result<HttpResponse, ApiError> {
    let id = EventId::from_body(&body).value;
    let message = parse_error.to_string();
    state.metrics.event("other", Outcome::Malformed.as_str());
    let stored = {
        let (id, message) = (id.clone(), message.clone());
        web::block(move || {
            let (payload, note) = match std::str::from_utf8(&body) {
                Ok(text) => (text.to_owned(), message),
                Err(_) => (
                    format!("hex:{}", base16ct::lower::encode_string(&body)),
                    format!("{message}; the body is not UTF-8, so payload holds its bytes as hex"),
                ),
            };
            let event = NewEvent {
                processed: true,
                processed_at: Some(received_at),
                outcome: Outcome::Malformed.as_str(),
                error: Some(&note),
                ..NewEvent::pending(&id, "UNKNOWN", None, &payload, received_at)
            };
            state.store.record_event(&event)
        })
        .await
        .map_err(|_| ApiError::Internal("the ingest task stopped".into()))?
    };
    match stored {
        Ok(Recorded::New) => {
            warn!("Webhook event {id}: malformed ({message}); kept in the event log")
        }
        Ok(Recorded::AlreadySeen) => info!("Webhook event {id}: malformed again; already kept"),
        Err(e) => {
            error!("Webhook event {id}: malformed, and it could not be kept: {e}");
            return Err(ApiError::from_store(e));
        }
    }
    Err(ApiError::BadRequest(format!(
        "body is not a JSON object: {message}"
    )))
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown peer".to_owned(), |a| a.ip().to_string())
}
