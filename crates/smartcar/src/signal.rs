//! Signals: one measured value of a vehicle (odometer, state of charge, location, …).

use std::time::Duration;

use meterhook_domain::{
    trusted_time, Distance, DistanceUnit, Millis, TrustedTime, DEFAULT_MAX_CLOCK_SKEW,
};
use serde_json::{Map, Value};

use crate::json;

/// The signal code of the odometer.
pub const ODOMETER_CODE: &str = "odometer-traveleddistance";

/// One signal of a `VEHICLE_STATE` event (`data.signals[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The signal code, e.g. `odometer-traveleddistance`.
    pub code: String,
    /// The signal name, e.g. `TraveledDistance`.
    pub name: Option<String>,
    /// The signal group, e.g. `Odometer`.
    pub group: Option<String>,
    /// The value as sent (`{value, unit}` for most signals); absent when the signal failed.
    pub body: Option<Value>,
    /// `status.value`: `SUCCESS` or `ERROR`.
    pub status: Option<String>,
    /// `status.error` of a failed signal.
    pub error: Option<SignalError>,
    /// `meta.oemUpdatedAt`, epoch ms; `0` for static attributes.
    pub oem_updated_at: Option<i64>,
    /// `meta.retrievedAt` (or the older `meta.fetchedAt`), epoch ms.
    pub retrieved_at: Option<i64>,
}

/// Why a signal could not be read (`status.error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalError {
    /// The error type, e.g. `COMPATIBILITY`.
    pub error_type: Option<String>,
    /// The error code, e.g. `VEHICLE_NOT_CAPABLE`.
    pub code: Option<String>,
}

/// The signals meterhook knows by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// `odometer-traveleddistance`: `{value, unit}`.
    Odometer,
    /// `internalcombustionengine-fuellevel`: `{value, unit: "percent"}`, or a 0–1 fraction.
    FuelLevel,
    /// `internalcombustionengine-amountremaining`: `{value, unit: "liters"}`.
    FuelAmount,
    /// `internalcombustionengine-range`: `{value, unit}`.
    IceRange,
    /// `tractionbattery-stateofcharge`: `{value, unit: "percent"}` or `{percentage}`.
    EvStateOfCharge,
    /// `tractionbattery-range`: `{value, unit, type?, additionalValues[]}`.
    EvRange,
    /// `charge-ischarging`: `{value: bool}`.
    IsCharging,
    /// `charge-detailedchargingstatus`: `{value: enum}`.
    ChargingStatus,
    /// `charge-ischargingcableconnected`: `{value: bool}`.
    CableConnected,
    /// `location-preciselocation`: `{latitude, longitude, heading?, locationType?}`.
    Location,
    /// `wheel-tires`: `{values[{row, column, tirePressure}], unit?}`.
    Tires,
    /// `lowvoltagebattery-stateofcharge`: `{value, unit: "percent"}`.
    LowVoltageBattery,
    /// Any other code.
    Other,
}

const KINDS: [(&str, SignalKind); 12] = [
    (ODOMETER_CODE, SignalKind::Odometer),
    ("internalcombustionengine-fuellevel", SignalKind::FuelLevel),
    (
        "internalcombustionengine-amountremaining",
        SignalKind::FuelAmount,
    ),
    ("internalcombustionengine-range", SignalKind::IceRange),
    ("tractionbattery-stateofcharge", SignalKind::EvStateOfCharge),
    ("tractionbattery-range", SignalKind::EvRange),
    ("charge-ischarging", SignalKind::IsCharging),
    ("charge-detailedchargingstatus", SignalKind::ChargingStatus),
    (
        "charge-ischargingcableconnected",
        SignalKind::CableConnected,
    ),
    ("location-preciselocation", SignalKind::Location),
    ("wheel-tires", SignalKind::Tires),
    (
        "lowvoltagebattery-stateofcharge",
        SignalKind::LowVoltageBattery,
    ),
];

impl SignalKind {
    /// The kind of a signal code (case-insensitive); unknown codes are [`SignalKind::Other`].
    pub fn from_code(code: &str) -> SignalKind {
        KINDS
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(code))
            .map_or(SignalKind::Other, |&(_, kind)| kind)
    }

    /// The signal code of this kind; `None` for [`SignalKind::Other`].
    pub fn code(self) -> Option<&'static str> {
        KINDS.iter().find(|(_, k)| *k == self).map(|&(c, _)| c)
    }
}

/// A position from `location-preciselocation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Degrees clockwise from north, when sent.
    pub heading: Option<f64>,
    /// E.g. `LAST_PARKED`, when sent.
    pub location_type: Option<String>,
}

