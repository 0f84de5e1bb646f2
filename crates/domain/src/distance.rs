//! Distances in whole metres and the units odometers report them in.

use std::fmt;
use std::str::FromStr;

/// Metres in one kilometre.
const METRES_PER_KM: i64 = 1_000;
/// One international mile is exactly 1.609344 km; kept as a ratio so conversion is exact until
/// the final rounding to whole metres.
const MILE_NUMERATOR_MM: i128 = 1_609_344; // millimetres per mile

/// The largest distance meterhook accepts: 100 million km, far beyond any odometer, small enough
/// that every arithmetic on distances and times fits comfortably in 64 bits.
pub const MAX_METRES: i64 = 100_000_000_000;

/// A non-negative distance in whole metres.
///
/// Fixed point so that equality and ordering are exact: `12345.6 km` read twice is the same value,
/// which a floating-point comparison cannot promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Distance(i64);

/// Why a number could not become a [`Distance`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistanceError {
    /// NaN or infinite.
    #[error("distance is not a finite number")]
    NotFinite,
    /// Below zero.
    #[error("distance is negative")]
    Negative,
    /// Above [`MAX_METRES`].
    #[error("distance is larger than {} km", MAX_METRES / METRES_PER_KM)]
    TooLarge,
}

impl Distance {
    /// Zero metres.
    pub const ZERO: Distance = Distance(0);
    /// The largest accepted distance.
    pub const MAX: Distance = Distance(MAX_METRES);

    /// A distance of `metres`, checked against the accepted range.
    pub fn from_metres(metres: i64) -> Result<Self, DistanceError> {
        if metres < 0 {
            Err(DistanceError::Negative)
        } else if metres > MAX_METRES {
            Err(DistanceError::TooLarge)
        } else {
            Ok(Distance(metres))
        }
    }

    /// Converts `value` in `unit` to whole metres, rounding half away from zero.
    pub fn from_value(value: f64, unit: DistanceUnit) -> Result<Self, DistanceError> {
        if !value.is_finite() {
            return Err(DistanceError::NotFinite);
        }
        if value < 0.0 {
            return Err(DistanceError::Negative);
        }
        // Bound before converting so the float-to-int cast below cannot saturate silently.
        let km_limit = (MAX_METRES / METRES_PER_KM) as f64;
        let km_equivalent = match unit {
            DistanceUnit::Kilometres => value,
            DistanceUnit::Miles => value * 1.609_344,
        };
        if km_equivalent > km_limit {
            return Err(DistanceError::TooLarge);
        }
        let metres = match unit {
            DistanceUnit::Kilometres => (value * METRES_PER_KM as f64).round() as i64,
            DistanceUnit::Miles => {
                // Work in millimetres of the mile ratio on an integer scale where the input has
                // at most micro-mile precision, so 1 mi is exactly 1609.344 m → 1609 m.
                let micro_miles = (value * 1_000_000.0).round() as i128;
                let micro_mm = micro_miles * MILE_NUMERATOR_MM; // millimetres × 10^6
                let metres_x1e9 = micro_mm; // metres × 10^9
                ((metres_x1e9 + 500_000_000) / 1_000_000_000) as i64
            }
        };
        Distance::from_metres(metres)
    }

    /// Whole metres.
    pub fn metres(self) -> i64 {
        self.0
    }

    /// Kilometres as a float, for display and JSON (exact to the metre).
    pub fn km(self) -> f64 {
        self.0 as f64 / METRES_PER_KM as f64
    }

    /// The absolute difference between two distances.
    pub fn abs_diff(self, other: Distance) -> Distance {
        Distance((self.0 - other.0).abs())
    }
}

impl fmt::Display for Distance {
    /// Kilometres with only the decimals they need (whole metres at most), e.g. `51048 km`,
    /// `12345.6 km`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (km, m) = (self.0 / METRES_PER_KM, self.0 % METRES_PER_KM);
        if m == 0 {
            return write!(f, "{km} km");
        }
        let decimals = format!("{m:03}");
        write!(f, "{km}.{} km", decimals.trim_end_matches('0'))
    }
}

/// The distance units odometers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistanceUnit {
    /// Kilometres: `km`, `kms`, `kilometer(s)`, `kilometre(s)`.
    Kilometres,
    /// International miles: `mi`, `mile(s)`.
    Miles,
}

/// A unit name that is not a known distance unit; it is flagged, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown distance unit {0:?}")]
pub struct UnknownUnit(pub String);

impl FromStr for DistanceUnit {
    type Err = UnknownUnit;

    /// The unit one of [`DistanceUnit::ALIASES`] names, ignoring case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        DistanceUnit::ALIASES
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map(|&(_, unit)| unit)
            .ok_or_else(|| UnknownUnit(s.to_owned()))
    }
}

