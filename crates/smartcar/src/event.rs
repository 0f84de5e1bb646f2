//! Webhook events: every envelope seen on the wire, normalised into one [`Event`].

use std::fmt;
use std::time::Duration;

use meterhook_domain::{Distance, DistanceUnit, Millis, Reading, DEFAULT_MAX_CLOCK_SKEW};
use serde_json::{Map, Value};

use crate::json;
pub use crate::legacy::{
    DeliveryHeaders, V2Odometer, V2Vehicle, DATA_AGE_HEADER, UNIT_SYSTEM_HEADER,
};
pub use crate::limits::LimitError;
pub use crate::odometer::{OdometerError, OdometerReading};
pub use crate::signal::{
    normalize_unit, Location, Signal, SignalError, SignalKind, SignalValue, MAX_VALUES_PER_SIGNAL,
    ODOMETER_CODE,
};

/// Why a body is not an event at all. Anything else is parsed leniently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not valid JSON (the parser's message).
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotObject,
    /// The body is a JSON object whose strings break the limits or the character policy
    /// ([`crate::limits`]): it could not be stored everywhere, or printed safely.
    #[error("{0}")]
    Refused(#[from] LimitError),
}

/// One webhook delivery, normalised across the v4, v2 and shortened envelopes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The deduplication key.
    pub id: EventId,
    /// `eventType` (v4) or `eventName` (v2).
    pub event_type: EventType,
    /// Top-level `vehicleId`, else `data.vehicle.id`, else v2 `payload.vehicleId`.
    pub vehicle_id: Option<String>,
    /// `data.user.id`.
    pub user_id: Option<String>,
    /// The challenge of a VERIFY event (`data.challenge`, or v2 `payload.challenge`); never set on
    /// other event types. Not yet checked: see [`crate::is_safe_challenge`].
    pub challenge: Option<String>,
    /// `data.signals`, plus a synthetic odometer signal for the shortened `data.odometer` form.
    pub signals: Vec<Signal>,
    /// `data.errors`, or the shortened `data.error`.
    pub errors: Vec<VehicleErrorInfo>,
    /// Top-level `triggers`, then `data.triggers`.
    pub triggers: Vec<Trigger>,
    /// v2 (legacy) scheduled and dynamic deliveries: `payload.vehicles[]`, each with its
    /// `/odometer` data; empty for every other shape.
    pub vehicles: Vec<V2Vehicle>,
    /// Live traffic or a test delivery; see [`Mode`].
    pub mode: Mode,
    /// The delivery metadata.
    pub meta: Meta,
}

/// Whether a delivery is about real cars or is a test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Real vehicles: anything not marked as a test, including no mode at all.
    #[default]
    Live,
    /// The dashboard's test delivery (v4 `meta.mode` `TEST`), or a v2 delivery for a test or
    /// simulated vehicle (`mode` `test` or `simulated`).
    Test,
}