impl Signal {
    /// Reads one `data.signals[]` entry; `None` when it is not an object with a code.
    pub(crate) fn from_json(value: &Value) -> Option<Signal> {
        let map = value.as_object()?;
        let code = json::string(map, "code")?;
        // Older captures carry `status` as a bare string.
        let (status, error) = match map.get("status") {
            Some(Value::Object(status)) => (
                json::string(status, "value"),
                json::object(status, "error").map(SignalError::from_json),
            ),
            Some(Value::String(s)) if !s.is_empty() => (Some(s.clone()), None),
            _ => (None, None),
        };
        let meta = json::object(map, "meta");
        let meta_millis = |key| meta.and_then(|m| json::millis(m, key));
        Some(Signal {
            code,
            name: json::string(map, "name"),
            group: json::string(map, "group"),
            body: map.get("body").filter(|b| !b.is_null()).cloned(),
            status,
            error,
            oem_updated_at: meta_millis("oemUpdatedAt"),
            retrieved_at: meta_millis("retrievedAt").or_else(|| meta_millis("fetchedAt")),
        })
    }

    /// The signal's kind, from its code.
    pub fn kind(&self) -> SignalKind {
        SignalKind::from_code(&self.code)
    }

    /// Whether the signal reports a failure (`status.value` `ERROR`, or a `status.error`).
    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self
                .status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("ERROR"))
    }

    /// `body.value` when it is a finite number (or a string holding one).
    pub fn value(&self) -> Option<f64> {
        json::number(self.body_field("value")?)
    }

    /// `body.value` when it is a boolean.
    pub fn bool_value(&self) -> Option<bool> {
        self.body_field("value")?.as_bool()
    }

    /// `body.value` when it is a string, e.g. a charging status.
    pub fn text_value(&self) -> Option<&str> {
        self.body_field("value")?.as_str()
    }

    /// `body.unit` as sent.
    pub fn unit(&self) -> Option<&str> {
        self.body_field("unit")?.as_str()
    }

    /// `body.unit` under its canonical name (see [`normalize_unit`]); `None` when absent or unknown.
    pub fn normalized_unit(&self) -> Option<&'static str> {
        normalize_unit(self.unit()?)
    }

    /// The position of a location signal, when it has numeric latitude and longitude.
    pub fn location(&self) -> Option<Location> {
        let body = self.body.as_ref()?.as_object()?;
        Some(Location {
            latitude: json::number(body.get("latitude")?)?,
            longitude: json::number(body.get("longitude")?)?,
            heading: body.get("heading").and_then(json::number),
            location_type: json::string(body, "locationType"),
        })
    }

    /// When the car observed the value, with car clocks up to [`DEFAULT_MAX_CLOCK_SKEW`] ahead
    /// trusted: [`Signal::observed_at_with`] under the default tolerance.
    pub fn observed_at(&self, received_at: Millis) -> Millis {
        self.observed_at_with(received_at, DEFAULT_MAX_CLOCK_SKEW)
            .at
    }

    /// When the car observed the value, and whether that time had to be corrected.
    ///
    /// The reported time is `oemUpdatedAt` when positive, else `retrievedAt` / `fetchedAt` when
    /// positive, else `received_at`. A reported time later than `received_at + max_clock_skew` is
    /// not trusted (see [`meterhook_domain::trusted_time`]): the retrieval time replaces it when
    /// that is within the limit, else `received_at`.
    pub fn observed_at_with(&self, received_at: Millis, max_clock_skew: Duration) -> TrustedTime {
        // 0 marks a static attribute, not 1970.
        let positive = |t: Option<i64>| t.filter(|&t| t > 0).map(Millis);
        let retrieved = positive(self.retrieved_at);
        let reported = positive(self.oem_updated_at)
            .or(retrieved)
            .unwrap_or(received_at);
        trusted_time(reported, retrieved, received_at, max_clock_skew)
    }

    fn body_field(&self, key: &str) -> Option<&Value> {
        self.body.as_ref()?.as_object()?.get(key)
    }
}

/// One value of a signal as meterhook keeps it: units normalised, tires one value per wheel.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalValue {
    /// The signal code; tires get one code per wheel, `wheel-tires/<row>/<column>`.
    pub code: String,
    /// The number, when the signal has one (booleans as 1 and 0).
    pub value: Option<f64>,
    /// Its unit: distances in `km`, percentages in `%`, tire pressures in `kPa`, others by their
    /// canonical name, or as sent when unknown (kept, never converted).
    pub unit: Option<String>,
    /// For a signal of several values (tires), the element of `body.values` this one came from,
    /// as sent; `None` when the value is the whole body.
    pub part: Option<Value>,
}

/// Values kept of one signal at most: a car has a handful of tires, and a body that lists
/// hundreds is not a car's; the rest are dropped (the event keeps the whole body).
pub const MAX_VALUES_PER_SIGNAL: usize = 16;

/// kPa in one bar and in one psi.
const KPA_PER_BAR: f64 = 100.0;
const KPA_PER_PSI: f64 = 6.894_757_293_168;

/// The unit every stored distance is in.
const KM: &str = "km";
/// The unit every stored percentage is in.
const PERCENT: &str = "%";

