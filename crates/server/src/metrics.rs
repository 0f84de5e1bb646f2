//! `GET /metrics`: Prometheus (OpenMetrics text) figures. No secrets and no per-vehicle labels:
//! every label takes a small, fixed set of values.
//!
//! A scrape reads memory only: the gauges that come from the database are refreshed by a
//! background task at a fixed interval ([`Metrics::refresh_backlog`]), so scrapes, however many,
//! never query the database.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use meterhook_store::Store;

use crate::rejections::Noted;

/// Labels of the events counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    /// `VERIFY`, `VEHICLE_STATE`, `VEHICLE_ERROR` or `other`.
    event_type: String,
    /// An outcome name, `already_received`, `spooled`, `challenge_answered`, `challenge_refused`.
    outcome: String,
}

/// Labels of the refusals counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// `queue_full` or `spool_full`.
    reason: &'static str,
}

/// Labels of the notification attempts counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    /// `delivered`, `rejected`, `timeout` or `unreachable`.
    result: &'static str,
}

/// Labels of the failed logins counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthFailureLabels {
    /// `api` (bearer token) or `ui` (Basic password).
    realm: &'static str,
    /// `missing` (no credentials, 401), `wrong` (401) or `throttled` (429).
    reason: &'static str,
}

/// The process's counters, and gauges refreshed from the database in the background.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    signature_failures: Counter,
    invalid_signatures: Counter,
    last_invalid_signature: Gauge,
    refusals: Family<RefusalLabels, Counter>,
    auth_failures: Family<AuthFailureLabels, Counter>,
    processing: Histogram,
    unprocessed: Gauge,
    dead: Gauge,
    spooled: Gauge,
    spool_limit: Gauge,
    queued: Gauge,
    newest_age: Gauge<f64, AtomicU64>,
    needing_reconnection: Gauge,
    notify_attempts: Family<AttemptLabels, Counter>,
    notify_lag_records: Gauge,
    notify_lag_seconds: Gauge<f64, AtomicU64>,
    notify_failed: Gauge,
    /// Whether notifications are on (their gauges are read then only).
    notify_on: std::sync::atomic::AtomicBool,
    /// When the newest stored event arrived, epoch ms (`i64::MIN`: none, or not read yet); the
    /// age is worked out from it at each scrape.
    newest_at_ms: AtomicI64,
}

/// Deliveries refused for an invalid signature since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSignatures {
    /// How many.
    pub count: u64,
    /// When the last one was refused.
    pub last: Option<chrono::NaiveDateTime>,
}

