//! The status pages under `/ui/`, rendered here as HTML with inline SVG charts: the overview
//! (`/ui/`), a vehicle's odometer and health (`/ui/vehicles/{vehicle_id}`) and the recent events
//! (`/ui/events`). Read-only, no script, nothing loaded from another host.
//!
//! Off unless `METERHOOK_UI_PASSWORD` is set; then every path under `/ui` (unknown ones too)
//! answers only a request with `Authorization: Basic` and that password, which browsers send
//! once the user has typed it. Every answer carries `Cache-Control: no-store` and a
//! `Content-Security-Policy` that allows nothing but the page's own stylesheet.

mod chart;
mod events;
mod layout;
mod overview;
mod vehicle;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse, ResponseError};
use maud::html;
use meterhook_domain::Outcome;
use meterhook_store::SyncStatus;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::ApiError;
use crate::state::AppState;

/// Registers the pages, all behind the password.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(from_fn(guard))
            .route("", web::get().to(overview::show))
            .route("/", web::get().to(overview::show))
            .route("/events", web::get().to(events::show))
            .route("/vehicles/{vehicle_id}", web::get().to(vehicle::show))
            .default_service(web::to(not_found)),
    );
}

/// Lets through only requests with the password, and sets the headers every answer carries.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let admitted = match req.app_data::<web::Data<AppState>>() {
        Some(state) => crate::auth::check(req.request(), state, crate::auth::Realm::Ui),
        None => Err(ApiError::BadPassword),
    };
    let mut response = match admitted {
        Ok(()) => next.call(req).await?.map_into_left_body(),
        Err(refused) => {
            let refused = PageError(refused).error_response();
            req.into_response(refused).map_into_right_body()
        }
    };
    protect(response.headers_mut());
    Ok(response)
}

fn protect(headers: &mut HeaderMap) {
    // Pages show vehicle ids and errors: no copy stays in a cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&layout::CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn not_found() -> Result<HttpResponse, PageError> {
    Err(ApiError::NotFound("there is no such page".into()).into())
}

/// An error shown as a page: the status and headers of the HTTP error policy
/// (`crate::error`), the message as HTML.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] ApiError);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = layout::page(
            layout::Section::Vehicle,
            title,
            html! {
                p { (self.0.to_string()) }
                p { a href="/ui/" { "Back to the overview" } }
            },
        );
        let mut response = self.0.error_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response.set_body(body.into_string()).map_into_boxed_body()
    }
}

/// A rendered page, 200.
fn html_page(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// Characters left as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The link to an app vehicle's page.
fn vehicle_href(vehicle_id: &str) -> String {
    format!("/ui/vehicles/{}", utf8_percent_encode(vehicle_id, SEGMENT))
}

/// The group an outcome is counted in: the sync log's status.
fn status_of(outcome: &str) -> SyncStatus {
    outcome
        .parse::<Outcome>()
        .map_or(SyncStatus::Failed, SyncStatus::for_outcome)
}

/// A status's CSS class and chart colour.
fn status_style(status: SyncStatus) -> (&'static str, &'static str) {
    use layout::colour;
    match status {
        SyncStatus::Success => ("success", colour::SUCCESS),
        SyncStatus::Skipped => ("skipped", colour::SKIPPED),
        SyncStatus::Rejected => ("rejected", colour::REJECTED),
        SyncStatus::Failed => ("failed", colour::FAILED),
    }
}

/// An outcome as a coloured badge; the colour repeats what the text says.
fn outcome_badge(outcome: &str) -> maud::Markup {
    let (class, _) = status_style(status_of(outcome));
    html! { span class=(format!("badge {class}")) { (outcome) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicle_links_encode_the_id_as_one_segment() {
        assert_eq!(vehicle_href("car-1_a.b~"), "/ui/vehicles/car-1_a.b~");
        assert_eq!(
            vehicle_href("<a b>/?#%"),
            "/ui/vehicles/%3Ca%20b%3E%2F%3F%23%25"
        );
        assert_eq!(vehicle_href("é"), "/ui/vehicles/%C3%A9");
    }

    #[test]
    fn every_outcome_has_a_status_colour() {
        for outcome in Outcome::ALL {
            assert_eq!(
                status_of(outcome.as_str()),
                SyncStatus::for_outcome(outcome)
            );
        }
        assert_eq!(status_of("not-an-outcome"), SyncStatus::Failed);
    }
}
