//! `GET /api/changes`: the ordered record of changes, paged with a cursor, optionally waiting
//! (`wait=30s`) for the next change. Behind the API token like the rest of `/api`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use meterhook_store::{ChangeFilter, ChangeType, ChangesError};
use serde::Deserialize;
use serde_json::json;

use super::api::{authorize, page_limit, query};
use crate::error::ApiError;
use crate::feed;
use crate::state::AppState;

/// The longest a reader may wait for a change.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The query of `GET /api/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    after: Option<String>,
    limit: Option<i64>,
    types: Option<String>,
    vehicle_id: Option<String>,
    wait: Option<String>,
}

/// `wait`: `30s`, `1m`, `500ms` or plain seconds, at most [`MAX_WAIT`].
fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|_| ApiError::BadRequest(format!("wait {text:?} is not a duration (30s)")))?,
    };
    if wait > MAX_WAIT {
        return Err(ApiError::BadRequest(format!(
            "wait must be at most {}",
            humantime::format_duration(MAX_WAIT)
        )));
    }
    Ok(wait)
}

fn parse_types(text: &str) -> Result<Vec<ChangeType>, ApiError> {
    text.split(',')
        .map(|t| {
            t.trim().parse::<ChangeType>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "unknown change type {t:?}; known: {}",
                    ChangeType::ALL.map(ChangeType::as_str).join(", ")
                ))
            })
        })
        .collect()
}

/// `GET /api/changes`.
pub async fn changes(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q: ChangesQuery = query(&req)?;
    let limit = page_limit(q.limit, 100)?;
    let mut after = q
        .after
        .as_deref()
        .map(|text| {
            feed::parse_cursor(text).ok_or_else(|| {
                ApiError::BadRequest("after is not a cursor this API gave (next_cursor)".into())
            })
        })
        .transpose()?;
    let filter = ChangeFilter {
        types: q
            .types
            .as_deref()
            .map(parse_types)
            .transpose()?
            .unwrap_or_default(),
        vehicle_id: q.vehicle_id,
    };
    let wait = q
        .wait
        .as_deref()
        .map(parse_wait)
        .transpose()?
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first read: a change committed between the read and the wait still
    // wakes it.
    let mut tail = state.changes.subscribe();
    let page = loop {
        let store = state.store.clone();
        let f = filter.clone();
        let page = web::block(move || store.changes_after(after, limit, &f))
            .await
            .map_err(|_| ApiError::Internal("the query task stopped".into()))?
            .map_err(|e| match e {
                ChangesError::Gone { .. } => ApiError::Gone(e.to_string()),
                ChangesError::Ahead { .. } => {
                    ApiError::BadRequest(format!("after is not a cursor of this feed: {e}"))
                }
                ChangesError::Store(e) => ApiError::from_store(e),
            })?;
        if !page.changes.is_empty() || tokio::time::Instant::now() >= deadline {
            break page;
        }
        // Nothing passed the filter up to `next`: the next read starts there.
        after = Some(page.next);
        // No connection is held while waiting: only a receiver of the tail.
        tokio::select! {
            changed = tail.changed() => if changed.is_err() { break page },
            () = tokio::time::sleep_until(deadline) => {}
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "data": page.changes.iter().map(feed::change).collect::<Vec<_>>(),
        "next_cursor": feed::cursor(page.next),
        "has_more": page.has_more,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded_durations() {
        for (text, expected) in [
            ("30s", Some(30_000)),
            ("30", Some(30_000)),
            ("0", Some(0)),
            ("500ms", Some(500)),
            ("1m", Some(60_000)),
            ("61s", None),
            ("soon", None),
            ("-1", None),
        ] {
            let got = parse_wait(text).ok().map(|d| d.as_millis());
            assert_eq!(got, expected, "{text:?}");
        }
    }
}
