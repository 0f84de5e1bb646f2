//! `/ui/events?outcome=…&limit=…`: the newest events by the time they were received, of one
//! outcome when asked, each linked to its vehicle.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use meterhook_domain::Outcome;
use meterhook_store::{EventFilter, EventSummary};
use serde::Deserialize;

use super::layout::{self, second, Section};
use super::{html_page, outcome_badge, vehicle_href, PageError};
use crate::error::ApiError;
use crate::routes::blocking;
use crate::state::AppState;

/// The page sizes offered; any from 1 to the last is accepted.
const LIMITS: [i64; 4] = [50, 100, 200, 500];
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
struct Filter {
    outcome: Option<String>,
    limit: Option<String>,
}

/// The events page.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let filter = web::Query::<Filter>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?
        .into_inner();
    let outcome = match filter.outcome.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(name.parse::<Outcome>().map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown outcome {name:?}; the outcomes are: {}",
                Outcome::ALL.map(Outcome::as_str).join(", ")
            ))
        })?),
    };
    let max = LIMITS[LIMITS.len() - 1];
    let limit = match filter.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a whole number from 1 to {max}"))
            })?,
    };
    let store = state.store.clone();
    let (events, app_ids) = blocking(move || {
        let filter = EventFilter {
            outcome,
            ..EventFilter::default()
        };
        let events = store.list_events(&filter, limit)?;
        // The app vehicle behind each Smartcar vehicle on the page: at most `limit` look-ups on
        // the unique index.
        let mut app_ids: HashMap<String, Option<String>> = HashMap::new();
        for id in events
            .iter()
            .filter_map(|e| e.smartcar_vehicle_id.as_deref())
        {
            if !app_ids.contains_key(id) {
                let found = store.find_vehicle(id)?.map(|v| v.vehicle_id);
                app_ids.insert(id.to_owned(), found);
            }
        }
        Ok((events, app_ids))
    })
    .await?;
    let chosen = outcome.map(Outcome::as_str);
    Ok(html_page(layout::page(
        Section::Events,
        "Recent events",
        html! {
            form.filter method="get" action="/ui/events" {
                label for="outcome" {
                    "Outcome"
                    select id="outcome" name="outcome" {
                        option value="" selected[chosen.is_none()] { "any outcome" }
                        @for o in Outcome::ALL {
                            option value=(o.as_str()) selected[chosen == Some(o.as_str())] { (o.as_str()) }
                        }
                    }
                }
                label for="limit" {
                    "Show"
                    select id="limit" name="limit" {
                        @for n in LIMITS {
                            option value=(n) selected[n == limit] { (n) " newest" }
                        }
                        @if !LIMITS.contains(&limit) {
                            option value=(limit) selected { (limit) " newest" }
                        }
                    }
                }
                button type="submit" { "Show events" }
            }
            p.lead {
                @if events.is_empty() {
                    "No events"
                    @if let Some(o) = chosen { " with outcome " code { (o) } }
                    "."
                } @else {
                    "The newest " (events.len()) " event" @if events.len() != 1 { "s" }
                    @if let Some(o) = chosen { " with outcome " code { (o) } }
                    ", newest first."
                }
            }
            @if !events.is_empty() {
                table {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Type" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Vehicle" }
                        th.num scope="col" { "Attempts" }
                        th scope="col" { "Event id / error" }
                    } }
                    tbody {
                        @for e in &events {
                            (row(e, &app_ids))
                        }
                    }
                }
            }
        },
    )))
}

fn row(e: &EventSummary, app_ids: &HashMap<String, Option<String>>) -> maud::Markup {
    html! {
        tr {
            td.t { (second(e.received_at)) }
            td { (e.event_type) }
            td { (outcome_badge(&e.outcome)) }
            td {
                @match e.smartcar_vehicle_id.as_deref() {
                    None => { span.muted { "–" } }
                    Some(smartcar_id) => {
                        @match app_ids.get(smartcar_id).and_then(Option::as_deref) {
                            Some(app_id) => { a href=(vehicle_href(app_id)) { (app_id) } }
                            None => { code { (smartcar_id) } span.muted { " (not registered)" } }
                        }
                    }
                }
            }
            td.num { (e.attempts) }
            td {
                code { (e.event_id) }
                @if let Some(error) = &e.error { div.warn { (error) } }
            }
        }
    }
}
