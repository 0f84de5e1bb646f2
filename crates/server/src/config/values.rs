//! How a setting's text becomes its typed value ([`parse`]), and how the value is shown to an
//! operator ([`show`]). Each declaration in `config/mod.rs` names one of each.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// A secret value: its `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: only for signing and verifying, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Events younger than this are never pruned: Smartcar redelivers, and dedup needs their ids.
pub const MIN_RETENTION: Duration =
    Duration::from_secs(meterhook_store::MIN_RETENTION_DAYS.unsigned_abs() * 24 * 3600);

/// Parsers: the setting's variable name (for the message) and its text, to its typed value.
pub mod parse {
    use std::str::FromStr;
    use std::time::Duration;

    use meterhook_domain::{Distance, DistanceUnit};

    use super::{invalid, Secret, MIN_RETENTION};
    use crate::config::ConfigError;

    /// A key or token without its surrounding whitespace (the newline a secrets file ends with,
    /// a pasted space). Set but empty stops the start: it is a mistake, not a way to say "none".
    pub fn secret(name: &'static str, text: &str) -> Result<Option<Secret>, ConfigError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return invalid(name, "is set but empty; unset it, or give it its value");
        }
        Ok(Some(Secret::new(trimmed)))
    }

    /// A database URL that names a backend meterhook knows; the message never repeats it.
    pub fn database_url(name: &'static str, text: &str) -> Result<Secret, ConfigError> {
        let url = text.trim();
        meterhook_store::DatabaseUrl::parse(url).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        })?;
        Ok(Secret::new(url))
    }

    /// Text that must not be empty (an address).
    pub fn not_empty(name: &'static str, text: &str) -> Result<String, ConfigError> {
        match text.trim() {
            "" => invalid(name, "is empty"),
            text => Ok(text.to_owned()),
        }
    }

    /// Text as written, without surrounding whitespace; empty is allowed (a path turned off).
    pub fn text(_name: &'static str, text: &str) -> Result<String, ConfigError> {
        Ok(text.trim().to_owned())
    }

    /// An unsigned count.
    pub fn count<T: FromStr>(name: &'static str, text: &str) -> Result<T, ConfigError> {
        text.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("invalid count {text:?} (expected a whole number, 0 or more)"),
        })
    }

    /// A count that must be at least 1.
    pub fn positive<T: FromStr + PartialOrd + From<u8>>(
        name: &'static str,
        text: &str,
    ) -> Result<T, ConfigError> {
        let n = count(name, text)?;
        if n < T::from(1) {
            return invalid(name, "must be at least 1");
        }
        Ok(n)
    }

    /// A count from 1 to what a signed 32-bit column holds (attempts are stored so).
    pub fn attempts(name: &'static str, text: &str) -> Result<u32, ConfigError> {
        let n: u32 = count(name, text)?;
        if n == 0 || i32::try_from(n).is_err() {
            return invalid(name, "must be from 1 to 2147483647");
        }
        Ok(n)
    }

    /// A count from 1 to what a signed 64-bit column holds (events are counted so).
    pub fn events(name: &'static str, text: &str) -> Result<u64, ConfigError> {
        let n: u64 = count(name, text)?;
        if n == 0 || i64::try_from(n).is_err() {
            return invalid(name, "must be from 1 to 9223372036854775807");
        }
        Ok(n)
    }

    /// A size in bytes, at least 1024.
    pub fn body_limit(name: &'static str, text: &str) -> Result<usize, ConfigError> {
        let n: usize = count(name, text)?;
        if n < 1024 {
            return invalid(name, "must be at least 1024 bytes");
        }
        Ok(n)
    }

    /// A yes/no setting: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
    pub fn flag(name: &'static str, text: &str) -> Result<bool, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!("invalid value {text:?} (expected true or false)"),
            }),
        }
    }

    /// A distance in kilometres, finite and at least 0.
    pub fn kilometres(name: &'static str, text: &str) -> Result<Distance, ConfigError> {
        let km = text
            .trim()
            .parse::<f64>()
            .map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("invalid number {text:?} (expected kilometres, e.g. 1 or 0.5)"),
            })?;
        Distance::from_value(km, DistanceUnit::Kilometres).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        })
    }

    /// Parses `30d`, `24h`, `90m`, `1h 30m`… (humantime's syntax).
    pub fn duration(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(text.trim()).map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("invalid duration {text:?} (expected e.g. 30s, 1h or 30d: {e})"),
        })
    }

    /// A duration of at least 100 ms (a refresh interval).
    pub fn interval(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
        let every = duration(name, text)?;
        if every < Duration::from_millis(100) {
            return invalid(name, "must be at least 100ms");
        }
        Ok(every)
    }

    /// A duration that timestamps are moved by (a cut-off date, a window either side of a
    /// reading): it must keep them inside the calendar chrono can represent.
    pub fn date_span(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
        let span = duration(name, text)?;
        let now = meterhook_store::now();
        let fits = chrono::TimeDelta::from_std(span).ok().is_some_and(|delta| {
            now.checked_sub_signed(delta).is_some() && now.checked_add_signed(delta).is_some()
        });
        if fits {
            Ok(span)
        } else {
            invalid(
                name,
                &format!("{text:?} is too long: dates that far from now cannot be represented"),
            )
        }
    }

    /// A retention window, or none with `off`.
    pub fn retention_or_off(
        name: &'static str,
        text: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        match text.trim() {
            off if off.eq_ignore_ascii_case("off") => Ok(None),
            text => date_span(name, text).map(Some),
        }
    }

    /// The events' retention window: as [`retention_or_off`], at least [`MIN_RETENTION`].
    pub fn event_retention(
        name: &'static str,
        text: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let window = retention_or_off(name, text)?;
        if window.is_some_and(|w| w < MIN_RETENTION) {
            return invalid(
                name,
                "must be at least 7d: Smartcar may redeliver an event for days, and its id must \
                 still be known",
            );
        }
        Ok(window)
    }
}

