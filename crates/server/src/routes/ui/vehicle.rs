//! `/ui/vehicles/{vehicle_id}?days=…`: an app vehicle's odometer over time with its void readings
//! and their reasons, then its latest signals and open errors.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, TimeDelta};
use maud::{html, Markup};
use meterhook_store::{MeterEntry, SignalRow, Vehicle, VehicleErrorRow};
use serde::Deserialize;

use super::chart::{self, Point};
use super::layout::{self, ago, km, minute, second, signal_value, Section};
use super::{html_page, vehicle_href, PageError};
use crate::error::ApiError;
use crate::routes::blocking;
use crate::state::AppState;

/// The windows offered, in days; any from 1 to the last is accepted.
const WINDOWS: [i64; 4] = [7, 30, 90, 365];
const DEFAULT_DAYS: i64 = 30;
/// Most readings drawn: the newest of the window.
const MAX_POINTS: i64 = 2_000;

#[derive(Debug, Deserialize)]
struct Window {
    days: Option<String>,
}

struct Data {
    vehicles: Vec<Vehicle>,
    entries: Vec<MeterEntry>,
    latest: Option<MeterEntry>,
    signals: Vec<SignalRow>,
    errors: Vec<VehicleErrorRow>,
}

/// A vehicle's page.
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let vehicle_id = crate::routes::path_id("vehicle_id", path.into_inner())?;
    let window = web::Query::<Window>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?
        .into_inner();
    let max = WINDOWS[WINDOWS.len() - 1];
    let days = match window.days.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_DAYS,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("days must be a whole number from 1 to {max}"))
            })?,
    };
    let now = meterhook_store::now();
    let from = now - TimeDelta::days(days);
    let store = state.store.clone();
    let id = vehicle_id.clone();
    let data = blocking(move || {
        Ok(Data {
            vehicles: store.vehicles_for(&id)?,
            entries: store.entries_since(&id, from, MAX_POINTS)?,
            latest: store.entries_page(&id, false, 1, None)?.pop(),
            signals: store.latest_signals(&id)?,
            errors: store.open_errors_for_vehicle(&id)?,
        })
    })
    .await?;
    if data.vehicles.is_empty() && data.latest.is_none() && data.entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no Smartcar vehicle is registered for vehicle {vehicle_id}, and it has no meter entries"
        ))
        .into());
    }
    Ok(html_page(layout::page(
        Section::Vehicle,
        &format!("Vehicle {vehicle_id}"),
        html! {
            (summary(&data, now))
            (odometer(&vehicle_id, &data.entries, days, from, now))
            (void_list(&data.entries))
            (signals(&data.signals))
            (errors(&data.errors))
        },
    )))
}

fn summary(data: &Data, now: NaiveDateTime) -> Markup {
    let active = data.entries.iter().filter(|e| !e.void).count();
    let void = data.entries.len() - active;
    html! {
        p.lead {
            @if data.vehicles.is_empty() {
                "No Smartcar vehicle is registered for it now."
            } @else {
                "Smartcar vehicle" @if data.vehicles.len() > 1 { "s" } ": "
                @for (i, v) in data.vehicles.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (v.smartcar_vehicle_id) }
                    @if !v.is_active { " " span.badge.skipped { "inactive" } }
                }
                "."
            }
        }
        div.tiles {
            div.tile {
                span.n { @match &data.latest { Some(e) => (km(e.distance().km())), None => "–" } }
                span.k {
                    "odometer"
                    @if let Some(e) = &data.latest { ", read " (ago(now, e.entry_date)) }
                }
            }
            div.tile { span.n { (active) } span.k { "readings in the window" } }
            div.tile { span.n { (void) } span.k { "void readings in the window" } }
            div.tile { span.n { (data.errors.len()) } span.k { "open errors" } }
        }
    }
}