impl DistanceUnit {
    /// Every accepted name of a distance unit. The one table: odometer readings and stored signal
    /// values both parse units through it, so they cannot disagree on what a name means.
    pub const ALIASES: &'static [(&'static str, DistanceUnit)] = &[
        ("km", DistanceUnit::Kilometres),
        ("kms", DistanceUnit::Kilometres),
        ("kilometer", DistanceUnit::Kilometres),
        ("kilometers", DistanceUnit::Kilometres),
        ("kilometre", DistanceUnit::Kilometres),
        ("kilometres", DistanceUnit::Kilometres),
        ("mi", DistanceUnit::Miles),
        ("mile", DistanceUnit::Miles),
        ("miles", DistanceUnit::Miles),
    ];

    /// The canonical short name: `km` or `mi`.
    pub fn as_str(self) -> &'static str {
        match self {
            DistanceUnit::Kilometres => "km",
            DistanceUnit::Miles => "mi",
        }
    }
}

impl fmt::Display for DistanceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: f64, unit: &str, expected: Result<i64, DistanceError>) {
        let unit: DistanceUnit = unit.parse().expect("known unit");
        assert_eq!(
            Distance::from_value(value, unit).map(Distance::metres),
            expected,
            "{value} {unit}"
        );
    }

    #[test]
    fn conversions() {
        check(0.0, "km", Ok(0));
        check(12345.0, "kilometers", Ok(12_345_000));
        check(12345.6, "kilometres", Ok(12_345_600));
        check(0.0004, "km", Ok(0));
        check(0.0005, "km", Ok(1));
        check(1.0, "mi", Ok(1_609));
        check(1.0, "miles", Ok(1_609));
        check(10.0, "miles", Ok(16_093));
        check(1000.0, "miles", Ok(1_609_344));
        check(12345.0, "miles", Ok(19_867_352));
        check(62_137.119_223_733, "mi", Ok(100_000_000));
        check(-1.0, "km", Err(DistanceError::Negative));
        check(f64::NAN, "km", Err(DistanceError::NotFinite));
        check(f64::INFINITY, "mi", Err(DistanceError::NotFinite));
        check(100_000_000.0, "km", Ok(MAX_METRES));
        check(100_000_000.001, "km", Err(DistanceError::TooLarge));
        check(1e300, "mi", Err(DistanceError::TooLarge));
    }

    fn check_unit(name: &str, expected: Option<DistanceUnit>) {
        assert_eq!(
            name.parse::<DistanceUnit>(),
            expected.ok_or_else(|| UnknownUnit(name.to_owned())),
            "{name:?}"
        );
    }

    #[test]
    fn unit_aliases() {
        use DistanceUnit::{Kilometres as Km, Miles as Mi};
        check_unit("km", Some(Km));
        check_unit("KM", Some(Km));
        check_unit("Km", Some(Km));
        check_unit("kms", Some(Km));
        check_unit("KMS", Some(Km));
        check_unit("kilometer", Some(Km));
        check_unit("kilometers", Some(Km));
        check_unit("kilometre", Some(Km));
        check_unit("kilometres", Some(Km));
        check_unit("Kilometres", Some(Km));
        check_unit(" km ", Some(Km));
        check_unit("\tkilometers\n", Some(Km));
        check_unit("mi", Some(Mi));
        check_unit("MI", Some(Mi));
        check_unit("mile", Some(Mi));
        check_unit("Mile", Some(Mi));
        check_unit("miles", Some(Mi));
        check_unit("MILES", Some(Mi));
        check_unit(" miles ", Some(Mi));
        for name in [
            "", " ", "m", "k", "meters", "ft", "nmi", "mph", "kmh", "percent", "k m",
        ] {
            check_unit(name, None);
        }
        // Every alias parses to its unit, and the canonical names are aliases.
        for &(alias, unit) in DistanceUnit::ALIASES {
            check_unit(alias, Some(unit));
            check_unit(&alias.to_ascii_uppercase(), Some(unit));
        }
        check_unit(Km.as_str(), Some(Km));
        check_unit(Mi.as_str(), Some(Mi));
    }

    #[test]
    fn display_in_km() {
        assert_eq!(Distance(12_345_600).to_string(), "12345.6 km");
        assert_eq!(Distance(51_048_000).to_string(), "51048 km");
        assert_eq!(Distance(51_048_050).to_string(), "51048.05 km");
        assert_eq!(Distance(5).to_string(), "0.005 km");
        assert_eq!(Distance(0).to_string(), "0 km");
        assert_eq!(Distance(12_345_600).km(), 12345.6);
    }

    #[test]
    fn range_checks() {
        assert_eq!(Distance::from_metres(-1), Err(DistanceError::Negative));
        assert_eq!(
            Distance::from_metres(MAX_METRES + 1),
            Err(DistanceError::TooLarge)
        );
        assert_eq!(Distance::from_metres(MAX_METRES), Ok(Distance::MAX));
        assert_eq!(Distance::from_metres(0), Ok(Distance::ZERO));
    }
}