/// The backlog gauges as read from the database and the spool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Stored events not processed yet.
    pub unprocessed: i64,
    /// Events whose processing failed every attempt.
    pub dead: i64,
    /// When the newest stored event arrived.
    pub newest_at: Option<chrono::NaiveDateTime>,
    /// Registered vehicles that need their owner.
    pub needing_reconnection: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("meterhook");
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_received",
            "Webhook deliveries by event type and outcome",
            events.clone(),
        );
        let signature_failures = Counter::default();
        registry.register(
            "signature_failures",
            "Deliveries refused for a missing or invalid SC-Signature",
            signature_failures.clone(),
        );
        let invalid_signatures = Counter::default();
        registry.register(
            "invalid_signatures",
            "Deliveries refused because their SC-Signature matches none of the signing keys (a part of signature_failures): most likely Smartcar signs with another token",
            invalid_signatures.clone(),
        );
        let last_invalid_signature = Gauge::default();
        registry.register(
            "last_invalid_signature_timestamp_seconds",
            "When the last delivery with an invalid SC-Signature was refused, in seconds since the epoch (0: none since the start)",
            last_invalid_signature.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        // Both reasons from the start, at 0: the series exist before the first refusal, so that
        // `increase()` sees the first one and dashboards find the metric.
        for reason in ["queue_full", "spool_full"] {
            let _ = refusals.get_or_create(&RefusalLabels { reason });
        }
        registry.register(
            "deliveries_refused",
            "Signed deliveries answered 503 because the writers' queues (queue_full) or the outage spool (spool_full) were full",
            refusals.clone(),
        );
        let auth_failures = Family::<AuthFailureLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Requests to the API (realm api) or the status pages (realm ui) refused for missing credentials (401), wrong ones (401) or too many wrong ones lately (throttled, 429)",
            auth_failures.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queue_depth",
            "Deliveries waiting for a writer now",
            queued.clone(),
        );
        let spool_limit = Gauge::default();
        registry.register(
            "spool_limit",
            "Events the outage spool may hold (0 without a spool); compare with backlog_spooled",
            spool_limit.clone(),
        );
        let processing = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "ingest_duration_seconds",
            "Time to store and process one delivery",
            processing.clone(),
        );
        let unprocessed = Gauge::default();
        registry.register(
            "backlog_unprocessed",
            "Stored events not processed yet",
            unprocessed.clone(),
        );
        let dead = Gauge::default();
        registry.register(
            "backlog_dead",
            "Events whose processing failed every attempt",
            dead.clone(),
        );
        let spooled = Gauge::default();
        registry.register(
            "backlog_spooled",
            "Events in the local spool, waiting for PostgreSQL",
            spooled.clone(),
        );
        let newest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "newest_event_age_seconds",
            "Seconds since the newest stored event arrived (-1 when there is none)",
            newest_age.clone(),
        );
        let needing_reconnection = Gauge::default();
        registry.register(
            "vehicles_needing_reconnection",
            "Vehicles with an open error only their owner can fix (reconnect, renew, grant)",
            needing_reconnection.clone(),
        );
        let notify_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "notify_attempts",
            "Attempts to send a change to METERHOOK_NOTIFY_URL, by result (delivered, rejected, timeout, unreachable)",
            notify_attempts.clone(),
        );
        let notify_lag_records = Gauge::default();
        registry.register(
            "notify_lag_records",
            "Changes recorded and not yet delivered to METERHOOK_NOTIFY_URL (nor given up on)",
            notify_lag_records.clone(),
        );
        let notify_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "notify_lag_seconds",
            "Age of the oldest change not yet delivered (0 when none waits)",
            notify_lag_seconds.clone(),
        );
        let notify_failed = Gauge::default();
        registry.register(
            "notify_failed",
            "Changes given up on after every retry (meterhook notify retry --failed sends them again)",
            notify_failed.clone(),
        );
        Metrics {
            registry,
            notify_attempts,
            notify_lag_records,
            notify_lag_seconds,
            notify_failed,
            notify_on: std::sync::atomic::AtomicBool::new(false),
            events,
            signature_failures,
            invalid_signatures,
            last_invalid_signature,
            refusals,
            auth_failures,
            processing,
            unprocessed,
            dead,
            spooled,
            spool_limit,
            queued,
            newest_age,
            needing_reconnection,
            newest_at_ms: AtomicI64::new(i64::MIN),
        }
    }
}

const KNOWN_TYPES: [&str; 3] = ["VERIFY", "VEHICLE_STATE", "VEHICLE_ERROR"];

