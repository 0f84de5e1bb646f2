//! v2 (legacy) scheduled and dynamic deliveries: `payload.vehicles[].data[]`, one entry per API
//! path, shaped like a v2 batch response (`{path, code, body, headers}`).
//!
//! The unit system and the age of the data are HTTP headers in v2 (`SC-Unit-System`,
//! `SC-Data-Age`), sent per entry inside the body and, by some deliveries, on the request itself;
//! the caller passes the request's through [`DeliveryHeaders`] and an entry's own win.

use std::time::Duration;

use meterhook_domain::{trusted_time, Distance, DistanceUnit, Millis};
use serde_json::{Map, Value};

use crate::json;
use crate::odometer::{OdometerError, OdometerReading};
use crate::signal::SignalError;
use crate::time::parse_rfc3339_millis;

/// The header naming a v2 delivery's unit system, `metric` or `imperial`.
pub const UNIT_SYSTEM_HEADER: &str = "SC-Unit-System";
/// The header giving the time (RFC 3339) a v2 delivery's data was recorded by the vehicle.
pub const DATA_AGE_HEADER: &str = "SC-Data-Age";

/// The request headers that give a v2 body its meaning, as received (raw text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryHeaders {
    /// `SC-Unit-System`: `metric` (km) or `imperial` (miles).
    pub unit_system: Option<String>,
    /// `SC-Data-Age`: when the vehicle recorded the data, RFC 3339.
    pub data_age: Option<String>,
}

/// One vehicle of a v2 scheduled or dynamic delivery (`payload.vehicles[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct V2Vehicle {
    /// `vehicleId`.
    pub vehicle_id: Option<String>,
    /// `requestId`.
    pub request_id: Option<String>,
    /// The `/odometer` entry of `data[]`, if there is one.
    pub odometer: Option<V2Odometer>,
}

/// The `/odometer` entry of a v2 vehicle's `data[]`, with the headers that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct V2Odometer {
    /// `code`: the HTTP status of the underlying request (200 when it worked).
    pub status: Option<i64>,
    /// `body.distance`.
    pub distance: Option<f64>,
    /// `sc-unit-system` of the entry's `headers`, else of the delivery, as sent.
    pub unit_system: Option<String>,
    /// `sc-data-age` of the entry's `headers`, else of the delivery, as epoch ms (`None` when
    /// absent or not a time).
    pub data_age: Option<i64>,
    /// Why the entry failed: a `code` other than 2xx, or an error body (`type`/`error`, `code`).
    pub error: Option<SignalError>,
}

/// Reads `payload.vehicles[]`; entries that are not objects are skipped.
pub(crate) fn vehicles(payload: &Map<String, Value>, headers: &DeliveryHeaders) -> Vec<V2Vehicle> {
    json::array(payload, "vehicles")
        .iter()
        .filter_map(Value::as_object)
        .map(|vehicle| V2Vehicle {
            vehicle_id: json::string(vehicle, "vehicleId"),
            request_id: json::string(vehicle, "requestId"),
            odometer: json::array(vehicle, "data")
                .iter()
                .filter_map(Value::as_object)
                .find(|entry| json::string(entry, "path").is_some_and(|p| is_odometer_path(&p)))
                .map(|entry| V2Odometer::from_json(entry, headers)),
        })
        .collect()
}

fn is_odometer_path(path: &str) -> bool {
    let path = path.trim();
    path.strip_suffix('/')
        .unwrap_or(path)
        .eq_ignore_ascii_case("/odometer")
}

impl V2Odometer {
    fn from_json(entry: &Map<String, Value>, delivery: &DeliveryHeaders) -> V2Odometer {
        let empty = Map::new();
        let body = json::object(entry, "body").unwrap_or(&empty);
        let own = json::object(entry, "headers");
        // Header names are case-insensitive; the SDKs have seen both spellings.
        let header = |name: &str| {
            own.and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| json::non_empty(v).map(str::to_owned))
            })
        };
        let unit_system = header(UNIT_SYSTEM_HEADER).or_else(|| delivery.unit_system.clone());
        let data_age = header(DATA_AGE_HEADER)
            .or_else(|| delivery.data_age.clone())
            .and_then(|t| parse_rfc3339_millis(t.trim()));
        let status = json::integer(entry, "code");
        let failed_status = status.filter(|s| !(200..300).contains(s));
        let error_type = json::string(body, "type").or_else(|| json::string(body, "error"));
        let error_code = json::string(body, "code");
        let error = (failed_status.is_some() || error_type.is_some()).then(|| SignalError {
            error_type,
            code: error_code.or_else(|| failed_status.map(|s| s.to_string())),
        });
        V2Odometer {
            status,
            distance: body.get("distance").and_then(json::number),
            unit_system,
            data_age,
            error,
        }
    }

    /// The reading, in km whatever the unit system, dated by the data age (else `received_at`;
    /// a data age more than `max_clock_skew` after `received_at` is replaced by `received_at`).
    pub fn reading(
        &self,
        received_at: Millis,
        max_clock_skew: Duration,
    ) -> Result<OdometerReading, OdometerError> {
        if let Some(error) = &self.error {
            return Err(OdometerError::SignalFailed {
                error_type: error.error_type.clone(),
                code: error.code.clone(),
            });
        }
        let distance = self.distance.ok_or(OdometerError::MissingValue)?;
        let system = self
            .unit_system
            .as_deref()
            .ok_or(OdometerError::MissingUnit)?;
        let unit = unit_of_system(system)
            .ok_or_else(|| OdometerError::UnknownUnitSystem(system.to_owned()))?;
        let distance = Distance::from_value(distance, unit)?;
        let time = trusted_time(
            self.data_age.map_or(received_at, Millis),
            None,
            received_at,
            max_clock_skew,
        );
        Ok(OdometerReading {
            reading: meterhook_domain::Reading::new(distance, time.at),
            correction: time.correction,
        })
    }
}

/// The distance unit of a v2 unit system (case-insensitive): `metric` is km, `imperial` miles.
fn unit_of_system(system: &str) -> Option<DistanceUnit> {
    let system = system.trim();
    if system.eq_ignore_ascii_case("metric") {
        Some(DistanceUnit::Kilometres)
    } else if system.eq_ignore_ascii_case("imperial") {
        Some(DistanceUnit::Miles)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_systems() {
        for (name, expected) in [
            ("metric", Some(DistanceUnit::Kilometres)),
            ("METRIC", Some(DistanceUnit::Kilometres)),
            (" metric ", Some(DistanceUnit::Kilometres)),
            ("imperial", Some(DistanceUnit::Miles)),
            ("Imperial", Some(DistanceUnit::Miles)),
            ("", None),
            ("km", None),
            ("us", None),
        ] {
            assert_eq!(unit_of_system(name), expected, "{name:?}");
        }
    }

    #[test]
    fn odometer_paths() {
        for (path, expected) in [
            ("/odometer", true),
            ("/ODOMETER", true),
            ("/odometer/", true),
            (" /odometer ", true),
            ("odometer", false),
            ("/battery", false),
            ("/odometer/x", false),
            ("", false),
        ] {
            assert_eq!(is_odometer_path(path), expected, "{path:?}");
        }
    }
}