impl Signal {
    /// The values to keep for this signal; none for a failed signal. The README's table says
    /// what each code becomes.
    pub fn values(&self) -> Vec<SignalValue> {
        if self.failed() || self.body.is_none() {
            return Vec::new();
        }
        let one = |value: Option<f64>, unit: Option<String>| {
            vec![SignalValue {
                code: self.code.clone(),
                value,
                unit,
                part: None,
            }]
        };
        match self.kind() {
            SignalKind::IsCharging | SignalKind::CableConnected => {
                one(self.bool_value().map(|b| if b { 1.0 } else { 0.0 }), None)
            }
            SignalKind::ChargingStatus | SignalKind::Location => one(None, None),
            SignalKind::Tires => self.tire_values(),
            SignalKind::FuelLevel | SignalKind::EvStateOfCharge | SignalKind::LowVoltageBattery => {
                let (value, unit) = self.percent_value();
                one(value, unit)
            }
            _ => {
                let (value, unit) = self.measured_value();
                one(value, unit)
            }
        }
    }

    /// `body.value` with its unit normalised: a distance in km, through the domain's unit table
    /// and [`Distance`] (the very conversion odometer readings get; a value that is no valid
    /// distance, such as a negative one, has no value), other units by canonical name or as sent.
    fn measured_value(&self) -> (Option<f64>, Option<String>) {
        let value = self.value();
        let Some(unit) = self.unit() else {
            return (value, None);
        };
        match unit.parse::<DistanceUnit>() {
            Ok(unit) => (
                value
                    .and_then(|v| Distance::from_value(v, unit).ok())
                    .map(Distance::km),
                Some(KM.to_owned()),
            ),
            Err(_) => (value, Some(normalize_unit(unit).unwrap_or(unit).to_owned())),
        }
    }

    /// A percentage signal in percent. `body.value` labelled as a percentage is kept; without a
    /// unit, a value in [0, 1] is a fraction (× 100) and one in (1, 100] is already percent;
    /// without `body.value`, `body.percentage` is percent. Any other unit, or a unitless value
    /// outside [0, 100], is kept as sent, never guessed.
    fn percent_value(&self) -> (Option<f64>, Option<String>) {
        let Some(value) = self.value() else {
            if let Some(p) = self.body_field("percentage").and_then(json::number) {
                return (Some(p), Some(PERCENT.to_owned()));
            }
            return (
                None,
                self.unit()
                    .map(|u| normalize_unit(u).unwrap_or(u).to_owned()),
            );
        };
        match self.unit() {
            Some(unit) => (
                Some(value),
                Some(normalize_unit(unit).unwrap_or(unit).to_owned()),
            ),
            // Rounded to 1e-9 so that 0.58 is 58, not 57.99999999999999.
            None if (0.0..=1.0).contains(&value) => (
                Some((value * 100.0 * 1e9).round() / 1e9),
                Some(PERCENT.to_owned()),
            ),
            None if (1.0..=100.0).contains(&value) => (Some(value), Some(PERCENT.to_owned())),
            None => (Some(value), None),
        }
    }

    /// One value per wheel, in kPa. A value labelled bar (or unlabelled) above 20 is already kPa:
    /// real cars send 258 "bar". The wheels are `body.values`, or, as Smartcar's dashboard test
    /// delivery nests them, `body.values.values` beside `rowCount` and `columnCount`: wheel objects,
    /// or bare pressures row by row (or as rows of columns). When no wheel can be read, the
    /// signal is kept whole, as any other signal is ([`Signal::measured_value`]).
    fn tire_values(&self) -> Vec<SignalValue> {
        let wheels = self.wheels();
        if wheels.is_empty() {
            let (value, unit) = self.measured_value();
            return vec![SignalValue {
                code: self.code.clone(),
                value,
                unit,
                part: None,
            }];
        }
        let body = self.body.as_ref().and_then(Value::as_object);
        let nested = body
            .and_then(|b| b.get("values"))
            .and_then(Value::as_object);
        let sent_unit = body
            .and_then(|b| json::string(b, "unit"))
            .or_else(|| nested.and_then(|n| json::string(n, "unit")));
        let unit = sent_unit
            .as_deref()
            .map(|u| normalize_unit(u).unwrap_or("unknown"));
        wheels
            .into_iter()
            .map(|wheel| {
                let pressure = wheel.pressure;
                let (value, unit) = match unit {
                    Some("bar") | None if pressure > 20.0 => (pressure, Some("kPa".to_owned())),
                    Some("bar") => (pressure * KPA_PER_BAR, Some("kPa".to_owned())),
                    Some("psi") => (pressure * KPA_PER_PSI, Some("kPa".to_owned())),
                    Some("kPa") => (pressure, Some("kPa".to_owned())),
                    // Unknown or missing and small: kept as sent, never guessed.
                    Some(_) => (pressure, sent_unit.clone()),
                    None => (pressure, None),
                };
                SignalValue {
                    code: format!("{}/{}/{}", self.code, wheel.row, wheel.column),
                    value: Some(value),
                    unit,
                    part: Some(wheel.part),
                }
            })
            .collect()
    }

