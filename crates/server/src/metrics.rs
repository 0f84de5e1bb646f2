//! `GET /metrics`: Prometheus (OpenMetrics text) figures. No secrets and no per-vehicle labels:
//! every label takes a small, fixed set of values.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of the events counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    /// `VERIFY`, `VEHICLE_STATE`, `VEHICLE_ERROR` or `other`.
    event_type: String,
    /// An outcome name, `already_received`, `spooled`, `challenge_answered`, `challenge_refused`.
    outcome: String,
}

/// The process's counters, and gauges filled from the database at scrape time.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    signature_failures: Counter,
    processing: Histogram,
    unprocessed: Gauge,
    dead: Gauge,
    spooled: Gauge,
    newest_age: Gauge<f64, AtomicU64>,
    needing_reconnection: Gauge,
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
        Metrics {
            registry,
            events,
            signature_failures,
            processing,
            unprocessed,
            dead,
            spooled,
            newest_age,
            needing_reconnection,
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

    /// Counts a refused signature.
    pub fn signature_failure(&self) {
        self.signature_failures.inc();
    }

    /// Records how long a delivery took to store and process.
    pub fn ingest_took(&self, took: Duration) {
        self.processing.observe(took.as_secs_f64());
    }

    /// Sets the backlog gauges.
    pub fn set_backlog(&self, unprocessed: i64, dead: i64, spooled: i64, newest_age: Option<f64>) {
        self.unprocessed.set(unprocessed);
        self.dead.set(dead);
        self.spooled.set(spooled);
        self.newest_age.set(newest_age.unwrap_or(-1.0));
    }

    /// Sets the count of vehicles that need their owner.
    pub fn set_needing_reconnection(&self, vehicles: i64) {
        self.needing_reconnection.set(vehicles);
    }

    /// Sets the spool gauge alone (readable while the database is not).
    pub fn set_spooled(&self, spooled: i64) {
        self.spooled.set(spooled);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
