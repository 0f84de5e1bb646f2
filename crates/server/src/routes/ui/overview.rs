//! `/ui/`: is Smartcar delivering (deliveries of the last 24 hours by outcome), the backlog, and
//! the vehicles that need attention.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, TimeDelta, Timelike};
use maud::{html, Markup};
use meterhook_store::{Backlog, HourlyCount, LastReading, SyncStatus, Vehicle, VehicleErrorRow};
use serde::Deserialize;

use super::chart::{self, Bar, Segment};
use super::layout::{self, ago, minute, Section};
use super::{html_page, outcome_badge, status_of, status_style, vehicle_href, PageError};
use crate::error::ApiError;
use crate::metrics::InvalidSignatures;
use crate::routes::blocking;
use crate::state::AppState;

/// A vehicle without a reading for this long needs a look.
const STALE_AFTER: TimeDelta = TimeDelta::days(3);
/// Most rows of the vehicles table on one page, and of open errors read for the page.
const MAX_VEHICLES: i64 = 1_000;
const MAX_ERRORS: i64 = 1_000;
/// Most rows of the "Needs attention" table on one page.
const MAX_ATTENTION: usize = 100;
/// The largest offset a link may ask for.
const MAX_OFFSET: usize = 10_000_000;

/// Where each table starts: `?attention=<n>` and `?vehicles=<n>`, the links under the tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pages {
    attention: Option<String>,
    vehicles: Option<String>,
}

/// An offset from the query: a whole number from 0 to [`MAX_OFFSET`].
fn offset(name: &str, text: Option<&str>) -> Result<usize, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_OFFSET)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be a whole number from 0 to {MAX_OFFSET}"
                ))
            }),
    }
}

struct Figures {
    hourly: Vec<HourlyCount>,
    backlog: Backlog,
    spooled: Option<i64>,
    newest: Option<NaiveDateTime>,
    vehicles: Vec<Vehicle>,
    last_readings: Vec<LastReading>,
    errors: Vec<VehicleErrorRow>,
}

/// Why an app vehicle is listed under "Needs attention".
enum Reason<'a> {
    Error(&'a VehicleErrorRow),
    Inactive(&'a str),
    NoReadingYet,
    NoReadingSince(NaiveDateTime),
}

/// The overview page.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let pages = web::Query::<Pages>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?
        .into_inner();
    let attention_from = offset("attention", pages.attention.as_deref())?;
    let vehicles_from = offset("vehicles", pages.vehicles.as_deref())?;
    let now = meterhook_store::now();
    let this_hour = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let since = this_hour - TimeDelta::hours(23);
    let store = state.store.clone();
    let spool = state.spool.clone();
    let figures = blocking(move || {
        Ok(Figures {
            hourly: store.hourly_outcomes(since)?,
            backlog: store.backlog()?,
            spooled: spool.map(|s| s.unprocessed_count()).transpose()?,
            newest: store.newest_event_at()?,
            vehicles: store.list_vehicles()?,
            // Up to the end of the vehicles table's page: one row per app vehicle, by id.
            last_readings: store.last_readings(
                i64::try_from(vehicles_from)
                    .unwrap_or(i64::MAX)
                    .saturating_add(MAX_VEHICLES),
            )?,
            errors: store.all_open_errors(MAX_ERRORS)?,
        })
    })
    .await?;
    Ok(html_page(layout::page(
        Section::Overview,
        "Fleet status",
        html! {
            (refused_signatures(&state.metrics.invalid_signatures(), now))
            (delivering(&figures, now))
            (backlog(&figures))
            (deliveries(&figures.hourly, since))
            (attention(&figures, now, attention_from))
            (fleet(&figures, now, vehicles_from))
        },
    )))
}

/// Deliveries refused for an invalid signature: first on the page, since each is a reading lost
/// once Smartcar stops retrying, and nothing else on the page would show it.
fn refused_signatures(refused: &InvalidSignatures, now: NaiveDateTime) -> Markup {
    html! {
        @if let Some(last) = refused.last {
            p.warn role="alert" {
                span.badge.failed { "signatures refused" } " "
                (refused.count) " deliver" (if refused.count == 1 { "y" } else { "ies" })
                " refused for an invalid SC-Signature since the service started, the last "
                (ago(now, last)) " (" (minute(last)) "). Most likely Smartcar signs with another "
                "token than SMARTCAR_MANAGEMENT_TOKEN, and every such delivery is lost after "
                "Smartcar's retries: run " code { "meterhook doctor" } "."
            }
        }
    }
}

fn delivering(f: &Figures, now: NaiveDateTime) -> Markup {
    html! {
        p.lead {
            @match f.newest {
                Some(t) => {
                    "Last delivery from Smartcar " strong { (ago(now, t)) } " (" (minute(t)) ")."
                }
                None => { "No delivery from Smartcar has been received yet." }
            }
            " Page drawn at " (minute(now)) "."
        }
    }
}