impl Metrics {
    /// Counts a delivery.
    pub fn event(&self, event_type: &str, outcome: &str) {
        let event_type = KNOWN_TYPES
            .iter()
            .find(|t| **t == event_type)
            .map_or("other", |t| *t);
        self.events
            .get_or_create(&EventLabels {
                event_type: event_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a delivery refused for its signature: `what` is missing or invalid.
    pub fn signature_failure(&self, what: Noted) {
        self.signature_failures.inc();
        if what == Noted::InvalidSignature {
            self.invalid_signatures.inc();
            self.last_invalid_signature
                .set(chrono::Utc::now().timestamp());
        }
    }

    /// The deliveries refused for an invalid signature since the start, and the last one's time.
    pub fn invalid_signatures(&self) -> InvalidSignatures {
        InvalidSignatures {
            count: self.invalid_signatures.get(),
            last: chrono::DateTime::from_timestamp(self.last_invalid_signature.get(), 0)
                .filter(|_| self.invalid_signatures.get() > 0)
                .map(|t| t.naive_utc()),
        }
    }

    /// Records how long a delivery took to store and process.
    pub fn ingest_took(&self, took: Duration) {
        self.processing.observe(took.as_secs_f64());
    }

    /// Counts a signed delivery refused with 503 for `reason` (`queue_full`, `spool_full`).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Counts a request refused by `realm`'s credentials check for `reason` (`missing`,
    /// `wrong`, `throttled`).
    pub fn auth_failure(&self, realm: crate::auth::Realm, reason: &'static str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels {
                realm: realm.as_str(),
                reason,
            })
            .inc();
    }

    /// Sets the spool's capacity (0 without a spool).
    pub fn set_spool_limit(&self, limit: u64) {
        self.spool_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Sets the backlog gauges read from the database.
    pub fn set_backlog(&self, backlog: &Backlog) {
        self.unprocessed.set(backlog.unprocessed);
        self.dead.set(backlog.dead);
        self.needing_reconnection.set(backlog.needing_reconnection);
        self.newest_at_ms.store(
            backlog
                .newest_at
                .map_or(i64::MIN, |t| t.and_utc().timestamp_millis()),
            Ordering::Relaxed,
        );
    }

    /// Counts an attempt to send a change.
    pub fn notify_attempt(&self, result: meterhook_store::AttemptResult) {
        self.notify_attempts
            .get_or_create(&AttemptLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// Turns the notification gauges on (refreshed with the backlog from then on).
    pub fn notify_on(&self) {
        self.notify_on.store(true, Ordering::Relaxed);
        for result in meterhook_store::AttemptResult::ALL {
            let _ = self.notify_attempts.get_or_create(&AttemptLabels {
                result: result.as_str(),
            });
        }
    }

    /// Whether notifications are on.
    pub fn notifying(&self) -> bool {
        self.notify_on.load(Ordering::Relaxed)
    }

    /// Sets the notification gauges.
    pub fn set_notify(&self, status: &meterhook_store::NotifyStatus) {
        self.notify_lag_records.set(status.lag_records());
        self.notify_failed.set(status.failed);
        self.notify_lag_seconds
            .set(status.oldest_unsent_at.map_or(0.0, |t| {
                (meterhook_store::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            }));
    }

    /// Sets the spool gauge alone (readable while the database is not).
    pub fn set_spooled(&self, spooled: i64) {
        self.spooled.set(spooled);
    }

    /// Reads the backlog from `store` and `spool` into the gauges; blocking. Run by the
    /// background task, never by a scrape. A gauge whose source cannot be read keeps its last
    /// value.
    pub fn refresh_backlog(&self, store: &Store, spool: Option<&Store>) {
        if let Some(spool) = spool {
            match spool.unprocessed_count() {
                Ok(n) => self.set_spooled(n),
                Err(e) => log::warn!("metrics: spool unavailable: {e}"),
            }
        }
        let backlog = store.backlog().and_then(|backlog| {
            Ok(Backlog {
                unprocessed: backlog.unprocessed(),
                dead: backlog.dead,
                newest_at: store.newest_event_at()?,
                needing_reconnection: store.vehicles_needing_reconnection()?,
            })
        });
        match backlog {
            Ok(backlog) => self.set_backlog(&backlog),
            // The counters are still worth scraping while the database is away.
            Err(e) => log::warn!("metrics: backlog unavailable: {e}"),
        }
        if self.notify_on.load(Ordering::Relaxed) {
            match store.notify_status() {
                Ok(status) => self.set_notify(&status),
                Err(e) => log::warn!("metrics: notification status unavailable: {e}"),
            }
        }
    }

    /// The OpenMetrics text, with the queue depth `queued` now and the age of the newest event
    /// worked out from the time it arrived.
    pub fn encode_now(&self, queued: usize) -> Result<String, std::fmt::Error> {
        self.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        let newest = self.newest_at_ms.load(Ordering::Relaxed);
        self.newest_age.set(if newest == i64::MIN {
            -1.0
        } else {
            (chrono::Utc::now().timestamp_millis() - newest) as f64 / 1000.0
        });
        self.encode()
    }

    /// The OpenMetrics text, as the gauges stand.
    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