impl Mode {
    /// The mode named `name` (case-insensitive, trimmed): `test` and `simulated` are
    /// [`Mode::Test`]; anything else is [`Mode::Live`].
    pub fn from_name(name: &str) -> Mode {
        let name = name.trim();
        if ["test", "simulated"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
        {
            Mode::Test
        } else {
            Mode::Live
        }
    }

    /// `LIVE` or `TEST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "LIVE",
            Mode::Test => "TEST",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key an event is deduplicated on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    /// `eventId`, or `sha256:<hex>` of the raw body when there is none.
    pub value: String,
    /// Whether `value` is the body hash.
    pub from_body_hash: bool,
}

impl EventId {
    /// The id of an event without `eventId`: `sha256:` and the lowercase hex SHA-256 of `body`.
    pub fn from_body(body: &[u8]) -> EventId {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        EventId {
            value: format!("sha256:{}", base16ct::lower::encode_string(digest.as_ref())),
            from_body_hash: true,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The handshake sent when a webhook is created.
    Verify,
    /// Signal values of a vehicle.
    VehicleState,
    /// An error condition of a vehicle, or its resolution.
    VehicleError,
    /// Any other type, kept as sent (`UNKNOWN` when the body names none).
    Other(String),
}

impl EventType {
    /// The type named `name` (case-insensitive); unknown names are kept as [`EventType::Other`].
    pub fn from_name(name: &str) -> EventType {
        [
            EventType::Verify,
            EventType::VehicleState,
            EventType::VehicleError,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| EventType::Other(name.to_owned()))
    }

    /// `VERIFY`, `VEHICLE_STATE`, `VEHICLE_ERROR`, or the text of an unknown type.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Verify => "VERIFY",
            EventType::VehicleState => "VEHICLE_STATE",
            EventType::VehicleError => "VEHICLE_ERROR",
            EventType::Other(name) => name,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a delivery (`triggers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// E.g. `SIGNAL_UPDATED` or `FIRST_DELIVERY`.
    pub trigger_type: Option<String>,
    /// The signal code; in old captures, whatever text `signal` held.
    pub code: Option<String>,
    /// The signal name.
    pub name: Option<String>,
    /// The signal group.
    pub group: Option<String>,
}

impl Trigger {
    /// Whether this is the first delivery after (re)subscribing, in either spelling.
    pub fn is_first_delivery(&self) -> bool {
        [&self.trigger_type, &self.code]
            .into_iter()
            .flatten()
            .any(|s| s.eq_ignore_ascii_case("FIRST_DELIVERY"))
    }

    fn from_json(value: &Value) -> Option<Trigger> {
        let map = match value {
            Value::Object(map) => map,
            Value::String(code) if !code.is_empty() => {
                return Some(Trigger {
                    trigger_type: None,
                    code: Some(code.clone()),
                    name: None,
                    group: None,
                })
            }
            _ => return None,
        };
        let mut trigger = Trigger {
            trigger_type: json::string(map, "type"),
            code: json::string(map, "code"),
            name: json::string(map, "name"),
            group: json::string(map, "group"),
        };
        match map.get("signal") {
            Some(Value::Object(signal)) => {
                trigger.code = json::string(signal, "code").or(trigger.code);
                trigger.name = json::string(signal, "name").or(trigger.name);
                trigger.group = json::string(signal, "group").or(trigger.group);
            }
            Some(signal) => {
                trigger.code = json::non_empty(signal).map(str::to_owned).or(trigger.code)
            }
            None => {}
        }
        Some(trigger)
    }
}

/// Delivery metadata (`meta`; v2 carries some of it at the top level).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Payload version, e.g. `4.0` or `2.0`.
    pub version: Option<String>,
    /// Changes on every retry, unlike the event id.
    pub delivery_id: Option<String>,
    /// When this attempt was sent, epoch ms (from a number or RFC 3339 text).
    pub delivered_at: Option<i64>,
    /// The webhook's id.
    pub webhook_id: Option<String>,
    /// The webhook's name in the dashboard.
    pub webhook_name: Option<String>,
    /// `meta.mode` (v4) or the top-level `mode` (v2) as sent, e.g. `LIVE`, `TEST`, `simulated`;
    /// [`Event::mode`] is what it means.
    pub mode: Option<String>,
    /// How many signals the event says it carries.
    pub signal_count: Option<i64>,
}

impl Meta {
    fn from_json(root: &Map<String, Value>) -> Meta {
        let meta = json::object(root, "meta");
        let string = |key| {
            meta.and_then(|m| json::string(m, key))
                .or_else(|| json::string(root, key))
        };
        Meta {
            version: string("version"),
            delivery_id: string("deliveryId"),
            delivered_at: meta
                .and_then(|m| json::millis(m, "deliveredAt"))
                .or_else(|| json::millis(root, "deliveredAt")),
            webhook_id: string("webhookId"),
            webhook_name: string("webhookName"),
            mode: string("mode"),
            signal_count: meta
                .and_then(|m| json::integer(m, "signalCount"))
                .or_else(|| json::integer(root, "signalCount")),
        }
    }
}

/// One error condition of a `VEHICLE_ERROR` event (`data.errors[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VehicleErrorInfo {
    /// E.g. `VEHICLE_STATE`, `COMPATIBILITY`, `PERMISSION`.
    pub error_type: Option<String>,
    /// E.g. `UNREACHABLE`, `ASLEEP`.
    pub code: Option<String>,
    /// `ERROR`, or `RESOLVED` when a condition clears.
    pub state: Option<String>,
    /// Developer-facing text.
    pub description: Option<String>,
    /// Text meant for the car's owner.
    pub suggested_user_message: Option<String>,
    /// `docURL`.
    pub doc_url: Option<String>,
    /// `resolution.type`, e.g. `RETRY_LATER`, `REAUTHENTICATE`.
    pub resolution_type: Option<String>,
    /// The affected signals' codes (their names when no code; plain text in old captures).
    pub signals: Vec<String>,
}

impl VehicleErrorInfo {
    /// Whether only the vehicle's owner can clear the condition: the car's connection or the
    /// owner's connected-services account must be renewed (`CONNECTED_SERVICES_ACCOUNT`,
    /// `AUTHENTICATION`, resolution `REAUTHENTICATE`), or permissions granted again
    /// (`PERMISSION`). Conditions that clear by themselves (`VEHICLE_STATE`: asleep, unreachable)
    /// or that no one can (`COMPATIBILITY`) are not.
    pub fn needs_owner(&self) -> bool {
        let is = |value: &Option<String>, names: &[&str]| {
            value
                .as_deref()
                .map(str::trim)
                .is_some_and(|v| names.iter().any(|n| v.eq_ignore_ascii_case(n)))
        };
        is(
            &self.error_type,
            &["CONNECTED_SERVICES_ACCOUNT", "PERMISSION", "AUTHENTICATION"],
        ) || is(&self.resolution_type, &["REAUTHENTICATE"])
            || is(&self.code, &["REAUTHENTICATE", "ACCESS_TOKEN_EXPIRED"])
    }

    /// Whether this reports that the condition has cleared.
    pub fn is_resolved(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("RESOLVED"))
    }

    fn from_json(value: &Value) -> Option<VehicleErrorInfo> {
        let map = match value {
            Value::Object(map) => map,
            // The seed's shortened form: `"error": "Error details"`.
            Value::String(text) if !text.is_empty() => {
                return Some(VehicleErrorInfo {
                    description: Some(text.clone()),
                    ..VehicleErrorInfo::default()
                })
            }
            _ => return None,
        };
        let resolution_type = match map.get("resolution") {
            Some(Value::Object(r)) => json::string(r, "type"),
            Some(other) => json::non_empty(other).map(str::to_owned),
            None => None,
        };
        let signals = json::array(map, "signals")
            .iter()
            .filter_map(|s| match s {
                Value::Object(s) => json::string(s, "code").or_else(|| json::string(s, "name")),
                other => json::non_empty(other).map(str::to_owned),
            })
            .collect();
        Some(VehicleErrorInfo {
            error_type: json::string(map, "type"),
            code: json::string(map, "code"),
            state: json::string(map, "state"),
            description: json::string(map, "description"),
            suggested_user_message: json::string(map, "suggestedUserMessage"),
            doc_url: json::string(map, "docURL").or_else(|| json::string(map, "docUrl")),
            resolution_type,
            signals,
        })
    }
}

impl Event {
    /// The first signal of `kind`.
    pub fn signal(&self, kind: SignalKind) -> Option<&Signal> {
        self.signals.iter().find(|s| s.kind() == kind)
    }

    /// The odometer signal, if the event carries one.
    pub fn odometer(&self) -> Option<&Signal> {
        self.signal(SignalKind::Odometer)
    }

    /// The odometer reading under the default clock tolerance ([`DEFAULT_MAX_CLOCK_SKEW`]); `None`
    /// when there is no odometer signal at all. See [`Event::odometer_reading_with`].
    pub fn odometer_reading(&self, received_at: Millis) -> Option<Result<Reading, OdometerError>> {
        self.odometer_reading_with(received_at, DEFAULT_MAX_CLOCK_SKEW)
            .map(|r| r.map(|r| r.reading))
    }

    /// The odometer reading and the correction of its time, if one was needed; `None` when there
    /// is no odometer signal at all.
    ///
    /// The reading is dated as [`Signal::observed_at_with`] says: `received_at` stands in when the
    /// signal carries no time, and a time more than `max_clock_skew` after `received_at` is
    /// replaced.
    pub fn odometer_reading_with(
        &self,
        received_at: Millis,
        max_clock_skew: Duration,
    ) -> Option<Result<OdometerReading, OdometerError>> {
        Some(odometer_reading(
            self.odometer()?,
            received_at,
            max_clock_skew,
        ))
    }

    /// Every odometer reading the event carries, one per vehicle: the single vehicle's of a v4 or
    /// shortened event (none without an odometer signal), and one per v2 vehicle with `/odometer`
    /// data. Each is dated and corrected as in [`Event::odometer_reading_with`] and
    /// [`V2Odometer::reading`].
    pub fn odometer_readings(
        &self,
        received_at: Millis,
        max_clock_skew: Duration,
    ) -> Vec<VehicleReading> {
        let v4 = self
            .odometer_reading_with(received_at, max_clock_skew)
            .map(|odometer| VehicleReading {
                vehicle_id: self.vehicle_id.clone(),
                odometer,
            });
        let v2 = self.vehicles.iter().filter_map(|vehicle| {
            Some(VehicleReading {
                vehicle_id: vehicle.vehicle_id.clone(),
                odometer: vehicle
                    .odometer
                    .as_ref()?
                    .reading(received_at, max_clock_skew),
            })
        });
        v4.into_iter().chain(v2).collect()
    }

    /// Whether this is a test delivery ([`Mode::Test`]), not live traffic.
    pub fn is_test(&self) -> bool {
        self.mode == Mode::Test
    }
}

/// One vehicle's odometer reading from [`Event::odometer_readings`].
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleReading {
    /// The vehicle, when the event names it (`None` is the caller's to refuse).
    pub vehicle_id: Option<String>,
    /// The reading and its time correction, or why there is no reading.
    pub odometer: Result<OdometerReading, OdometerError>,
}

fn odometer_reading(
    signal: &Signal,
    received_at: Millis,
    max_clock_skew: Duration,
) -> Result<OdometerReading, OdometerError> {
    if signal.failed() {
        let error = signal.error.clone();
        return Err(OdometerError::SignalFailed {
            error_type: error.as_ref().and_then(|e| e.error_type.clone()),
            code: error.and_then(|e| e.code),
        });
    }
    let value = signal.value().ok_or(OdometerError::MissingValue)?;
    let unit = signal.unit().ok_or(OdometerError::MissingUnit)?;
    let unit: DistanceUnit = unit
        .parse()
        .map_err(|_| OdometerError::UnknownUnit(unit.to_owned()))?;
    let distance = Distance::from_value(value, unit)?;
    let time = signal.observed_at_with(received_at, max_clock_skew);
    Ok(OdometerReading {
        reading: Reading::new(distance, time.at),
        correction: time.correction,
    })
}

/// Parses a webhook body. Refused: bytes that are not a JSON object, and objects whose strings
/// break [`crate::limits`] (a control character anywhere, an id or name too long, …). Inside,
/// wrong types are skipped, unknown fields ignored, unknown event types kept.
///
/// The form without request headers: a v2 body's unit system and data age then come only from
/// the body itself. See [`parse_event_with`].
pub fn parse_event(body: &[u8]) -> Result<Event, ParseError> {
    parse_event_with(body, &DeliveryHeaders::default())
}

/// [`parse_event`], with the request's `SC-Unit-System` and `SC-Data-Age` for a v2 body (an
/// entry's own `headers` win over them; other shapes ignore them).
pub fn parse_event_with(body: &[u8], headers: &DeliveryHeaders) -> Result<Event, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::NotObject);
    }
    crate::limits::check_strings(&value)?;
    let Value::Object(root) = value else {
        return Err(ParseError::NotObject);
    };
    let empty = Map::new();
    let data = json::object(&root, "data").unwrap_or(&empty);
    // v2 (legacy) puts the event's content under `payload`.
    let payload = json::object(&root, "payload").unwrap_or(&empty);

    let id = json::string(&root, "eventId").map_or_else(
        || EventId::from_body(body),
        |value| EventId {
            value,
            from_body_hash: false,
        },
    );
    let event_type = json::string(&root, "eventType")
        .or_else(|| json::string(&root, "eventName"))
        .map_or_else(
            || EventType::Other("UNKNOWN".to_owned()),
            |n| EventType::from_name(&n),
        );
    let vehicle_id = json::string(&root, "vehicleId")
        .or_else(|| json::object(data, "vehicle").and_then(|v| json::string(v, "id")))
        .or_else(|| json::string(payload, "vehicleId"));
    let user_id = json::object(data, "user").and_then(|u| json::string(u, "id"));
    // Only a VERIFY is answered with its challenge; keeping it off other events means a caller
    // cannot be tricked into answering one by a differently typed body.
    let challenge = (event_type == EventType::Verify)
        .then(|| json::string(data, "challenge").or_else(|| json::string(payload, "challenge")))
        .flatten();

    let mut signals: Vec<Signal> = json::array(data, "signals")
        .iter()
        .filter_map(Signal::from_json)
        .collect();
    if !signals.iter().any(|s| s.kind() == SignalKind::Odometer) {
        signals.extend(data.get("odometer").and_then(shortened_odometer));
    }

    let mut errors: Vec<VehicleErrorInfo> = json::array(data, "errors")
        .iter()
        .filter_map(VehicleErrorInfo::from_json)
        .collect();
    errors.extend(data.get("error").and_then(VehicleErrorInfo::from_json));

    let triggers = json::array(&root, "triggers")
        .iter()
        .chain(json::array(data, "triggers"))
        .filter_map(Trigger::from_json)
        .collect();

    let meta = Meta::from_json(&root);
    let event = Event {
        id,
        event_type,
        vehicle_id,
        user_id,
        challenge,
        signals,
        errors,
        triggers,
        vehicles: crate::legacy::vehicles(payload, headers),
        mode: meta.mode.as_deref().map_or(Mode::Live, Mode::from_name),
        meta,
    };
    crate::limits::check_event(&event)?;
    Ok(event)
}

/// The seed's `data.odometer` (`{distance, unit}`, or a bare number) as an odometer signal with
/// no times, so its observation time falls back to the time of receipt.
fn shortened_odometer(odometer: &Value) -> Option<Signal> {
    let mut body = Map::new();
    match odometer {
        Value::Object(o) => {
            if let Some(value) = o.get("distance").or_else(|| o.get("value")) {
                body.insert("value".to_owned(), value.clone());
            }
            if let Some(unit) = o.get("unit") {
                body.insert("unit".to_owned(), unit.clone());
            }
        }
        Value::Number(_) | Value::String(_) => {
            // No unit on the wire: it stays missing and the reading is flagged, not guessed.
            body.insert("value".to_owned(), odometer.clone());
        }
        _ => return None,
    }
    Some(Signal {
        code: ODOMETER_CODE.to_owned(),
        name: None,
        group: None,
        body: Some(Value::Object(body)),
        status: None,
        error: None,
        oem_updated_at: None,
        retrieved_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_type(name: &str, expected: EventType, as_str: &str) {
        let parsed = EventType::from_name(name);
        assert_eq!(parsed, expected, "{name}");
        assert_eq!(parsed.as_str(), as_str, "{name}");
    }

    #[test]
    fn event_type_names() {
        check_type("VERIFY", EventType::Verify, "VERIFY");
        check_type("verify", EventType::Verify, "VERIFY");
        check_type("VEHICLE_STATE", EventType::VehicleState, "VEHICLE_STATE");
        check_type("vehicle_error", EventType::VehicleError, "VEHICLE_ERROR");
        check_type(
            "schedule",
            EventType::Other("schedule".to_owned()),
            "schedule",
        );
        check_type(
            "VEHICLE STATE",
            EventType::Other("VEHICLE STATE".to_owned()),
            "VEHICLE STATE",
        );
    }

    fn check_mode(name: &str, expected: Mode) {
        assert_eq!(Mode::from_name(name), expected, "{name:?}");
    }

    #[test]
    fn mode_names() {
        check_mode("TEST", Mode::Test);
        check_mode("test", Mode::Test);
        check_mode(" Test ", Mode::Test);
        check_mode("simulated", Mode::Test);
        check_mode("SIMULATED", Mode::Test);
        check_mode("LIVE", Mode::Live);
        check_mode("live", Mode::Live);
        check_mode("", Mode::Live);
        check_mode("testing", Mode::Live);
        check_mode("sandbox", Mode::Live);
        assert_eq!(Mode::Test.to_string(), "TEST");
        assert_eq!(Mode::Live.as_str(), "LIVE");
        assert_eq!(Mode::default(), Mode::Live);
    }

    #[test]
    fn odometer_error_messages() {
        let failed = OdometerError::SignalFailed {
            error_type: Some("COMPATIBILITY".to_owned()),
            code: Some("VEHICLE_NOT_CAPABLE".to_owned()),
        };
        assert_eq!(
            failed.to_string(),
            "odometer signal failed (COMPATIBILITY: VEHICLE_NOT_CAPABLE)"
        );
        let bare = OdometerError::SignalFailed {
            error_type: None,
            code: None,
        };
        assert_eq!(bare.to_string(), "odometer signal failed (no reason given)");
        assert_eq!(
            OdometerError::UnknownUnit("ft".to_owned()).to_string(),
            "odometer unit \"ft\" is not a known distance unit"
        );
    }

    #[test]
    fn trigger_shapes() {
        let t = |v: Value| Trigger::from_json(&v);
        let signal = |code: &str| Trigger {
            trigger_type: None,
            code: Some(code.to_owned()),
            name: None,
            group: None,
        };
        assert_eq!(
            t(serde_json::json!("odometer-traveleddistance")),
            Some(signal("odometer-traveleddistance"))
        );
        assert_eq!(t(serde_json::json!(7)), None);
        assert_eq!(t(serde_json::json!("")), None);
        let first = t(serde_json::json!({"code": "FIRST_DELIVERY"})).expect("trigger");
        assert!(first.is_first_delivery());
        let first = t(serde_json::json!({"type": "first_delivery"})).expect("trigger");
        assert!(first.is_first_delivery());
        let not_first =
            t(serde_json::json!({"type": "SIGNAL_UPDATED", "signal": 5})).expect("trigger");
        assert!(!not_first.is_first_delivery());
        assert_eq!(not_first.code, None);
    }
}
