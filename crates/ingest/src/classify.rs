//! A delivery classified once into the work the store does with it: the ingest crate's
//! constructors of [`meterhook_store::Delivery`], the one type every path shares (received,
//! retried, reprocessed, unspooled, waiting for its vehicle).

use std::time::Duration;

use chrono::NaiveDateTime;
use meterhook_domain::{Millis, Outcome, DEFAULT_MAX_CLOCK_SKEW};
use meterhook_smartcar::{
    parse_event, Event, EventId, EventType, OdometerError, OdometerReading, ParseError,
};
use meterhook_store::{
    to_millis, to_timestamp, Arrival, Delivery, ErrorReport, EventRecord, NewSignal, Odometer,
    Work, MIN_RETENTION_DAYS,
};

/// How deliveries are classified: the rules applied to a delivery before the store sees it. Plain
/// values, the same for every path a delivery takes (received, retried, reprocessed, unspooled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intake {
    /// A car's observation time later than the receipt by more than this is not trusted: the
    /// retrieval time (when sane) or the receipt time dates the values instead.
    pub max_clock_skew: Duration,
    /// Whether TEST-mode deliveries (the dashboard's test events) are processed like live ones.
    /// By default they are kept with the outcome `test_event`: their signals stored and marked as
    /// test, no meter entry, no vehicle error.
    pub process_test_events: bool,
    /// Events received longer ago than this are pruned (the events' retention), so their ids no
    /// longer stop a redelivery: a delivery Smartcar sent longer ago than this is a replay of an
    /// old capture (`replayed`; Smartcar itself retries within minutes). `None` while events are
    /// kept for good: their ids stop every replay.
    pub replay_window: Option<Duration>,
}

impl Default for Intake {
    /// Five minutes of clock tolerance; test events kept apart; events kept for good.
    fn default() -> Self {
        Intake {
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            process_test_events: false,
            replay_window: None,
        }
    }
}

/// A verified, parsed delivery received at `received_at`, classified: one delivery, or one per
/// vehicle of a v2 (legacy) body with vehicle data (each under its own id, `<id>/<vehicleId>`,
/// when there are several). `body` is the raw body, which parsed, so it is UTF-8.
pub fn received(
    event: &Event,
    body: &[u8],
    received_at: NaiveDateTime,
    intake: &Intake,
) -> Vec<Delivery> {
    let arrival = Arrival::Received {
        payload: String::from_utf8_lossy(body).into_owned(),
        received_at,
    };
    classify(event, arrival, received_at, intake)
}

/// A verified delivery that is not an acceptable event (not a JSON object, or breaking the
/// limits of [`meterhook_smartcar::limits`]): kept as received with the outcome `malformed`, as
/// hex when it is not UTF-8 or holds a NUL byte (which PostgreSQL's `TEXT` refuses).
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
        arrival: Arrival::Received {
            payload,
            received_at,
        },
        work: Work::Complete {
            outcome: Outcome::Malformed,
            error: Some(note),
        },
    }
}

/// A stored, unprocessed event taken up again (a retry, a reprocessing, a wait for its vehicle).
pub fn stored(record: &EventRecord, intake: &Intake) -> Delivery {
    let arrival = Arrival::Stored {
        attempts: record.attempts,
    };
    from_record(record, arrival, intake)
}

/// An event kept in the outage spool, now received by the main database.
pub fn unspooled(record: &EventRecord, intake: &Intake) -> Delivery {
    let arrival = Arrival::Received {
        payload: record.payload.clone(),
        received_at: record.received_at,
    };
    from_record(record, arrival, intake)
}

fn from_record(record: &EventRecord, arrival: Arrival, intake: &Intake) -> Delivery {
    match parse_event(record.payload.as_bytes()) {
        Ok(event) => {
            let mut all = classify(&event, arrival, record.received_at, intake);
            // The stored row is one vehicle's delivery: the one of its id, else its vehicle.
            let at = all
                .iter()
                .position(|d| d.event_id == record.event_id)
                .or_else(|| {
                    all.iter()
                        .position(|d| d.smartcar_vehicle_id == record.smartcar_vehicle_id)
                })
                .unwrap_or(0);
            let mut d = all.swap_remove(at.min(all.len().saturating_sub(1)));
            // The stored identity stays, whatever the parser makes of the body now.
            d.event_id.clone_from(&record.event_id);
            d
        }
        Err(e) => Delivery {
            event_id: record.event_id.clone(),
            event_type: record.event_type.clone(),
            smartcar_vehicle_id: record.smartcar_vehicle_id.clone(),
            arrival,
            work: Work::Complete {
                outcome: Outcome::Malformed,
                error: Some(format!("stored body no longer parses: {e}")),
            },
        },
    }
}

