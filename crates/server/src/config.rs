//! Settings: defaults → optional `meterhook.toml` (or `--config PATH`) → `.env.local` / `.env` in
//! the working directory → environment. Only this module reads the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meterhook_domain::{Distance, DistanceUnit, Policy};
use meterhook_ingest::RetryPolicy;
use meterhook_smartcar::SigningKeys;
use serde::Deserialize;

/// The default configuration file, read when present in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "meterhook.toml";

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

/// Everything meterhook can be configured with. See `docs/CONFIGURATION.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `SMARTCAR_MANAGEMENT_TOKEN`: the Application Management Token Smartcar signs with.
    pub management_token: Option<Secret>,
    /// `SMARTCAR_WEBHOOK_SECRET`: one more accepted signing key (e.g. the previous token).
    pub webhook_secret: Option<Secret>,
    /// `DATABASE_URL`: `sqlite://PATH` (default `sqlite://meterhook.db`) or `postgres://…`.
    pub database_url: Secret,
    /// `METERHOOK_LISTEN`: the address to serve on.
    pub listen: String,
    /// `METERHOOK_WORKERS`: HTTP worker threads (0: one per core).
    pub workers: usize,
    /// `METERHOOK_WRITERS`: threads committing deliveries in batches (0: 1 on SQLite, 2 on
    /// PostgreSQL).
    pub writers: usize,
    /// `METERHOOK_POOL_SIZE`: database connections.
    pub pool_size: u32,
    /// `METERHOOK_DUPLICATE_WINDOW`: the same reading within this time is a duplicate (`1h`).
    pub duplicate_window: String,
    /// `METERHOOK_MAX_SPEED_KMH`: implausible-jump threshold; 0 turns the check off.
    pub max_speed_kmh: u32,
    /// `METERHOOK_JUMP_TOLERANCE_KM`: differences up to this never count as a jump.
    pub jump_tolerance_km: f64,
    /// `METERHOOK_BODY_LIMIT`: the largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `METERHOOK_CLIENT_TIMEOUT`: how long a client may take to send its request head, and
    /// again its body (`10s`).
    pub client_timeout: String,
    /// `METERHOOK_MAX_ATTEMPTS`: processing attempts before an event is `dead`.
    pub max_attempts: u32,
    /// `METERHOOK_RETRY_BACKOFF`: wait before the first retry; doubles each time, at most 1h.
    pub retry_backoff: String,
    /// `METERHOOK_SPOOL_PATH`: local SQLite file that takes events while PostgreSQL is
    /// unreachable (PostgreSQL only; empty turns the spool off).
    pub spool_path: String,
    /// `METERHOOK_API_TOKEN`: turns the read API on, behind `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// `METERHOOK_RETENTION`: when set (e.g. `30d`, at least `7d`), processed events older than
    /// this are pruned every hour.
    pub retention: Option<String>,
}

/// A setting that stops the start, with the setting's name in the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration could not be read or has a wrong or unknown key.
    #[error("configuration: {0}")]
    Load(String),
    /// A value is out of range or malformed.
    #[error("configuration: {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Names of the unprefixed environment variables and the settings they set (the seed's names).
const PLAIN_ENV: [(&str, &str); 3] = [
    ("SMARTCAR_MANAGEMENT_TOKEN", "management_token"),
    ("SMARTCAR_WEBHOOK_SECRET", "webhook_secret"),
    ("DATABASE_URL", "database_url"),
];

