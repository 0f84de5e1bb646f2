//! A delivery, classified once into the work the store does with it.

use chrono::NaiveDateTime;
use meterhook_domain::Millis;
use meterhook_smartcar::{parse_event, Event, EventId, EventType, ParseError};
use meterhook_store::{
    to_millis, ErrorReport, EventRecord, NewSignal, Odometer, Origin, Outcome, Work, WorkItem,
};

/// A verified delivery (or a stored event taken up again), classified: what the store is to do
/// with it is decided here, once, whatever path brought it.
#[derive(Debug, Clone)]
pub struct Delivery {
    event_id: String,
    event_type: String,
    smartcar_vehicle_id: Option<String>,
    payload: String,
    received_at: NaiveDateTime,
    origin: Source,
    work: Task,
}

/// Where a delivery comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Received,
    Stored { attempts: i32 },
}

/// The owned form of [`Work`].
#[derive(Debug, Clone)]
enum Task {
    Complete {
        outcome: Outcome,
        error: Option<String>,
        sync: Option<(&'static str, String)>,
    },
    State {
        signals: Vec<NewSignal>,
        odometer: Reading,
    },
    Errors {
        reports: Vec<ErrorReport>,
        data: String,
    },
}

#[derive(Debug, Clone)]
enum Reading {
    Missing,
    Unusable(String),
    Reading(meterhook_domain::Reading),
}

impl Delivery {
    /// A verified, parsed delivery received at `received_at`. `body` is the raw body, which parsed,
    /// so it is UTF-8.
    pub fn received(event: &Event, body: &[u8], received_at: NaiveDateTime) -> Delivery {
        Delivery::classify(
            event,
            String::from_utf8_lossy(body).into_owned(),
            received_at,
            Source::Received,
        )
    }

    /// A verified delivery that is not an acceptable event (not a JSON object, or breaking the
    /// limits of [`meterhook_smartcar::limits`]): kept as received with the outcome `malformed`,
    /// as hex when it is not UTF-8 or holds a NUL byte (which PostgreSQL's `TEXT` refuses).
    pub fn malformed(body: &[u8], error: &ParseError, received_at: NaiveDateTime) -> Delivery {
        let message = error.to_string();
        let (payload, note) = match std::str::from_utf8(body) {
            Ok(text) if !text.contains('\0') => (text.to_owned(), message),
            Ok(_) => (
                format!("hex:{}", base16ct::lower::encode_string(body)),
                format!("{message}; the body holds a NUL byte, so payload holds its bytes as hex"),
            ),
            Err(_) => (
                format!("hex:{}", base16ct::lower::encode_string(body)),
                format!("{message}; the body is not UTF-8, so payload holds its bytes as hex"),
            ),
        };
        Delivery {
            event_id: EventId::from_body(body).value,
            event_type: "UNKNOWN".to_owned(),
            smartcar_vehicle_id: None,
            payload,
            received_at,
            origin: Source::Received,
            work: Task::Complete {
                outcome: Outcome::Malformed,
                error: Some(note),
                sync: None,
            },
        }
    }

    /// A stored, unprocessed event taken up again (a retry, a reprocessing).
    pub fn stored(record: &EventRecord) -> Delivery {
        Delivery::from_record(
            record,
            Source::Stored {
                attempts: record.attempts,
            },
        )
    }

    /// An event kept in the outage spool, now received by the main database.
    pub fn unspooled(record: &EventRecord) -> Delivery {
        Delivery::from_record(record, Source::Received)
    }

    fn from_record(record: &EventRecord, origin: Source) -> Delivery {
        match parse_event(record.payload.as_bytes()) {
            Ok(event) => {
                let mut d =
                    Delivery::classify(&event, record.payload.clone(), record.received_at, origin);
                // The stored identity stays, whatever the parser makes of the body now.
                d.event_id.clone_from(&record.event_id);
                d
            }
            Err(e) => Delivery {
                event_id: record.event_id.clone(),
                event_type: record.event_type.clone(),
                smartcar_vehicle_id: record.smartcar_vehicle_id.clone(),
                payload: record.payload.clone(),
                received_at: record.received_at,
                origin,
                work: Task::Complete {
                    outcome: Outcome::Malformed,
                    error: Some(format!("stored body no longer parses: {e}")),
                    sync: None,
                },
            },
        }
    }