fn classify(
    event: &Event,
    arrival: Arrival,
    received_at: NaiveDateTime,
    intake: &Intake,
) -> Vec<Delivery> {
    let mut all = classify_fresh(event, arrival, received_at, intake);
    if let Some(error) = intake
        .replay_window
        .and_then(|window| replayed(event, received_at, window))
    {
        for d in &mut all {
            d.work = Work::Complete {
                outcome: Outcome::Replayed,
                error: Some(error.clone()),
            };
        }
    }
    all
}

/// Why `event` is a replay, when Smartcar sent it (`meta.deliveredAt`, else when it retrieved
/// the newest signal) longer before it arrived than `window` ([`Intake::replay_window`], never
/// under [`MIN_RETENTION_DAYS`]). A body that says neither (the seed's shortened form) cannot
/// be told apart and is judged on its id alone.
fn replayed(event: &Event, received_at: NaiveDateTime, window: Duration) -> Option<String> {
    let sent = event
        .meta
        .delivered_at
        .or_else(|| event.signals.iter().filter_map(|s| s.retrieved_at).max())?;
    let age = to_millis(received_at).0.saturating_sub(sent);
    let floor = Duration::from_secs(u64::try_from(MIN_RETENTION_DAYS).unwrap_or(7) * 86_400);
    let limit = i64::try_from(window.max(floor).as_millis()).unwrap_or(i64::MAX);
    (age > limit).then(|| {
        format!(
            "sent {} days before it arrived, longer ago than the events' retention ({} days): \
             a replay of an old capture, whose id may have been pruned; nothing done",
            age / 86_400_000,
            limit / 86_400_000
        )
    })
}

fn classify_fresh(
    event: &Event,
    arrival: Arrival,
    received_at: NaiveDateTime,
    intake: &Intake,
) -> Vec<Delivery> {
    if event.vehicles.is_empty() {
        return vec![classify_one(event, arrival, received_at, intake)];
    }
    // v2 scheduled or dynamic data: each vehicle's odometer is a reading of its own.
    let received_ms = to_millis(received_at);
    let test = event.is_test() && !intake.process_test_events;
    let several = event.vehicles.len() > 1;
    event
        .vehicles
        .iter()
        .map(|vehicle| {
            let odometer = match &vehicle.odometer {
                None => Odometer::Missing,
                Some(odometer) => {
                    odometer_work(odometer.reading(received_ms, intake.max_clock_skew))
                }
            };
            let event_id = match (&vehicle.vehicle_id, several) {
                (Some(id), true) => format!("{}/{id}", event.id.value),
                _ => event.id.value.clone(),
            };
            Delivery {
                event_id,
                event_type: event.event_type.as_str().to_owned(),
                smartcar_vehicle_id: vehicle.vehicle_id.clone(),
                arrival: arrival.clone(),
                work: match vehicle.vehicle_id {
                    None => Work::Complete {
                        outcome: Outcome::InvalidReading,
                        error: Some("a v2 vehicle entry has no vehicleId".to_owned()),
                    },
                    Some(_) => Work::State {
                        signals: Vec::new(),
                        odometer,
                        test,
                    },
                },
            }
        })
        .collect()
}