    /// The wheels whose pressure can be read, at most [`MAX_VALUES_PER_SIGNAL`].
    fn wheels(&self) -> Vec<Wheel> {
        let Some(values) = self.body_field("values") else {
            return Vec::new();
        };
        let (list, columns) = match values {
            Value::Array(list) => (list, None),
            Value::Object(nested) => match nested.get("values") {
                Some(Value::Array(list)) => (
                    list,
                    nested
                        .get("columnCount")
                        .and_then(json::number)
                        .filter(|c| *c >= 1.0),
                ),
                _ => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        let mut wheels = Vec::new();
        for (i, item) in list.iter().enumerate() {
            if wheels.len() == MAX_VALUES_PER_SIGNAL {
                break;
            }
            match item {
                Value::Object(wheel) => {
                    let Some(pressure) = wheel.get("tirePressure").and_then(json::number) else {
                        continue;
                    };
                    wheels.push(Wheel {
                        row: wheel.get("row").and_then(json::number).unwrap_or(-1.0),
                        column: wheel.get("column").and_then(json::number).unwrap_or(-1.0),
                        pressure,
                        part: item.clone(),
                    });
                }
                // A row of columns.
                Value::Array(row) => {
                    for (column, cell) in row.iter().enumerate() {
                        if let Some(pressure) = json::number(cell) {
                            if wheels.len() < MAX_VALUES_PER_SIGNAL {
                                wheels.push(Wheel {
                                    row: i as f64,
                                    column: column as f64,
                                    pressure,
                                    part: cell.clone(),
                                });
                            }
                        }
                    }
                }
                // Bare pressures, row by row.
                cell => {
                    if let (Some(pressure), Some(columns)) = (json::number(cell), columns) {
                        let columns = columns as usize;
                        wheels.push(Wheel {
                            row: (i / columns) as f64,
                            column: (i % columns) as f64,
                            pressure,
                            part: cell.clone(),
                        });
                    }
                }
            }
        }
        wheels
    }
}

/// One wheel's pressure as sent, and where the car puts the wheel.
struct Wheel {
    row: f64,
    column: f64,
    pressure: f64,
    part: Value,
}

impl SignalError {
    fn from_json(map: &Map<String, Value>) -> SignalError {
        SignalError {
            error_type: json::string(map, "type"),
            code: json::string(map, "code"),
        }
    }
}

/// The canonical name of a unit alias (case-insensitive, trimmed): `km` and `mi` (from the
/// domain's [`DistanceUnit`] table), `%`, `kWh`, `l`, `gal`, `kPa`, `bar`, `psi`. Unknown units
/// give `None`: flagged, never guessed.
pub fn normalize_unit(unit: &str) -> Option<&'static str> {
    if let Ok(distance) = unit.parse::<DistanceUnit>() {
        return Some(distance.as_str());
    }
    let canonical = match unit.trim().to_ascii_lowercase().as_str() {
        "%" | "percent" | "percentage" => PERCENT,
        "kwh" | "kwhr" | "kilowatt_hours" | "kilowatt-hours" => "kWh",
        "l" | "liters" | "litres" => "l",
        "gal" | "gallons" => "gal",
        "kpa" => "kPa",
        "bar" => "bar",
        "psi" => "psi",
        _ => return None,
    };
    Some(canonical)
}

#[cfg(test)]
mod tests {
    use meterhook_domain::TimeSource;
    use serde_json::json;

    use super::*;

    fn values_of(code: &str, body: Value) -> Vec<(String, Option<f64>, Option<String>)> {
        let signal =
            Signal::from_json(&json!({"code": code, "body": body, "status": {"value": "SUCCESS"}}))
                .expect("signal");
        signal
            .values()
            .into_iter()
            .map(|v| {
                (
                    v.code,
                    v.value.map(|x| (x * 1000.0).round() / 1000.0),
                    v.unit,
                )
            })
            .collect()
    }

    /// One value of `code` with `body`, compared exactly.
    fn check_value(code: &str, body: Value, value: Option<f64>, unit: Option<&str>) {
        let signal = Signal::from_json(
            &json!({"code": code, "body": body.clone(), "status": {"value": "SUCCESS"}}),
        )
        .expect("signal");
        let values = signal.values();
        let got: Vec<(Option<f64>, Option<&str>)> = values
            .iter()
            .map(|v| (v.value, v.unit.as_deref()))
            .collect();
        assert_eq!(got, [(value, unit)], "{code} {body}");
    }