fn odometer(
    vehicle_id: &str,
    entries: &[MeterEntry],
    days: i64,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Markup {
    // Entries come newest first; the chart reads left to right.
    let points: Vec<Point> = entries
        .iter()
        .rev()
        .map(|e| Point {
            at: e.entry_date,
            km: e.distance().km(),
            title: match (&e.void, &e.void_reason) {
                (false, _) => format!("{}: {}", minute(e.entry_date), km(e.distance().km())),
                (true, reason) => format!(
                    "Void, {}: {} — {}",
                    minute(e.entry_date),
                    km(e.distance().km()),
                    reason.as_deref().unwrap_or("no reason given")
                ),
            },
            void: e.void,
        })
        .collect();
    let href = vehicle_href(vehicle_id);
    html! {
        h2 { "Odometer" }
        nav.choices aria-label="Window" {
            "Show the last:"
            @for n in WINDOWS {
                @if n == days {
                    a href=(format!("{href}?days={n}")) aria-current="page" { (n) " days" }
                } @else {
                    a href=(format!("{href}?days={n}")) { (n) " days" }
                }
            }
        }
        @if points.is_empty() {
            p { "No readings in the last " (plural(days, "day")) "." }
        } @else {
            figure {
                (chart::odometer(
                    "odometer",
                    &format!("Odometer of vehicle {vehicle_id} over the last {}", plural(days, "day")),
                    &format!(
                        "{} readings from {} to {}; void readings are drawn as crosses apart from the line and listed below the chart.",
                        points.len(), minute(from), minute(to)
                    ),
                    &points,
                    from,
                    to,
                ))
                figcaption.legend {
                    span { span.swatch.line {} "reading (hover for its value)" }
                    span.rejected-text { "✕ void reading (hover for its reason)" }
                }
            }
            @if entries.len() as i64 >= MAX_POINTS {
                p.muted { "Only the newest " (MAX_POINTS) " readings of the window are drawn." }
            }
        }
    }
}

/// `1 day`, `30 days`.
fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("{n} {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn void_list(entries: &[MeterEntry]) -> Markup {
    let void: Vec<&MeterEntry> = entries.iter().filter(|e| e.void).collect();
    html! {
        h2 { "Void readings" }
        @if void.is_empty() {
            p { "None in this window." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Read at" }
                    th.num scope="col" { "Value" }
                    th scope="col" { "Reason" }
                    th scope="col" { "Event" }
                } }
                tbody {
                    @for e in void {
                        tr {
                            td.t { (second(e.entry_date)) }
                            td.num { (km(e.distance().km())) }
                            td { (e.void_reason.as_deref().unwrap_or("no reason given")) }
                            td { @if let Some(id) = &e.event_id { code { (id) } } }
                        }
                    }
                }
            }
        }
    }
}

fn signals(signals: &[SignalRow]) -> Markup {
    html! {
        h2 { "Latest signals" }
        @if signals.is_empty() {
            p { "No signal received yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Signal" }
                    th.num scope="col" { "Value" }
                    th scope="col" { "Observed" }
                } }
                tbody {
                    @for s in signals {
                        tr {
                            td { code { (s.code) } }
                            td.num { (signal_value(s.value, s.unit.as_deref())) }
                            td.t { (second(s.observed_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn errors(errors: &[VehicleErrorRow]) -> Markup {
    html! {
        h2 { "Open errors" }
        @if errors.is_empty() {
            p { "No open errors." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Error" }
                    th scope="col" { "Since" }
                    th scope="col" { "Last seen" }
                    th scope="col" { "What to do" }
                } }
                tbody {
                    @for e in errors {
                        tr {
                            td {
                                code { (e.label()) }
                                @if e.needs_owner { " " span.badge.failed { "owner must reconnect" } }
                                @if let Some(d) = &e.description { div.muted { (d) } }
                            }
                            td.t { (minute(e.first_seen_at)) }
                            td.t { (minute(e.last_seen_at)) }
                            td {
                                @if let Some(m) = &e.suggested_user_message { div { (m) } }
                                @if let Some(r) = &e.resolution_type { div.muted { "Resolution: " (r) } }
                                // Only plain web links: the URL came in an event body.
                                @if let Some(url) = e.doc_url.as_deref().filter(|u| u.starts_with("https://")) {
                                    div { a href=(url) rel="noreferrer noopener" { "Smartcar's documentation" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