fn classify_one(
    event: &Event,
    arrival: Arrival,
    received_at: NaiveDateTime,
    intake: &Intake,
) -> Delivery {
    let received_ms = to_millis(received_at);
    let about_a_vehicle = matches!(
        event.event_type,
        EventType::VehicleState | EventType::VehicleError
    );
    let test = event.is_test() && !intake.process_test_events;
    let work = match (&event.event_type, event.vehicle_id.as_deref()) {
        (_, None) if about_a_vehicle => Work::Complete {
            outcome: Outcome::InvalidReading,
            error: Some("the event names no vehicle (no vehicleId, no data.vehicle.id)".to_owned()),
        },
        (EventType::VehicleState, _) => Work::State {
            signals: signal_rows(event, received_ms, intake.max_clock_skew),
            odometer: event
                .odometer_reading_with(received_ms, intake.max_clock_skew)
                .map_or(Odometer::Missing, odometer_work),
            test,
        },
        // A test delivery's conditions are made up: they never open a vehicle error.
        (EventType::VehicleError, _) if test => Work::Complete {
            outcome: Outcome::TestEvent,
            error: None,
        },
        (EventType::VehicleError, _) => Work::Errors {
            reports: error_reports(event, received_at),
            data: error_data(event).to_string(),
        },
        (EventType::Verify | EventType::Other(_), _) => Work::Complete {
            outcome: Outcome::Ignored,
            error: None,
        },
    };
    Delivery {
        event_id: event.id.value.clone(),
        event_type: event.event_type.as_str().to_owned(),
        smartcar_vehicle_id: event.vehicle_id.clone(),
        arrival,
        work,
    }
}

/// The raw body as stored, for the outage spool; `None` for a stored event (never spooled).
pub(crate) fn spooled_row(d: &Delivery) -> Option<meterhook_store::NewEvent<'_>> {
    let (payload, received_at) = d.received()?;
    Some(meterhook_store::NewEvent::pending(
        &d.event_id,
        &d.event_type,
        d.smartcar_vehicle_id.as_deref(),
        payload,
        received_at,
    ))
}

/// What to do with an odometer reading, or with why there is none.
fn odometer_work(reading: Result<OdometerReading, OdometerError>) -> Odometer {
    match reading {
        Err(e @ OdometerError::SignalFailed { .. }) => Odometer::Unavailable(e.to_string()),
        Err(e) => Odometer::Unusable(format!("odometer signal unusable: {e}")),
        Ok(odometer) => Odometer::Reading {
            reading: odometer.reading,
            correction: odometer.correction,
        },
    }
}

/// Every value of every signal of a state event, as the store keeps them. Each row keeps the
/// signal as received, narrowed to the value it holds when the signal has several (tires), so the
/// bytes stored stay within a small multiple of the body whatever its shape.
fn signal_rows(event: &Event, received_at: Millis, max_clock_skew: Duration) -> Vec<NewSignal> {
    event
        .signals
        .iter()
        .flat_map(|signal| {
            let meta = serde_json::json!({
                "oemUpdatedAt": signal.oem_updated_at,
                "retrievedAt": signal.retrieved_at,
            });
            let observed_at = signal.observed_at_with(received_at, max_clock_skew).at;
            signal.values().into_iter().map(move |v| {
                let body = match &v.part {
                    Some(part) => {
                        let unit = signal.body.as_ref().and_then(|b| b.get("unit"));
                        serde_json::json!({ "unit": unit, "values": [part] })
                    }
                    None => signal.body.clone().unwrap_or_default(),
                };
                NewSignal {
                    code: v.code,
                    value: v.value,
                    unit: v.unit,
                    raw: serde_json::json!({
                        "code": signal.code,
                        "name": signal.name,
                        "group": signal.group,
                        "body": body,
                        "meta": meta,
                    })
                    .to_string(),
                    observed_at,
                }
            })
        })
        .collect()
}

/// The conditions of a VEHICLE_ERROR, dated when Smartcar sent it (never later than its
/// arrival, so a clock running ahead cannot make later reports look stale).
fn error_reports(event: &Event, received_at: NaiveDateTime) -> Vec<ErrorReport> {
    let reported_at = event
        .meta
        .delivered_at
        .and_then(|ms| to_timestamp(Millis(ms)))
        .map(|t| t.min(received_at));
    event
        .errors
        .iter()
        .map(|e| ErrorReport {
            reported_at,
            error_type: e.error_type.clone().unwrap_or_default(),
            code: e.code.clone().unwrap_or_default(),
            resolved: e.is_resolved(),
            description: e.description.clone(),
            suggested_user_message: e.suggested_user_message.clone(),
            resolution_type: e.resolution_type.clone(),
            doc_url: e.doc_url.clone(),
            needs_owner: e.needs_owner(),
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