    #[test]
    fn distances_are_stored_in_km() {
        let odo = ODOMETER_CODE;
        let range = "tractionbattery-range";
        let ice = "internalcombustionengine-range";
        check_value(
            odo,
            json!({"value": 42506.3, "unit": "km"}),
            Some(42506.3),
            Some("km"),
        );
        check_value(
            odo,
            json!({"value": 12345, "unit": "kilometers"}),
            Some(12345.0),
            Some("km"),
        );
        check_value(
            odo,
            json!({"value": 12345, "unit": "Kilometre"}),
            Some(12345.0),
            Some("km"),
        );
        check_value(
            odo,
            json!({"value": 12345, "unit": "kms"}),
            Some(12345.0),
            Some("km"),
        );
        // The same conversion as the odometer reading: 1 mi = 1.609344 km, to the metre.
        check_value(
            odo,
            json!({"value": 10, "unit": "mile"}),
            Some(16.093),
            Some("km"),
        );
        check_value(
            odo,
            json!({"value": 10, "unit": "miles"}),
            Some(16.093),
            Some("km"),
        );
        check_value(
            odo,
            json!({"value": 1000, "unit": " MI "}),
            Some(1609.344),
            Some("km"),
        );
        check_value(
            range,
            json!({"value": 100, "unit": "miles"}),
            Some(160.934),
            Some("km"),
        );
        check_value(
            range,
            json!({"value": 290, "unit": "km", "type": "DEFAULT"}),
            Some(290.0),
            Some("km"),
        );
        check_value(
            ice,
            json!({"value": "250", "unit": "mi"}),
            Some(402.336),
            Some("km"),
        );
        // Any other signal with a distance unit is stored in km too.
        check_value(
            "charge-chargerange",
            json!({"value": 5, "unit": "miles"}),
            Some(8.047),
            Some("km"),
        );
        // No valid distance: the unit is known, the value is not kept.
        check_value(range, json!({"value": -1, "unit": "km"}), None, Some("km"));
        check_value(odo, json!({"value": 1e300, "unit": "mi"}), None, Some("km"));
        check_value(odo, json!({"unit": "miles"}), None, Some("km"));
        // Unknown or missing units are kept as sent, never converted.
        check_value(
            range,
            json!({"value": 5, "unit": "leagues"}),
            Some(5.0),
            Some("leagues"),
        );
        check_value(odo, json!({"value": 5, "unit": "m"}), Some(5.0), Some("m"));
        check_value(odo, json!({"value": 12345.6}), Some(12345.6), None);
    }

    #[test]
    fn percentages_are_stored_in_percent() {
        let soc = "tractionbattery-stateofcharge";
        let fuel = "internalcombustionengine-fuellevel";
        let lv = "lowvoltagebattery-stateofcharge";
        check_value(
            soc,
            json!({"value": 89, "unit": "percent"}),
            Some(89.0),
            Some("%"),
        );
        check_value(
            soc,
            json!({"value": 89, "unit": "percentage"}),
            Some(89.0),
            Some("%"),
        );
        check_value(
            soc,
            json!({"value": 89, "unit": "%"}),
            Some(89.0),
            Some("%"),
        );
        check_value(soc, json!({"percentage": 75}), Some(75.0), Some("%"));
        check_value(soc, json!({"percentage": "75.5"}), Some(75.5), Some("%"));
        check_value(soc, json!({"value": 75}), Some(75.0), Some("%"));
        // With a percentage unit, a small value is a small percentage.
        check_value(
            soc,
            json!({"value": 0.5, "unit": "percent"}),
            Some(0.5),
            Some("%"),
        );
        check_value(
            lv,
            json!({"value": 0.5, "unit": "percent"}),
            Some(0.5),
            Some("%"),
        );
        // No unit and a value in [0, 1]: a fraction.
        check_value(fuel, json!({"value": 0.58}), Some(58.0), Some("%"));
        check_value(fuel, json!({"value": 0.075}), Some(7.5), Some("%"));
        check_value(fuel, json!({"value": 1}), Some(100.0), Some("%"));
        check_value(fuel, json!({"value": 0}), Some(0.0), Some("%"));
        check_value(lv, json!({"value": 0.83}), Some(83.0), Some("%"));
        // No unit and above 1: already percent; outside [0, 100]: kept, not labelled.
        check_value(fuel, json!({"value": 1.5}), Some(1.5), Some("%"));
        check_value(fuel, json!({"value": 100}), Some(100.0), Some("%"));
        check_value(fuel, json!({"value": 150}), Some(150.0), None);
        check_value(fuel, json!({"value": -0.1}), Some(-0.1), None);
        // Any other unit is kept as sent.
        check_value(
            fuel,
            json!({"value": 40, "unit": "liters"}),
            Some(40.0),
            Some("l"),
        );
        check_value(
            fuel,
            json!({"value": 0.4, "unit": "ratio"}),
            Some(0.4),
            Some("ratio"),
        );
        check_value(soc, json!({"unit": "percent"}), None, Some("%"));
        check_value(soc, json!({}), None, None);
    }