    fn classify(
        event: &Event,
        payload: String,
        received_at: NaiveDateTime,
        origin: Source,
    ) -> Delivery {
        let received_ms = to_millis(received_at);
        let about_a_vehicle = matches!(
            event.event_type,
            EventType::VehicleState | EventType::VehicleError
        );
        let work = match (&event.event_type, event.vehicle_id.as_deref()) {
            (_, None) if about_a_vehicle => Task::Complete {
                outcome: Outcome::InvalidReading,
                error: Some(
                    "the event names no vehicle (no vehicleId, no data.vehicle.id)".to_owned(),
                ),
                sync: None,
            },
            (EventType::VehicleState, _) => Task::State {
                signals: signal_rows(event, received_ms),
                odometer: match event.odometer_reading(received_ms) {
                    None => Reading::Missing,
                    Some(Err(e)) => Reading::Unusable(format!("odometer signal unusable: {e}")),
                    Some(Ok(reading)) => Reading::Reading(reading),
                },
            },
            (EventType::VehicleError, _) => Task::Errors {
                reports: error_reports(event),
                data: error_data(event).to_string(),
            },
            (EventType::Verify | EventType::Other(_), _) => Task::Complete {
                outcome: Outcome::Ignored,
                error: None,
                sync: None,
            },
        };
        Delivery {
            event_id: event.id.value.clone(),
            event_type: event.event_type.as_str().to_owned(),
            smartcar_vehicle_id: event.vehicle_id.clone(),
            payload,
            received_at,
            origin,
            work,
        }
    }

    /// Its identity (`eventId`, or the body hash).
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// Its event type, as stored.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The Smartcar vehicle it is about, when known.
    pub fn smartcar_vehicle_id(&self) -> Option<&str> {
        self.smartcar_vehicle_id.as_deref()
    }

    /// Processing attempts made before this one.
    pub(crate) fn attempts(&self) -> i32 {
        match self.origin {
            Source::Received => 0,
            Source::Stored { attempts } => attempts,
        }
    }

    /// The store's view of it.
    pub(crate) fn item(&self) -> WorkItem<'_> {
        WorkItem {
            event_id: &self.event_id,
            event_type: &self.event_type,
            smartcar_vehicle_id: self.smartcar_vehicle_id.as_deref(),
            origin: match self.origin {
                Source::Received => Origin::Received {
                    payload: &self.payload,
                    received_at: self.received_at,
                },
                Source::Stored { attempts } => Origin::Stored { attempts },
            },
            work: match &self.work {
                Task::Complete {
                    outcome,
                    error,
                    sync,
                } => Work::Complete {
                    outcome: *outcome,
                    error: error.as_deref(),
                    sync: sync.as_ref().map(|(kind, data)| (*kind, data.as_str())),
                },
                Task::State { signals, odometer } => Work::State {
                    signals,
                    odometer: match odometer {
                        Reading::Missing => Odometer::Missing,
                        Reading::Unusable(message) => Odometer::Unusable(message),
                        Reading::Reading(reading) => Odometer::Reading(*reading),
                    },
                },
                Task::Errors { reports, data } => Work::Errors { reports, data },
            },
        }
    }

    /// The raw body as stored, for the outage spool.
    pub(crate) fn spooled_row(&self) -> meterhook_store::NewEvent<'_> {
        meterhook_store::NewEvent::pending(
            &self.event_id,
            &self.event_type,
            self.smartcar_vehicle_id.as_deref(),
            &self.payload,
            self.received_at,
        )
    }
}

/// Every value of every signal of a state event, as the store keeps them.
fn signal_rows(event: &Event, received_at: Millis) -> Vec<NewSignal> {
    event
        .signals
        .iter()
        .flat_map(|signal| {
            let raw = serde_json::json!({
                "code": signal.code,
                "name": signal.name,
                "group": signal.group,
                "body": signal.body,
                "meta": { "oemUpdatedAt": signal.oem_updated_at, "retrievedAt": signal.retrieved_at },
            })
            .to_string();
            let observed_at = signal.observed_at(received_at);
            signal.values().into_iter().map(move |v| NewSignal {
                code: v.code,
                value: v.value,
                unit: v.unit,
                raw: raw.clone(),
                observed_at,
            })
        })
        .collect()
}

fn error_reports(event: &Event) -> Vec<ErrorReport> {
    event
        .errors
        .iter()
        .map(|e| ErrorReport {
            error_type: e.error_type.clone().unwrap_or_default(),
            code: e.code.clone().unwrap_or_default(),
            resolved: e.is_resolved(),
            description: e.description.clone(),
            suggested_user_message: e.suggested_user_message.clone(),
            resolution_type: e.resolution_type.clone(),
            doc_url: e.doc_url.clone(),
        })
        .collect()
}

fn error_data(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "errors": event.errors.iter().map(|e| serde_json::json!({
            "type": e.error_type,
            "code": e.code,
            "state": e.state,
            "description": e.description,
            "suggestedUserMessage": e.suggested_user_message,
            "resolution": e.resolution_type,
            "signals": e.signals,
        })).collect::<Vec<_>>(),
    })
}