fn deliveries(hourly: &[HourlyCount], since: NaiveDateTime) -> Markup {
    let statuses = [
        SyncStatus::Success,
        SyncStatus::Skipped,
        SyncStatus::Rejected,
        SyncStatus::Failed,
    ];
    let mut by_outcome: BTreeMap<&str, i64> = BTreeMap::new();
    for h in hourly {
        *by_outcome.entry(h.outcome.as_str()).or_default() += h.count;
    }
    let total: i64 = by_outcome.values().sum();
    let bars: Vec<Bar> = (0..24)
        .map(|i| {
            let hour = since + TimeDelta::hours(i);
            let rows: Vec<&HourlyCount> = hourly.iter().filter(|h| h.hour == hour).collect();
            let segments = statuses
                .iter()
                .map(|status| Segment {
                    value: rows
                        .iter()
                        .filter(|h| status_of(&h.outcome) == *status)
                        .map(|h| h.count)
                        .sum(),
                    colour: status_style(*status).1,
                })
                .collect();
            let detail: Vec<String> = rows
                .iter()
                .map(|h| format!("{} {}", h.count, h.outcome))
                .collect();
            Bar {
                label: if i % 3 == 0 {
                    hour.format("%H:00").to_string()
                } else {
                    String::new()
                },
                title: format!(
                    "{}–{}: {}",
                    hour.format("%H:00"),
                    (hour + TimeDelta::hours(1)).format("%H:00 UTC"),
                    if detail.is_empty() {
                        "no deliveries".to_owned()
                    } else {
                        detail.join(", ")
                    }
                ),
                segments,
            }
        })
        .collect();
    html! {
        h2 { "Deliveries in the last 24 hours" }
        div.split {
            figure {
                (chart::stacked_bars(
                    "deliveries",
                    "Deliveries per hour in the last 24 hours, by outcome group",
                    &format!("{total} deliveries since {}; each bar is one hour, stacked by success, skipped, rejected and failed.", minute(since)),
                    &bars,
                ))
                figcaption.legend {
                    @for status in statuses {
                        span { span class=(format!("swatch {}", status_style(status).0)) {} (status.as_str()) }
                    }
                }
            }
            @if by_outcome.is_empty() {
                p.muted { "No deliveries in this window." }
            } @else {
                table.compact {
                    caption.muted { "By outcome, " (total) " in all" }
                    thead { tr { th scope="col" { "Outcome" } th scope="col" { "Group" } th.num scope="col" { "Deliveries" } } }
                    tbody {
                        @for (outcome, count) in &by_outcome {
                            tr {
                                td { a href=(format!("/ui/events?outcome={outcome}")) { (outcome_badge(outcome)) } }
                                td { (status_of(outcome).as_str()) }
                                td.num { (count) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn backlog(f: &Figures) -> Markup {
    let tile = |n: i64, what: &str, href: Option<&str>| {
        html! {
            div.tile {
                span.n { (n) }
                @match href {
                    Some(href) => { a.k href=(href) { (what) } }
                    None => { span.k { (what) } }
                }
            }
        }
    };
    html! {
        h2 { "Backlog" }
        div.tiles {
            (tile(f.backlog.pending, "pending (not tried yet)", Some("/ui/events?outcome=pending")))
            (tile(f.backlog.retrying, "retrying", Some("/ui/events?outcome=pending")))
            (tile(f.backlog.dead, "dead (gave up)", Some("/ui/events?outcome=dead")))
            @match f.spooled {
                Some(n) => (tile(n, "spooled (waiting for PostgreSQL)", None)),
                None => div.tile { span.n { "–" } span.k { "spooled (no spool on SQLite)" } },
            }
        }
    }
}

/// Each app vehicle's registrations, in the order of their app ids.
fn by_app_vehicle(vehicles: &[Vehicle]) -> BTreeMap<&str, Vec<&Vehicle>> {
    let mut map: BTreeMap<&str, Vec<&Vehicle>> = BTreeMap::new();
    for v in vehicles {
        map.entry(v.vehicle_id.as_str()).or_default().push(v);
    }
    map
}

/// "and N more" under a table of `total` rows whose page ends at `end`, linking to the next page.
fn more(total: usize, end: usize, what: &str, href: String) -> Markup {
    html! {
        @if total > end {
            p.muted {
                "and " (total - end) " more " (what) ". " a href=(href) { "Show the next ones" }
            }
        }
    }
}

fn attention(f: &Figures, now: NaiveDateTime, from: usize) -> Markup {
    let app_vehicles = by_app_vehicle(&f.vehicles);
    let mut rows: Vec<(&str, Vec<Reason<'_>>)> = Vec::new();
    for (app_id, registrations) in &app_vehicles {
        let mut reasons = Vec::new();
        for v in registrations {
            if !v.is_active {
                reasons.push(Reason::Inactive(&v.smartcar_vehicle_id));
            }
            for e in f
                .errors
                .iter()
                .filter(|e| e.smartcar_vehicle_id == v.smartcar_vehicle_id)
            {
                reasons.push(Reason::Error(e));
            }
        }
        match f.last_readings.iter().find(|r| r.vehicle_id == *app_id) {
            Some(LastReading { at: Some(at), .. }) if now - *at > STALE_AFTER => {
                reasons.push(Reason::NoReadingSince(*at))
            }
            Some(LastReading { at: None, .. }) => reasons.push(Reason::NoReadingYet),
            _ => {}
        }
        if !reasons.is_empty() {
            rows.push((app_id, reasons));
        }
    }
    // Those only their owner can fix first, then errors, then the rest.
    rows.sort_by_key(|(id, reasons)| {
        let rank = if reasons
            .iter()
            .any(|r| matches!(r, Reason::Error(e) if e.needs_owner))
        {
            0
        } else if reasons.iter().any(|r| matches!(r, Reason::Error(_))) {
            1
        } else {
            2
        };
        (rank, *id)
    });
    let total = rows.len();
    let end = from.saturating_add(MAX_ATTENTION).min(total);
    let shown = rows.get(from.min(total)..end).unwrap_or_default();
    html! {
        h2 #attention { "Needs attention" }
        @if rows.is_empty() {
            p { "Every vehicle is active, without open errors, and read within the last "
                (STALE_AFTER.num_days()) " days." }
        } @else {
            table {
                thead { tr { th scope="col" { "Vehicle" } th scope="col" { "Why" } } }
                @if from > 0 {
                    caption.muted { (from + 1) "–" (end) " of " (total) }
                }
                tbody {
                    @for (id, reasons) in shown {
                        tr {
                            td.t { a href=(vehicle_href(id)) { (id) } }
                            td {
                                @for reason in reasons {
                                    div { (reason_markup(reason, now)) }
                                }
                            }
                        }
                    }
                }
            }
            (more(total, end, "vehicles need attention", format!("/ui/?attention={end}#attention")))
        }
    }
}

fn reason_markup(reason: &Reason<'_>, now: NaiveDateTime) -> Markup {
    match reason {
        Reason::Error(e) => html! {
            @if e.needs_owner {
                span.badge.failed { "owner must reconnect" } " "
            } @else {
                span.badge.rejected { "open error" } " "
            }
            code { (e.label()) }
            " since " (minute(e.first_seen_at))
            @if let Some(message) = &e.suggested_user_message { span.muted { " — " (message) } }
        },
        Reason::Inactive(smartcar_id) => html! {
            span.badge.skipped { "inactive" } " Smartcar vehicle " code { (smartcar_id) }
            " is deactivated: its events are kept, not processed."
        },
        Reason::NoReadingYet => html! {
            span.badge.skipped { "no reading" } " No odometer reading recorded yet."
        },
        Reason::NoReadingSince(at) => html! {
            span.badge.skipped { "quiet" } " No odometer reading since " (minute(*at))
            " (" (ago(now, *at)) ")."
        },
    }
}

fn fleet(f: &Figures, now: NaiveDateTime, from: usize) -> Markup {
    let app_vehicles = by_app_vehicle(&f.vehicles);
    let total = app_vehicles.len();
    let end = from.saturating_add(MAX_VEHICLES as usize).min(total);
    html! {
        h2 #vehicles { "Vehicles" }
        @if app_vehicles.is_empty() {
            p { "No vehicle is registered. Register one with "
                code { "meterhook vehicles add SMARTCAR_ID --vehicle-id ID" } "." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Vehicle" }
                    th scope="col" { "Smartcar vehicle" }
                    th scope="col" { "Last reading" }
                    th.num scope="col" { "Open errors" }
                } }
                tbody {
                    @for (id, registrations) in app_vehicles.iter().skip(from).take(MAX_VEHICLES as usize) {
                        @let open = f.errors.iter().filter(|e| registrations.iter().any(|v| v.smartcar_vehicle_id == e.smartcar_vehicle_id)).count();
                        tr {
                            td.t { a href=(vehicle_href(id)) { (id) } }
                            td {
                                @for v in registrations {
                                    div { code { (v.smartcar_vehicle_id) }
                                        @if !v.is_active { " " span.badge.skipped { "inactive" } } }
                                }
                            }
                            td {
                                @match f.last_readings.iter().find(|r| r.vehicle_id == *id).and_then(|r| r.at) {
                                    Some(at) => { (ago(now, at)) }
                                    None => { span.muted { "none" } }
                                }
                            }
                            td.num { (open) }
                        }
                    }
                }
            }
            (more(total, end, "vehicles", format!("/ui/?vehicles={end}#vehicles")))
        }
    }
}