    #[test]
    fn other_values() {
        let charging = "charge-ischarging";
        check_value(charging, json!({"value": true}), Some(1.0), None);
        check_value(
            "charge-ischargingcableconnected",
            json!({"value": false}),
            Some(0.0),
            None,
        );
        check_value(charging, json!({"value": "yes"}), None, None);
        let loc = "location-preciselocation";
        check_value(
            loc,
            json!({"latitude": 61.1, "longitude": 23.3}),
            None,
            None,
        );
        check_value(
            "charge-detailedchargingstatus",
            json!({"value": "CHARGING"}),
            None,
            None,
        );
        let fuel = "internalcombustionengine-amountremaining";
        check_value(
            fuel,
            json!({"value": 40.5, "unit": "liters"}),
            Some(40.5),
            Some("l"),
        );
        check_value(
            fuel,
            json!({"value": 10, "unit": "gallons"}),
            Some(10.0),
            Some("gal"),
        );
        check_value(
            "tractionbattery-capacity",
            json!({"value": 75, "unit": "kWhr"}),
            Some(75.0),
            Some("kWh"),
        );
        check_value(
            "climate-cabintemperature",
            json!({"value": 21.5, "unit": "celsius"}),
            Some(21.5),
            Some("celsius"),
        );
    }

    #[test]
    fn tire_pressures_become_kpa_per_wheel() {
        let body = json!({"values": [
            {"row": 0, "column": 0, "tirePressure": 258},
            {"row": 0, "column": 1, "tirePressure": 2.5},
            {"row": 1, "column": 0, "tirePressure": "bad"}
        ], "unit": "bar"});
        assert_eq!(
            values_of("wheel-tires", body),
            vec![
                (
                    "wheel-tires/0/0".to_owned(),
                    Some(258.0),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/0/1".to_owned(),
                    Some(250.0),
                    Some("kPa".to_owned())
                ),
            ]
        );
        let psi = json!({"values": [{"row": 1, "column": 1, "tirePressure": 35}], "unit": "psi"});
        assert_eq!(
            values_of("wheel-tires", psi),
            vec![(
                "wheel-tires/1/1".to_owned(),
                Some(241.317),
                Some("kPa".to_owned())
            )]
        );
        let unlabelled = json!({"values": [{"row": 0, "column": 0, "tirePressure": 2.4}]});
        assert_eq!(
            values_of("wheel-tires", unlabelled),
            vec![("wheel-tires/0/0".to_owned(), Some(2.4), None)]
        );
    }

    #[test]
    fn nested_tire_values_are_read_and_unreadable_ones_kept_whole() {
        // Smartcar's dashboard test delivery nests the wheels beside their counts.
        let nested = json!({"values": {"rowCount": 2, "columnCount": 2, "values": [
            {"row": 0, "column": 0, "tirePressure": 230},
            {"row": 1, "column": 1, "tirePressure": 2.4}
        ]}, "unit": "kPa"});
        assert_eq!(
            values_of("wheel-tires", nested),
            vec![
                (
                    "wheel-tires/0/0".to_owned(),
                    Some(230.0),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/1/1".to_owned(),
                    Some(2.4),
                    Some("kPa".to_owned())
                ),
            ]
        );
        let bare = json!({"values": {"rowCount": 2, "columnCount": 2, "values": [230, 231, 2.3, 2.4]}, "unit": "bar"});
        assert_eq!(
            values_of("wheel-tires", bare),
            vec![
                (
                    "wheel-tires/0/0".to_owned(),
                    Some(230.0),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/0/1".to_owned(),
                    Some(231.0),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/1/0".to_owned(),
                    Some(230.0),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/1/1".to_owned(),
                    Some(240.0),
                    Some("kPa".to_owned())
                ),
            ]
        );
        let rows = json!({"values": {"rowCount": 1, "columnCount": 2, "values": [[35, 36]]}, "unit": "psi"});
        assert_eq!(
            values_of("wheel-tires", rows),
            vec![
                (
                    "wheel-tires/0/0".to_owned(),
                    Some(241.317),
                    Some("kPa".to_owned())
                ),
                (
                    "wheel-tires/0/1".to_owned(),
                    Some(248.211),
                    Some("kPa".to_owned())
                ),
            ]
        );
        // Nothing per wheel: one value under the signal's own code, as any other signal.
        for body in [
            json!({"values": {"rowCount": 2, "columnCount": 2, "values": [{"front": "ok"}]}}),
            json!({"values": {"rowCount": 2, "columnCount": 2}}),
            json!({"values": []}),
            json!({"values": "low"}),
            json!({"pressure": 1}),
        ] {
            assert_eq!(
                values_of("wheel-tires", body.clone()),
                vec![("wheel-tires".to_owned(), None, None)],
                "{body}"
            );
        }
    }

    #[test]
    fn failed_signals_have_no_values() {
        let failed = Signal::from_json(&json!({"code": "internalcombustionengine-fuellevel",
            "status": {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}}}))
            .expect("signal");
        assert!(failed.values().is_empty());
    }

    fn check_unit(unit: &str, expected: Option<&str>) {
        assert_eq!(normalize_unit(unit), expected, "{unit:?}");
    }