/// How values are shown to an operator (`meterhook doctor`, the docs' default column): secrets
/// never, durations in the largest whole unit, as they are written in settings.
pub mod show {
    use std::time::Duration;

    use meterhook_domain::Distance;

    use super::Secret;

    /// Whether a secret is set, and its length; never the secret.
    pub fn secret(value: &Option<Secret>) -> String {
        match value {
            Some(s) => format!("{s} ({} bytes)", s.expose().len()),
            None => "not set".to_owned(),
        }
    }

    /// The database URL without its password.
    pub fn database_url(value: &Secret) -> String {
        meterhook_store::DatabaseUrl::parse(value.expose())
            .map_or_else(|_| "[invalid]".to_owned(), |u| u.redacted())
    }

    /// A number, a flag or a text as it is written.
    pub fn plain<T: ToString>(value: &T) -> String {
        value.to_string()
    }

    /// A distance in kilometres.
    pub fn kilometres(value: &Distance) -> String {
        value.km().to_string()
    }

    /// In the largest whole unit: humantime would print 90d as "2months 29days 2h 52m 48s" (its
    /// months are 30.44 days).
    pub fn duration(value: &Duration) -> String {
        match (value.subsec_nanos(), value.as_secs()) {
            (0, 0) => "0s".to_owned(),
            (0, s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
            (0, s) if s % 3_600 == 0 => format!("{}h", s / 3_600),
            (0, s) if s % 60 == 0 => format!("{}m", s / 60),
            _ => humantime::format_duration(*value).to_string(),
        }
    }

    /// A window, or `off`.
    pub fn duration_or_off(value: &Option<Duration>) -> String {
        value.as_ref().map_or_else(|| "off".to_owned(), duration)
    }
}

fn invalid<T>(name: &'static str, reason: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        name,
        reason: reason.to_owned(),
    })
}