impl Settings {
    /// Loads settings from every source; `config_path` overrides `meterhook.toml`, and must exist.
    pub fn load(config_path: Option<&Path>) -> Result<Settings, ConfigError> {
        load_env_files()?;
        let (file, required): (PathBuf, bool) = match config_path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let mut builder = Self::defaults()
            .add_source(config::File::from(file.as_path()).required(required))
            .add_source(
                config::Environment::with_prefix("METERHOOK")
                    .prefix_separator("_")
                    .try_parsing(true),
            );
        for (var, key) in PLAIN_ENV {
            if let Ok(value) = std::env::var(var) {
                builder = builder
                    .set_override(key, value)
                    .map_err(|e| ConfigError::Load(e.to_string()))?;
            }
        }
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Settings from defaults alone (tests build on these).
    pub fn default_settings() -> Settings {
        #[allow(clippy::expect_used)] // the defaults are constants checked by a test
        Self::defaults()
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("defaults deserialize")
    }

    fn defaults() -> config::ConfigBuilder<config::builder::DefaultState> {
        let set = |b: config::ConfigBuilder<_>, k: &str, v: config::Value| {
            b.set_default(k, v)
                .unwrap_or_else(|_| unreachable!("static key"))
        };
        let mut b = config::Config::builder();
        b = set(b, "database_url", "sqlite://meterhook.db".into());
        b = set(b, "listen", "127.0.0.1:3000".into());
        b = set(b, "workers", 0i64.into());
        b = set(b, "pool_size", 8i64.into());
        b = set(b, "writers", 0i64.into());
        b = set(b, "duplicate_window", "1h".into());
        b = set(b, "max_speed_kmh", 300i64.into());
        b = set(b, "jump_tolerance_km", 1.0f64.into());
        b = set(b, "body_limit", (64i64 * 1024).into());
        b = set(b, "client_timeout", "10s".into());
        b = set(b, "max_attempts", 8i64.into());
        b = set(b, "retry_backoff", "5s".into());
        b = set(b, "spool_path", "meterhook-spool.db".into());
        b
    }

    /// Checks every value that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy()?;
        self.client_timeout()?;
        self.retry()?;
        self.retention_window()?;
        meterhook_store::DatabaseUrl::parse(self.database_url.expose()).map_err(|e| {
            ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            }
        })?;
        if self.listen.trim().is_empty() {
            return invalid("METERHOOK_LISTEN", "is empty");
        }
        if self.pool_size == 0 {
            return invalid("METERHOOK_POOL_SIZE", "must be at least 1");
        }
        if self.body_limit < 1024 {
            return invalid("METERHOOK_BODY_LIMIT", "must be at least 1024 bytes");
        }
        Ok(())
    }

    /// The signing keys: the management token, then the webhook secret. Needed to serve and to
    /// send test events; an absent or empty token stops the start.
    pub fn signing_keys(&self) -> Result<SigningKeys, ConfigError> {
        let token = match &self.management_token {
            Some(t) if !t.expose().is_empty() => t,
            _ => return invalid(
                "SMARTCAR_MANAGEMENT_TOKEN",
                "is not set; it is the Application Management Token from the Smartcar dashboard",
            ),
        };
        let mut keys = vec![token.expose().as_bytes()];
        if let Some(secret) = &self.webhook_secret {
            if !secret.expose().is_empty() {
                keys.push(secret.expose().as_bytes());
            }
        }
        SigningKeys::new(keys).map_err(|e| ConfigError::Invalid {
            name: "SMARTCAR_MANAGEMENT_TOKEN",
            reason: e.to_string(),
        })
    }

    /// Whether the management token is shorter than 16 bytes (warned about at start).
    pub fn token_is_short(&self) -> bool {
        self.management_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
    }

    /// The odometer rules' policy.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let window = parse_duration("METERHOOK_DUPLICATE_WINDOW", &self.duplicate_window)?;
        let tolerance = Distance::from_value(self.jump_tolerance_km, DistanceUnit::Kilometres)
            .map_err(|e| ConfigError::Invalid {
                name: "METERHOOK_JUMP_TOLERANCE_KM",
                reason: e.to_string(),
            })?;
        Ok(Policy {
            duplicate_window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            max_speed_kmh: self.max_speed_kmh,
            jump_tolerance: tolerance,
        })
    }

    /// How long a client may take to send a request.
    pub fn client_timeout(&self) -> Result<Duration, ConfigError> {
        parse_duration("METERHOOK_CLIENT_TIMEOUT", &self.client_timeout)
    }

    /// How failed processing is retried.
    pub fn retry(&self) -> Result<RetryPolicy, ConfigError> {
        if self.max_attempts == 0 {
            return invalid("METERHOOK_MAX_ATTEMPTS", "must be at least 1");
        }
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: parse_duration("METERHOOK_RETRY_BACKOFF", &self.retry_backoff)?,
        })
    }

    /// The retention window, when pruning on a schedule is configured.
    pub fn retention_window(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = self.retention.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let window = parse_duration("METERHOOK_RETENTION", text)?;
        if window < MIN_RETENTION {
            return invalid(
                "METERHOOK_RETENTION",
                "must be at least 7d: Smartcar may redeliver an event for days, and its id must still be known",
            );
        }
        Ok(Some(window))
    }

    /// The spool file, when the main database is PostgreSQL and the spool is not turned off.
    pub fn spool_url(&self) -> Option<String> {
        let main = meterhook_store::DatabaseUrl::parse(self.database_url.expose()).ok()?;
        (main.backend() == meterhook_store::Backend::Postgres && !self.spool_path.trim().is_empty())
            .then(|| format!("sqlite://{}", self.spool_path.trim()))
    }

    /// Database pool options.
    pub fn pool_options(&self) -> meterhook_store::PoolOptions {
        meterhook_store::PoolOptions {
            max_size: self.pool_size,
            ..meterhook_store::PoolOptions::default()
        }
    }
}

/// Loads `.env.local`, then `.env`, from the working directory (not its parents) into the
/// environment; they fill in only what the environment does not set, so `.env.local` wins over
/// `.env` and the real environment wins over both. Safe to call more than once.
pub fn load_env_files() -> Result<(), ConfigError> {
    for file in [".env.local", ".env"] {
        match dotenvy::from_path(Path::new(file)) {
            Ok(()) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::Load(format!("{file}: {e}"))),
        }
    }
    Ok(())
}

/// Events younger than this are never pruned: Smartcar redelivers, and dedup needs their ids.
pub const MIN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

fn invalid<T>(name: &'static str, reason: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        name,
        reason: reason.to_owned(),
    })
}

/// Parses `30d`, `24h`, `90m`, `1h 30m`… (humantime's syntax).
pub fn parse_duration(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("{value:?} is not a duration like 30s, 1h or 30d ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secret_free() {
        let s = Settings::default_settings();
        s.validate().expect("defaults valid");
        assert_eq!(s.listen, "127.0.0.1:3000");
        assert_eq!(s.database_url.expose(), "sqlite://meterhook.db");
        assert_eq!(s.policy().expect("policy"), Policy::default());
        assert!(s.signing_keys().is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut s = Settings::default_settings();
        s.management_token = Some(Secret::new("tok-abcdefghijklmnop"));
        s.database_url = Secret::new("postgres://u:pw-xyz@h/db");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("tok-abcdefghijklmnop") && !shown.contains("pw-xyz"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut s = Settings::default_settings();
        s.duplicate_window = "soon".into();
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("METERHOOK_DUPLICATE_WINDOW"), "{err}");
        let mut s = Settings::default_settings();
        s.database_url = Secret::new("mysql://x/y");
        assert!(s
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("DATABASE_URL"));
        let mut s = Settings::default_settings();
        s.management_token = Some(Secret::new(""));
        assert!(s
            .signing_keys()
            .expect_err("empty")
            .to_string()
            .contains("SMARTCAR_MANAGEMENT_TOKEN"));
    }
}