    #[test]
    fn unit_aliases() {
        check_unit("km", Some("km"));
        check_unit("kilometers", Some("km"));
        check_unit("kilometres", Some("km"));
        check_unit("kilometer", Some("km"));
        check_unit("kms", Some("km"));
        check_unit("KM", Some("km"));
        check_unit(" km ", Some("km"));
        check_unit("mi", Some("mi"));
        check_unit("mile", Some("mi"));
        check_unit("miles", Some("mi"));
        check_unit("Miles", Some("mi"));
        check_unit("percent", Some("%"));
        check_unit("percentage", Some("%"));
        check_unit("%", Some("%"));
        check_unit(" Percent ", Some("%"));
        check_unit("kWh", Some("kWh"));
        check_unit("kWhr", Some("kWh"));
        check_unit("kilowatt_hours", Some("kWh"));
        check_unit("kilowatt-hours", Some("kWh"));
        check_unit("liters", Some("l"));
        check_unit("litres", Some("l"));
        check_unit("l", Some("l"));
        check_unit("L", Some("l"));
        check_unit("gallons", Some("gal"));
        check_unit("gal", Some("gal"));
        check_unit("kPa", Some("kPa"));
        check_unit("bar", Some("bar"));
        check_unit("psi", Some("psi"));
        check_unit("", None);
        check_unit("m", None);
        check_unit("kilowatts", None);
        check_unit("fraction", None);
        check_unit("furlongs", None);
        // Every distance alias of the domain's table is known here, by the domain's name.
        for &(alias, unit) in DistanceUnit::ALIASES {
            check_unit(alias, Some(unit.as_str()));
        }
    }

    fn check_kind(code: &str, expected: SignalKind) {
        assert_eq!(SignalKind::from_code(code), expected, "{code}");
        if expected != SignalKind::Other {
            assert_eq!(
                expected.code().map(str::to_ascii_lowercase),
                Some(code.to_ascii_lowercase())
            );
        }
    }

    #[test]
    fn kinds_by_code() {
        check_kind("odometer-traveleddistance", SignalKind::Odometer);
        check_kind("Odometer-TraveledDistance", SignalKind::Odometer);
        check_kind("internalcombustionengine-fuellevel", SignalKind::FuelLevel);
        check_kind(
            "internalcombustionengine-amountremaining",
            SignalKind::FuelAmount,
        );
        check_kind("internalcombustionengine-range", SignalKind::IceRange);
        check_kind("tractionbattery-stateofcharge", SignalKind::EvStateOfCharge);
        check_kind("tractionbattery-range", SignalKind::EvRange);
        check_kind("charge-ischarging", SignalKind::IsCharging);
        check_kind("charge-detailedchargingstatus", SignalKind::ChargingStatus);
        check_kind(
            "charge-ischargingcableconnected",
            SignalKind::CableConnected,
        );
        check_kind("location-preciselocation", SignalKind::Location);
        check_kind("wheel-tires", SignalKind::Tires);
        check_kind(
            "lowvoltagebattery-stateofcharge",
            SignalKind::LowVoltageBattery,
        );
        check_kind("closure-islocked", SignalKind::Other);
        check_kind("", SignalKind::Other);
        assert_eq!(SignalKind::Other.code(), None);
    }

    fn signal(value: Value) -> Signal {
        Signal::from_json(&value).expect("a signal")
    }

    #[test]
    fn lenient_signal_entries() {
        assert!(Signal::from_json(&json!({"name": "NoCode"})).is_none());
        assert!(Signal::from_json(&json!({"code": 7})).is_none());
        assert!(Signal::from_json(&json!("odometer-traveleddistance")).is_none());

        let s = signal(json!({
            "code": "x", "name": 1, "group": ["g"], "body": null, "status": "SUCCESS",
            "meta": {"oemUpdatedAt": "1769852860000", "fetchedAt": 5}
        }));
        assert_eq!((s.name, s.group, s.body), (None, None, None));
        assert_eq!(s.status.as_deref(), Some("SUCCESS"));
        assert_eq!(
            (s.oem_updated_at, s.retrieved_at),
            (Some(1_769_852_860_000), Some(5))
        );

        let s = signal(json!({"code": "x", "status": 3, "meta": "later"}));
        assert_eq!((s.status, s.error, s.oem_updated_at), (None, None, None));
    }

    #[test]
    fn typed_values() {
        let s = signal(json!({"code": "charge-ischarging", "body": {"value": true}}));
        assert_eq!(
            (s.bool_value(), s.value(), s.text_value()),
            (Some(true), None, None)
        );
        let s =
            signal(json!({"code": "charge-detailedchargingstatus", "body": {"value": "CHARGING"}}));
        assert_eq!(s.text_value(), Some("CHARGING"));
        let s = signal(
            json!({"code": "tractionbattery-stateofcharge", "body": {"value": 89, "unit": "percentage"}}),
        );
        assert_eq!((s.value(), s.normalized_unit()), (Some(89.0), Some("%")));
        let s = signal(json!({"code": "wheel-tires", "body": {"values": [], "unit": "furlongs"}}));
        assert_eq!(
            (s.value(), s.unit(), s.normalized_unit()),
            (None, Some("furlongs"), None)
        );
        let s = signal(json!({"code": "x", "body": [1, 2]}));
        assert_eq!((s.value(), s.unit()), (None, None));
    }

    #[test]
    fn locations() {
        let s = signal(json!({"code": "location-preciselocation",
            "body": {"latitude": 61.111111, "longitude": 23.333333, "locationType": "LAST_PARKED"}}));
        assert_eq!(
            s.location(),
            Some(Location {
                latitude: 61.111111,
                longitude: 23.333333,
                heading: None,
                location_type: Some("LAST_PARKED".to_owned()),
            })
        );
        let s = signal(
            json!({"code": "location-preciselocation", "body": {"latitude": 1.0, "heading": 90}}),
        );
        assert_eq!(s.location(), None);
    }

    fn timed(oem: Option<i64>, retrieved: Option<i64>) -> Signal {
        Signal {
            code: ODOMETER_CODE.to_owned(),
            name: None,
            group: None,
            body: None,
            status: None,
            error: None,
            oem_updated_at: oem,
            retrieved_at: retrieved,
        }
    }

    fn check_observed(oem: Option<i64>, retrieved: Option<i64>, expected: i64) {
        assert_eq!(
            timed(oem, retrieved).observed_at(Millis(99)),
            Millis(expected),
            "{oem:?} {retrieved:?}"
        );
    }

    const NOW: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    /// `expected`: the trusted time and, when corrected, the source used.
    fn check_skew(
        oem: Option<i64>,
        retrieved: Option<i64>,
        max_skew_min: u64,
        expected: (i64, Option<TimeSource>),
    ) {
        let got = timed(oem, retrieved)
            .observed_at_with(Millis(NOW), Duration::from_secs(max_skew_min * 60));
        assert_eq!(
            (got.at, got.correction.map(|c| (c.source, c.corrected))),
            (
                Millis(expected.0),
                expected.1.map(|s| (s, Millis(expected.0)))
            ),
            "{oem:?} {retrieved:?} {max_skew_min} min"
        );
    }

    #[test]
    fn clocks_ahead_are_corrected() {
        use TimeSource::{Received, Retrieved};
        let before = Some(NOW - MIN);
        check_skew(Some(NOW - MIN), Some(NOW), 5, (NOW - MIN, None));
        check_skew(Some(NOW + 5 * MIN), before, 5, (NOW + 5 * MIN, None));
        check_skew(
            Some(NOW + 5 * MIN + 1),
            before,
            5,
            (NOW - MIN, Some(Retrieved)),
        );
        check_skew(Some(NOW + 10 * MIN), before, 15, (NOW + 10 * MIN, None));
        check_skew(
            Some(NOW + 10 * MIN),
            before,
            0,
            (NOW - MIN, Some(Retrieved)),
        );
        // The retrieval time is checked too; 0 or negative means there is none.
        check_skew(
            Some(NOW + 60 * MIN),
            Some(NOW + 60 * MIN),
            5,
            (NOW, Some(Received)),
        );
        check_skew(Some(NOW + 60 * MIN), Some(0), 5, (NOW, Some(Received)));
        check_skew(Some(NOW + 60 * MIN), None, 5, (NOW, Some(Received)));
        // Without `oemUpdatedAt`, the retrieval time is the reported one and is checked alone.
        check_skew(Some(0), Some(NOW + 60 * MIN), 5, (NOW, Some(Received)));
        check_skew(None, Some(NOW + MIN), 5, (NOW + MIN, None));
        // Nothing reported: the receipt time, nothing to correct.
        check_skew(None, None, 0, (NOW, None));
        // The default tolerance is five minutes.
        assert_eq!(
            timed(Some(NOW + 5 * MIN), before).observed_at(Millis(NOW)),
            Millis(NOW + 5 * MIN)
        );
        assert_eq!(
            timed(Some(NOW + 5 * MIN + 1), before).observed_at(Millis(NOW)),
            Millis(NOW - MIN)
        );
    }

    #[test]
    fn observed_at_fallbacks() {
        check_observed(Some(10), Some(20), 10);
        check_observed(Some(0), Some(20), 20);
        check_observed(Some(-5), Some(20), 20);
        check_observed(None, Some(20), 20);
        check_observed(Some(0), None, 99);
        check_observed(Some(0), Some(0), 99);
        check_observed(None, None, 99);
    }

    #[test]
    fn failure_detection() {
        let failed = signal(json!({"code": "x", "status": {"value": "ERROR"}}));
        assert!(failed.failed());
        let failed = signal(json!({"code": "x", "status": {"error": {"type": "T"}}}));
        assert!(failed.failed());
        let ok = signal(json!({"code": "x", "status": {"value": "SUCCESS"}}));
        assert!(!ok.failed());
    }
}
