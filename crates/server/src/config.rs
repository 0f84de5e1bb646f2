//! Settings: defaults → optional `meterhook.toml` (or `--config PATH`) → `.env.local` / `.env` in
//! the working directory → environment. Only this module reads the environment.
//!
//! Every value is parsed here, once, into its type: a bad one stops the start with the name of its
//! variable, and nothing downstream parses text again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use meterhook_domain::{Distance, DistanceUnit, Policy};
use meterhook_ingest::{Intake, RetryPolicy};
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

/// Everything meterhook can be configured with, parsed. See `docs/CONFIGURATION.md`.
#[derive(Debug, Clone)]
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
    /// `METERHOOK_POOL_SIZE`: database connections for the writers and background passes, at
    /// least 1.
    pub pool_size: u32,
    /// `METERHOOK_READ_POOL_SIZE`: database connections for the readers (read API, metrics,
    /// readiness), a pool of their own, at least 1.
    pub read_pool_size: u32,
    /// `METERHOOK_METRICS_INTERVAL`: how often the database gauges of `/metrics` are refreshed.
    pub metrics_interval: Duration,
    /// `METERHOOK_QUEUE`: deliveries waiting for each writer at most; more are answered 503.
    pub queue: usize,
    /// `METERHOOK_MAX_CONNECTIONS`: open connections each HTTP worker serves at most.
    pub max_connections: usize,
    /// `METERHOOK_SPOOL_MAX_EVENTS`: events the outage spool holds at most.
    pub spool_max_events: u64,
    /// `METERHOOK_DUPLICATE_WINDOW`: the same reading within this time is a duplicate.
    pub duplicate_window: Duration,
    /// `METERHOOK_MAX_SPEED_KMH`: implausible-jump threshold; 0 turns the check off.
    pub max_speed_kmh: u32,
    /// `METERHOOK_JUMP_TOLERANCE_KM`: differences up to this never count as a jump.
    pub jump_tolerance: Distance,
    /// `METERHOOK_SUPERSEDE_AFTER`: this many refused readings that agree with each other void the
    /// accepted entry that refused them; 0 turns self-healing off.
    pub supersede_after: u32,
    /// `METERHOOK_MAX_CLOCK_SKEW`: a car's observation time later than the receipt by more than
    /// this is not trusted.
    pub max_clock_skew: Duration,
    /// `METERHOOK_PROCESS_TEST_EVENTS`: process the dashboard's TEST deliveries like live ones.
    pub process_test_events: bool,
    /// `METERHOOK_BODY_LIMIT`: the largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `METERHOOK_CLIENT_TIMEOUT`: how long a client may take to send its request head, and
    /// again its body.
    pub client_timeout: Duration,
    /// `METERHOOK_MAX_ATTEMPTS`: processing attempts before an event is `dead`, at least 1.
    pub max_attempts: u32,
    /// `METERHOOK_RETRY_BACKOFF`: wait before the first retry; doubles each time, at most 1h.
    pub retry_backoff: Duration,
    /// `METERHOOK_SPOOL_PATH`: local SQLite file that takes events while PostgreSQL is
    /// unreachable (PostgreSQL only; empty turns the spool off).
    pub spool_path: String,
    /// `METERHOOK_API_TOKEN`: turns the app API (reads and registrations) on, behind
    /// `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// `METERHOOK_UI_PASSWORD`: turns the status pages under `/ui/` on, behind HTTP Basic
    /// authentication with this password.
    pub ui_password: Option<Secret>,
    /// `METERHOOK_RETENTION`: when set (at least 7 days), processed events older than this are
    /// pruned every hour.
    pub retention: Option<Duration>,
    /// `METERHOOK_SIGNAL_RETENTION`: `meterhook prune` deletes signal values stored longer ago
    /// than this (default 90 days; `off` keeps them).
    pub signal_retention: Option<Duration>,
    /// `METERHOOK_SYNC_LOG_RETENTION`: `meterhook prune` deletes sync logs written longer ago
    /// than this (default 400 days; `off` keeps them).
    pub sync_log_retention: Option<Duration>,
    /// `METERHOOK_CHANGE_RETENTION`: changes (`GET /api/changes`) recorded longer ago than this
    /// are pruned (default 30 days; `off` keeps them).
    pub change_retention: Option<Duration>,
    /// `METERHOOK_NOTIFY_URL`: where each change is POSTed as a signed notification.
    pub notify_url: Option<String>,
    /// `METERHOOK_NOTIFY_SECRET`: the notifications' signing secret, `whsec_…`.
    pub notify_secret: Option<Secret>,
    /// `METERHOOK_NOTIFY_ALLOW_HTTP`: allows a plain `http` notification URL to a host that is
    /// not loopback.
    pub notify_allow_http: bool,
    /// `METERHOOK_NOTIFY_RETRY_SCHEDULE`: the delays before each retry of a notification.
    pub notify_retry_schedule: Vec<Duration>,
}

/// What the sources hold, before parsing: every value as the text it was written as.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    management_token: Option<Secret>,
    webhook_secret: Option<Secret>,
    database_url: Option<Secret>,
    listen: Option<String>,
    workers: Option<String>,
    writers: Option<String>,
    pool_size: Option<String>,
    read_pool_size: Option<String>,
    metrics_interval: Option<String>,
    queue: Option<String>,
    max_connections: Option<String>,
    spool_max_events: Option<String>,
    duplicate_window: Option<String>,
    max_speed_kmh: Option<String>,
    jump_tolerance_km: Option<String>,
    max_clock_skew: Option<String>,
    supersede_after: Option<String>,
    process_test_events: Option<String>,
    body_limit: Option<String>,
    client_timeout: Option<String>,
    max_attempts: Option<String>,
    retry_backoff: Option<String>,
    spool_path: Option<String>,
    api_token: Option<Secret>,
    ui_password: Option<Secret>,
    retention: Option<String>,
    signal_retention: Option<String>,
    sync_log_retention: Option<String>,
    change_retention: Option<String>,
    notify_url: Option<String>,
    notify_secret: Option<Secret>,
    notify_allow_http: Option<String>,
    notify_retry_schedule: Option<String>,
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
        let mut builder = config::Config::builder()
            .add_source(config::File::from(file.as_path()).required(required))
            // Without `try_parsing` every variable stays the text it was written as: with it,
            // `METERHOOK_API_TOKEN=000123` became the number 123, and then the token "123".
            .add_source(config::Environment::with_prefix("METERHOOK").prefix_separator("_"));
        for (var, key) in PLAIN_ENV {
            match std::env::var(var) {
                Ok(value) => {
                    builder = builder
                        .set_override(key, value)
                        .map_err(|e| ConfigError::Load(e.to_string()))?;
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return invalid(var, "is not valid UTF-8");
                }
            }
        }
        let raw: Raw = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        Settings::parse(raw)
    }

    /// Settings from the defaults alone, as if nothing were configured: a base to adjust in code
    /// when meterhook is embedded.
    pub fn default_settings() -> Settings {
        #[allow(clippy::expect_used)] // the defaults are constants checked by a test
        Settings::parse(Raw::default()).expect("the defaults are valid")
    }

    /// Parses and checks every value that can be checked without the network; the defaults are
    /// here.
    fn parse(raw: Raw) -> Result<Settings, ConfigError> {
        let database_url = Secret::new(
            raw.database_url
                .as_ref()
                .map_or("sqlite://meterhook.db", |u| u.expose())
                .trim(),
        );
        meterhook_store::DatabaseUrl::parse(database_url.expose()).map_err(|e| {
            ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            }
        })?;
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:3000").trim();
        if listen.is_empty() {
            return invalid("METERHOOK_LISTEN", "is empty");
        }
        let pool_size = positive("METERHOOK_POOL_SIZE", raw.pool_size.as_deref(), 8u32)?;
        let read_pool_size = positive(
            "METERHOOK_READ_POOL_SIZE",
            raw.read_pool_size.as_deref(),
            4u32,
        )?;
        let metrics_interval = parse_duration(
            "METERHOOK_METRICS_INTERVAL",
            raw.metrics_interval.as_deref().unwrap_or("10s"),
        )?;
        if metrics_interval < Duration::from_millis(100) {
            return invalid("METERHOOK_METRICS_INTERVAL", "must be at least 100ms");
        }
        let queue = positive("METERHOOK_QUEUE", raw.queue.as_deref(), 4_096usize)?;
        let max_connections = positive(
            "METERHOOK_MAX_CONNECTIONS",
            raw.max_connections.as_deref(),
            1_024usize,
        )?;
        let spool_max_events = count(
            "METERHOOK_SPOOL_MAX_EVENTS",
            raw.spool_max_events.as_deref(),
            100_000u64,
        )?;
        if spool_max_events == 0 || i64::try_from(spool_max_events).is_err() {
            return invalid(
                "METERHOOK_SPOOL_MAX_EVENTS",
                "must be from 1 to 9223372036854775807",
            );
        }
        let body_limit = count("METERHOOK_BODY_LIMIT", raw.body_limit.as_deref(), 64 * 1024)?;
        if body_limit < 1024 {
            return invalid("METERHOOK_BODY_LIMIT", "must be at least 1024 bytes");
        }
        let max_attempts = count("METERHOOK_MAX_ATTEMPTS", raw.max_attempts.as_deref(), 8u32)?;
        if max_attempts == 0 || i32::try_from(max_attempts).is_err() {
            return invalid("METERHOOK_MAX_ATTEMPTS", "must be from 1 to 2147483647");
        }
        let tolerance = match raw.jump_tolerance_km.as_deref() {
            None => 1.0,
            Some(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| ConfigError::Invalid {
                    name: "METERHOOK_JUMP_TOLERANCE_KM",
                    reason: format!("invalid number {text:?} (expected kilometres, e.g. 1 or 0.5)"),
                })?,
        };
        let jump_tolerance =
            Distance::from_value(tolerance, DistanceUnit::Kilometres).map_err(|e| {
                ConfigError::Invalid {
                    name: "METERHOOK_JUMP_TOLERANCE_KM",
                    reason: e.to_string(),
                }
            })?;
        let duplicate_window = date_span(
            "METERHOOK_DUPLICATE_WINDOW",
            raw.duplicate_window.as_deref().unwrap_or("1h"),
        )?;
        let retention = match raw.retention.as_deref().filter(|t| !t.trim().is_empty()) {
            None => None,
            Some(text) => {
                let window = date_span("METERHOOK_RETENTION", text)?;
                if window < MIN_RETENTION {
                    return invalid(
                        "METERHOOK_RETENTION",
                        "must be at least 7d: Smartcar may redeliver an event for days, and its id must still be known",
                    );
                }
                Some(window)
            }
        };
        let notify_allow_http = flag(
            "METERHOOK_NOTIFY_ALLOW_HTTP",
            raw.notify_allow_http.as_deref(),
        )?;
        let notify_url = raw
            .notify_url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        let notify_secret = key("METERHOOK_NOTIFY_SECRET", raw.notify_secret)?;
        if let Some(url) = &notify_url {
            crate::notify::check_url(url, notify_allow_http)
                .or_else(|reason| invalid("METERHOOK_NOTIFY_URL", &reason))?;
            if notify_secret.is_none() {
                return invalid(
                    "METERHOOK_NOTIFY_SECRET",
                    "is needed with METERHOOK_NOTIFY_URL (meterhook notify new-secret makes one)",
                );
            }
        }
        if let Some(secret) = &notify_secret {
            crate::notify::NotifySecret::parse(secret.expose())
                .or_else(|reason| invalid("METERHOOK_NOTIFY_SECRET", &reason))?;
        }
        Ok(Settings {
            change_retention: retention_or_off(
                "METERHOOK_CHANGE_RETENTION",
                raw.change_retention.as_deref(),
                DEFAULT_CHANGE_RETENTION,
            )?,
            notify_url,
            notify_secret,
            notify_allow_http,
            notify_retry_schedule: raw
                .notify_retry_schedule
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map_or_else(
                    || Ok(crate::notify::RETRY_DELAYS.to_vec()),
                    |text| {
                        text.split(',')
                            .map(|d| parse_duration("METERHOOK_NOTIFY_RETRY_SCHEDULE", d))
                            .collect()
                    },
                )?,
            signal_retention: retention_or_off(
                "METERHOOK_SIGNAL_RETENTION",
                raw.signal_retention.as_deref(),
                DEFAULT_SIGNAL_RETENTION,
            )?,
            sync_log_retention: retention_or_off(
                "METERHOOK_SYNC_LOG_RETENTION",
                raw.sync_log_retention.as_deref(),
                DEFAULT_SYNC_LOG_RETENTION,
            )?,
            management_token: key("SMARTCAR_MANAGEMENT_TOKEN", raw.management_token)?,
            webhook_secret: key("SMARTCAR_WEBHOOK_SECRET", raw.webhook_secret)?,
            database_url,
            listen: listen.to_owned(),
            workers: count("METERHOOK_WORKERS", raw.workers.as_deref(), 0)?,
            writers: count("METERHOOK_WRITERS", raw.writers.as_deref(), 0)?,
            pool_size,
            read_pool_size,
            metrics_interval,
            queue,
            max_connections,
            spool_max_events,
            duplicate_window,
            max_speed_kmh: count("METERHOOK_MAX_SPEED_KMH", raw.max_speed_kmh.as_deref(), 300)?,
            jump_tolerance,
            supersede_after: count(
                "METERHOOK_SUPERSEDE_AFTER",
                raw.supersede_after.as_deref(),
                3u32,
            )?,
            max_clock_skew: parse_duration(
                "METERHOOK_MAX_CLOCK_SKEW",
                raw.max_clock_skew.as_deref().unwrap_or("5m"),
            )?,
            process_test_events: flag(
                "METERHOOK_PROCESS_TEST_EVENTS",
                raw.process_test_events.as_deref(),
            )?,
            body_limit,
            client_timeout: parse_duration(
                "METERHOOK_CLIENT_TIMEOUT",
                raw.client_timeout.as_deref().unwrap_or("10s"),
            )?,
            max_attempts,
            retry_backoff: parse_duration(
                "METERHOOK_RETRY_BACKOFF",
                raw.retry_backoff.as_deref().unwrap_or("5s"),
            )?,
            spool_path: raw
                .spool_path
                .as_deref()
                .unwrap_or("meterhook-spool.db")
                .trim()
                .to_owned(),
            api_token: key("METERHOOK_API_TOKEN", raw.api_token)?,
            ui_password: key("METERHOOK_UI_PASSWORD", raw.ui_password)?,
            retention,
        })
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

    /// Every setting's value as shown to an operator, by variable name, in the order of
    /// [`SETTINGS`]: secrets as `[redacted]`, the database URL without its password.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let secret = |s: &Option<Secret>| match s {
            Some(s) => format!("{s} ({} bytes)", s.expose().len()),
            None => "not set".to_owned(),
        };
        let database_url = meterhook_store::DatabaseUrl::parse(self.database_url.expose())
            .map_or_else(|_| "[invalid]".to_owned(), |u| u.redacted());
        // In the largest whole unit, as written in settings: humantime would print 90d as
        // "2months 29days 2h 52m 48s" (its months are 30.44 days).
        let span = |d: Duration| {
            let secs = d.as_secs();
            match (d.subsec_nanos(), secs) {
                (0, 0) => "0s".to_owned(),
                (0, s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
                (0, s) if s % 3_600 == 0 => format!("{}h", s / 3_600),
                (0, s) if s % 60 == 0 => format!("{}m", s / 60),
                _ => humantime::format_duration(d).to_string(),
            }
        };
        vec![
            ("SMARTCAR_MANAGEMENT_TOKEN", secret(&self.management_token)),
            ("SMARTCAR_WEBHOOK_SECRET", secret(&self.webhook_secret)),
            ("DATABASE_URL", database_url),
            ("METERHOOK_LISTEN", self.listen.clone()),
            ("METERHOOK_WORKERS", self.workers.to_string()),
            ("METERHOOK_WRITERS", self.writers.to_string()),
            ("METERHOOK_POOL_SIZE", self.pool_size.to_string()),
            ("METERHOOK_DUPLICATE_WINDOW", span(self.duplicate_window)),
            ("METERHOOK_MAX_SPEED_KMH", self.max_speed_kmh.to_string()),
            (
                "METERHOOK_JUMP_TOLERANCE_KM",
                self.jump_tolerance.km().to_string(),
            ),
            ("METERHOOK_BODY_LIMIT", self.body_limit.to_string()),
            ("METERHOOK_CLIENT_TIMEOUT", span(self.client_timeout)),
            ("METERHOOK_MAX_ATTEMPTS", self.max_attempts.to_string()),
            ("METERHOOK_RETRY_BACKOFF", span(self.retry_backoff)),
            ("METERHOOK_SPOOL_PATH", self.spool_path.clone()),
            ("METERHOOK_API_TOKEN", secret(&self.api_token)),
            (
                "METERHOOK_RETENTION",
                self.retention.map_or_else(|| "off".to_owned(), span),
            ),
            (
                "METERHOOK_SIGNAL_RETENTION",
                self.signal_retention.map_or_else(|| "off".to_owned(), span),
            ),
            (
                "METERHOOK_SYNC_LOG_RETENTION",
                self.sync_log_retention
                    .map_or_else(|| "off".to_owned(), span),
            ),
            (
                "METERHOOK_CHANGE_RETENTION",
                self.change_retention.map_or_else(|| "off".to_owned(), span),
            ),
            (
                "METERHOOK_NOTIFY_URL",
                self.notify_url
                    .as_deref()
                    .map_or_else(|| "not set".to_owned(), crate::notify::redacted_url),
            ),
            ("METERHOOK_NOTIFY_SECRET", secret(&self.notify_secret)),
            (
                "METERHOOK_NOTIFY_ALLOW_HTTP",
                self.notify_allow_http.to_string(),
            ),
            (
                "METERHOOK_NOTIFY_RETRY_SCHEDULE",
                self.notify_retry_schedule
                    .iter()
                    .map(|d| span(*d))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }

    /// Whether the management token is shorter than 16 bytes (warned about at start).
    pub fn token_is_short(&self) -> bool {
        self.management_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
    }

    /// Whether the API token is shorter than 16 bytes (warned about at start: it can be guessed).
    pub fn api_token_is_short(&self) -> bool {
        self.api_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
    }

    /// Whether the status page's password is shorter than 16 bytes (warned about at start).
    pub fn ui_password_is_short(&self) -> bool {
        self.ui_password
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
    }

    /// The odometer rules' policy.
    pub fn policy(&self) -> Policy {
        Policy {
            duplicate_window_ms: i64::try_from(self.duplicate_window.as_millis())
                .unwrap_or(i64::MAX),
            max_speed_kmh: self.max_speed_kmh,
            jump_tolerance: self.jump_tolerance,
            supersede_after: self.supersede_after,
        }
    }

    /// How deliveries are classified before the store sees them.
    pub fn intake(&self) -> Intake {
        Intake {
            max_clock_skew: self.max_clock_skew,
            process_test_events: self.process_test_events,
        }
    }

    /// How failed processing is retried.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.retry_backoff,
        }
    }

    /// Where and how notifications are sent; `None` when `METERHOOK_NOTIFY_URL` is not set.
    #[cfg(feature = "http-client")]
    pub fn notify(&self) -> Result<Option<crate::notify::NotifySettings>, ConfigError> {
        let (Some(url), Some(secret)) = (&self.notify_url, &self.notify_secret) else {
            return Ok(None);
        };
        let secret = crate::notify::NotifySecret::parse(secret.expose()).map_err(|reason| {
            ConfigError::Invalid {
                name: "METERHOOK_NOTIFY_SECRET",
                reason,
            }
        })?;
        Ok(Some(crate::notify::NotifySettings {
            url: url.clone(),
            secret,
            retry_schedule: self.notify_retry_schedule.clone(),
        }))
    }

    /// The spool file, when the main database is PostgreSQL and the spool is not turned off.
    pub fn spool_url(&self) -> Option<String> {
        let main = meterhook_store::DatabaseUrl::parse(self.database_url.expose()).ok()?;
        (main.backend() == meterhook_store::Backend::Postgres && !self.spool_path.is_empty())
            .then(|| format!("sqlite://{}", self.spool_path))
    }

    /// Database pool options of the writers and background passes.
    pub fn pool_options(&self) -> meterhook_store::PoolOptions {
        meterhook_store::PoolOptions {
            max_size: self.pool_size,
            ..meterhook_store::PoolOptions::default()
        }
    }

    /// Database pool options of the readers (read API, metrics, readiness).
    pub fn read_pool_options(&self) -> meterhook_store::PoolOptions {
        meterhook_store::PoolOptions {
            max_size: self.read_pool_size,
            ..meterhook_store::PoolOptions::default()
        }
    }
}

/// Loads `.env.local`, then `.env`, from the working directory (not its parents) into the
/// environment; they fill in only what the environment does not set, so `.env.local` wins over
/// `.env` and the real environment wins over both. Safe to call more than once.
pub fn load_env_files() -> Result<(), ConfigError> {
    // Which variables the process was given, before the files add theirs: `doctor` tells them
    // apart.
    INHERITED.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect()
    });
    for file in ENV_FILES {
        match dotenvy::from_path(Path::new(file)) {
            Ok(()) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::Load(format!("{file}: {e}"))),
        }
    }
    Ok(())
}

/// The environment files, the first winning.
const ENV_FILES: [&str; 2] = [".env.local", ".env"];

/// The variables the process was started with (see [`load_env_files`]).
static INHERITED: std::sync::OnceLock<std::collections::HashSet<String>> =
    std::sync::OnceLock::new();

/// Every setting: its key in `meterhook.toml` and the environment variable that sets it.
pub const SETTINGS: [(&str, &str); 24] = [
    ("management_token", "SMARTCAR_MANAGEMENT_TOKEN"),
    ("webhook_secret", "SMARTCAR_WEBHOOK_SECRET"),
    ("database_url", "DATABASE_URL"),
    ("listen", "METERHOOK_LISTEN"),
    ("workers", "METERHOOK_WORKERS"),
    ("writers", "METERHOOK_WRITERS"),
    ("pool_size", "METERHOOK_POOL_SIZE"),
    ("duplicate_window", "METERHOOK_DUPLICATE_WINDOW"),
    ("max_speed_kmh", "METERHOOK_MAX_SPEED_KMH"),
    ("jump_tolerance_km", "METERHOOK_JUMP_TOLERANCE_KM"),
    ("body_limit", "METERHOOK_BODY_LIMIT"),
    ("client_timeout", "METERHOOK_CLIENT_TIMEOUT"),
    ("max_attempts", "METERHOOK_MAX_ATTEMPTS"),
    ("retry_backoff", "METERHOOK_RETRY_BACKOFF"),
    ("spool_path", "METERHOOK_SPOOL_PATH"),
    ("api_token", "METERHOOK_API_TOKEN"),
    ("retention", "METERHOOK_RETENTION"),
    ("signal_retention", "METERHOOK_SIGNAL_RETENTION"),
    ("sync_log_retention", "METERHOOK_SYNC_LOG_RETENTION"),
    ("change_retention", "METERHOOK_CHANGE_RETENTION"),
    ("notify_url", "METERHOOK_NOTIFY_URL"),
    ("notify_secret", "METERHOOK_NOTIFY_SECRET"),
    ("notify_allow_http", "METERHOOK_NOTIFY_ALLOW_HTTP"),
    ("notify_retry_schedule", "METERHOOK_NOTIFY_RETRY_SCHEDULE"),
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nothing set it.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// A line in `.env.local` or `.env`.
    EnvFile(&'static str),
    /// The process's environment.
    Environment,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::EnvFile(name) => f.write_str(name),
            Origin::Environment => f.write_str("environment"),
        }
    }
}

/// Where each setting of [`SETTINGS`] came from, by variable name, following the precedence of
/// [`Settings::load`]: environment, `.env.local`, `.env`, file, default. Call after
/// [`load_env_files`].
pub fn origins(config_path: Option<&Path>) -> Vec<(&'static str, Origin)> {
    let inherited = INHERITED.get();
    let env_files: Vec<(&'static str, std::collections::HashSet<String>)> = ENV_FILES
        .iter()
        .map(|&file| {
            let names = dotenvy::from_path_iter(Path::new(file))
                .map(|lines| lines.filter_map(Result::ok).map(|(k, _)| k).collect())
                .unwrap_or_default();
            (file, names)
        })
        .collect();
    let file = config_path.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE), Path::to_path_buf);
    let in_file = config::Config::builder()
        .add_source(config::File::from(file.as_path()).required(false))
        .build()
        .ok();
    SETTINGS
        .iter()
        .map(|&(key, var)| {
            // Every setting can also be given as METERHOOK_<KEY>; the plain name wins.
            let prefixed = format!("METERHOOK_{}", key.to_ascii_uppercase());
            let names = [var, prefixed.as_str()];
            let origin = if inherited.is_some_and(|set| names.iter().any(|n| set.contains(*n))) {
                Origin::Environment
            } else if let Some((name, _)) = env_files
                .iter()
                .find(|(_, set)| names.iter().any(|n| set.contains(*n)))
            {
                Origin::EnvFile(name)
            } else if in_file
                .as_ref()
                .is_some_and(|c| c.get::<config::Value>(key).is_ok())
            {
                Origin::File(file.clone())
            } else {
                Origin::Default
            };
            (var, origin)
        })
        .collect()
}

/// The default `METERHOOK_SIGNAL_RETENTION`: a quarter of signal history (battery, tires,
/// location) is plenty to judge trends; the latest values are what the API serves.
pub const DEFAULT_SIGNAL_RETENTION: &str = "90d";

/// The default `METERHOOK_SYNC_LOG_RETENTION`: a year of the audit trail, and a month more so that
/// a yearly review still finds the whole year.
pub const DEFAULT_SYNC_LOG_RETENTION: &str = "400d";

/// The default `METERHOOK_CHANGE_RETENTION`: a month of changes for an app to catch up on.
pub const DEFAULT_CHANGE_RETENTION: &str = "30d";

/// Events younger than this are never pruned: Smartcar redelivers, and dedup needs their ids.
pub const MIN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A yes/no setting: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case); absent is
/// no.
fn flag(name: &'static str, value: Option<&str>) -> Result<bool, ConfigError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(false);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("invalid value {text:?} (expected true or false)"),
        }),
    }
}

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
        reason: format!("invalid duration {value:?} (expected e.g. 30s, 1h or 30d: {e})"),
    })
}

/// A duration that timestamps are moved by (a cut-off date, a window either side of a reading):
/// it must keep them inside the calendar chrono can represent.
fn date_span(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let span = parse_duration(name, value)?;
    let now = meterhook_store::now();
    let fits = chrono::TimeDelta::from_std(span).ok().is_some_and(|delta| {
        now.checked_sub_signed(delta).is_some() && now.checked_add_signed(delta).is_some()
    });
    if fits {
        Ok(span)
    } else {
        invalid(
            name,
            &format!("{value:?} is too long: dates that far from now cannot be represented"),
        )
    }
}

/// A retention window: `default` when unset or empty, none when `off`, else a span that dates can
/// be moved by.
fn retention_or_off(
    name: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<Option<Duration>, ConfigError> {
    match value.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) if text.eq_ignore_ascii_case("off") => Ok(None),
        Some(text) => date_span(name, text).map(Some),
        None => date_span(name, default).map(Some),
    }
}

/// A key or token without its surrounding whitespace (the newline a secrets file ends with, a
/// pasted space). Set but empty stops the start: it is a mistake, not a way to say "none".
fn key(name: &'static str, value: Option<Secret>) -> Result<Option<Secret>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let trimmed = value.expose().trim();
    if trimmed.is_empty() {
        return invalid(name, "is set but empty; unset it, or give it its value");
    }
    Ok(Some(Secret::new(trimmed)))
}

/// Parses an unsigned count, or gives `default` when the setting is absent.
/// A count that must be at least 1.
fn positive<T: FromStr + PartialOrd + From<u8>>(
    name: &'static str,
    value: Option<&str>,
    default: T,
) -> Result<T, ConfigError> {
    let n = count(name, value, default)?;
    if n < T::from(1) {
        return invalid(name, "must be at least 1");
    }
    Ok(n)
}

fn count<T: FromStr>(
    name: &'static str,
    value: Option<&str>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("invalid count {text:?} (expected a whole number, 0 or more)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `pairs` (toml key, value), as a file or the environment would give them.
    fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in pairs {
            builder = builder.set_override(*key, *value).expect("key");
        }
        let raw: Raw = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("deserialize");
        Settings::parse(raw)
    }

    #[test]
    fn defaults_are_valid_and_secret_free() {
        let s = Settings::default_settings();
        assert_eq!(s.listen, "127.0.0.1:3000");
        assert_eq!(s.database_url.expose(), "sqlite://meterhook.db");
        assert_eq!(s.policy(), Policy::default());
        assert_eq!(s.client_timeout, Duration::from_secs(10));
        assert_eq!(
            s.retry(),
            RetryPolicy {
                max_attempts: 8,
                backoff: Duration::from_secs(5)
            }
        );
        assert_eq!(s.retention, None);
        assert_eq!(
            s.signal_retention,
            Some(Duration::from_secs(90 * 24 * 3600))
        );
        assert_eq!(
            s.sync_log_retention,
            Some(Duration::from_secs(400 * 24 * 3600))
        );
        assert!(s.signing_keys().is_err());
    }

    /// docs/CONFIGURATION.md's example file claims every key, and its values are valid.
    #[test]
    fn the_documented_example_file_has_every_key() {
        let doc = include_str!("../../../docs/CONFIGURATION.md");
        let example = doc
            .split("## Example `meterhook.toml`")
            .nth(1)
            .and_then(|rest| rest.split("```toml").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("the example in docs/CONFIGURATION.md");
        for (key, _) in SETTINGS {
            let written = example.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} ")) || line.starts_with(&format!("{key}="))
            });
            assert!(written, "{key} is missing from the example");
        }
        let raw: Raw = config::Config::builder()
            .add_source(config::File::from_str(example, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the example parses");
        Settings::parse(raw).expect("the example is valid");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut s = Settings::default_settings();
        s.management_token = Some(Secret::new("tok-abcdefghijklmnop"));
        s.database_url = Secret::new("postgres://u:pw-xyz@h/db");
        s.ui_password = Some(Secret::new("ui-pw-secret"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("tok-abcdefghijklmnop")
                && !shown.contains("pw-xyz")
                && !shown.contains("ui-pw-secret"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn values_are_parsed_into_their_types() {
        let s = from_pairs(&[
            ("duplicate_window", "90m"),
            ("client_timeout", " 2s "),
            ("retry_backoff", "250ms"),
            ("retention", "30d"),
            ("max_attempts", "3"),
            ("pool_size", "4"),
            ("jump_tolerance_km", "0.5"),
            ("read_pool_size", "2"),
            ("metrics_interval", "1s"),
            ("queue", "16"),
            ("max_connections", "64"),
            ("spool_max_events", "500"),
        ])
        .expect("valid");
        assert_eq!(
            (s.read_pool_size, s.metrics_interval, s.queue),
            (2, Duration::from_secs(1), 16)
        );
        assert_eq!((s.max_connections, s.spool_max_events), (64, 500));
        assert_eq!(s.duplicate_window, Duration::from_secs(90 * 60));
        assert_eq!(s.client_timeout, Duration::from_secs(2));
        assert_eq!(s.retry_backoff, Duration::from_millis(250));
        assert_eq!(s.retention, Some(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(s.retry().max_attempts, 3);
        assert_eq!(s.pool_size, 4);
        assert_eq!(s.jump_tolerance.metres(), 500);
        assert_eq!(
            from_pairs(&[("retention", " ")]).expect("valid").retention,
            None
        );
        let s = from_pairs(&[("signal_retention", "OFF"), ("sync_log_retention", "30d")])
            .expect("valid");
        assert_eq!(s.signal_retention, None);
        assert_eq!(
            s.sync_log_retention,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
    }

    #[test]
    fn keys_and_tokens_lose_surrounding_whitespace() {
        let s = from_pairs(&[
            ("management_token", "tok-abcdefghijklmnop\n"),
            ("webhook_secret", " \tprevious-token "),
            ("api_token", "api-token-0123456789\r\n"),
            ("ui_password", " ui-password-0123456789\n"),
        ])
        .expect("valid");
        let shown = |s: &Option<Secret>| s.as_ref().map(|t| t.expose().to_owned());
        assert_eq!(
            shown(&s.management_token).as_deref(),
            Some("tok-abcdefghijklmnop")
        );
        assert_eq!(shown(&s.webhook_secret).as_deref(), Some("previous-token"));
        assert_eq!(shown(&s.api_token).as_deref(), Some("api-token-0123456789"));
        assert_eq!(
            shown(&s.ui_password).as_deref(),
            Some("ui-password-0123456789")
        );
        assert!(!s.token_is_short() && !s.api_token_is_short() && !s.ui_password_is_short());
    }

    #[test]
    fn bad_values_name_the_setting() {
        #[track_caller]
        fn check(key: &str, value: &str, expected: &str) {
            let err = from_pairs(&[(key, value)]).expect_err(value).to_string();
            assert!(err.contains(expected), "{key}={value:?}: {err}");
        }
        check(
            "retry_backoff",
            "abc",
            r#"METERHOOK_RETRY_BACKOFF: invalid duration "abc""#,
        );
        check(
            "client_timeout",
            "10",
            "METERHOOK_CLIENT_TIMEOUT: invalid duration",
        );
        check(
            "duplicate_window",
            "soon",
            "METERHOOK_DUPLICATE_WINDOW: invalid duration",
        );
        check(
            "duplicate_window",
            "1000000y",
            "METERHOOK_DUPLICATE_WINDOW: \"1000000y\" is too long",
        );
        check(
            "retention",
            "1000000y",
            "METERHOOK_RETENTION: \"1000000y\" is too long",
        );
        check(
            "retention",
            "99999999999999y",
            "METERHOOK_RETENTION: invalid duration",
        );
        check(
            "retention",
            "1d",
            "METERHOOK_RETENTION: must be at least 7d",
        );
        check(
            "signal_retention",
            "1000000y",
            "METERHOOK_SIGNAL_RETENTION: \"1000000y\" is too long",
        );
        check(
            "sync_log_retention",
            "soon",
            "METERHOOK_SYNC_LOG_RETENTION: invalid duration",
        );
        check(
            "pool_size",
            "-1",
            r#"METERHOOK_POOL_SIZE: invalid count "-1""#,
        );
        check("pool_size", "0", "METERHOOK_POOL_SIZE: must be at least 1");
        check(
            "read_pool_size",
            "0",
            "METERHOOK_READ_POOL_SIZE: must be at least 1",
        );
        check(
            "metrics_interval",
            "10ms",
            "METERHOOK_METRICS_INTERVAL: must be at least 100ms",
        );
        check("queue", "0", "METERHOOK_QUEUE: must be at least 1");
        check("queue", "-3", "METERHOOK_QUEUE: invalid count");
        check(
            "max_connections",
            "0",
            "METERHOOK_MAX_CONNECTIONS: must be at least 1",
        );
        check(
            "spool_max_events",
            "0",
            "METERHOOK_SPOOL_MAX_EVENTS: must be from 1",
        );
        check(
            "spool_max_events",
            "18446744073709551615",
            "METERHOOK_SPOOL_MAX_EVENTS: must be from 1",
        );
        check("workers", "two", "METERHOOK_WORKERS: invalid count");
        check("writers", "1.5", "METERHOOK_WRITERS: invalid count");
        check(
            "max_speed_kmh",
            "fast",
            "METERHOOK_MAX_SPEED_KMH: invalid count",
        );
        check(
            "max_attempts",
            "0",
            "METERHOOK_MAX_ATTEMPTS: must be from 1",
        );
        check(
            "max_attempts",
            "4294967295",
            "METERHOOK_MAX_ATTEMPTS: must be from 1",
        );
        check(
            "body_limit",
            "10",
            "METERHOOK_BODY_LIMIT: must be at least 1024",
        );
        check(
            "jump_tolerance_km",
            "far",
            "METERHOOK_JUMP_TOLERANCE_KM: invalid number",
        );
        check(
            "jump_tolerance_km",
            "-1",
            "METERHOOK_JUMP_TOLERANCE_KM: distance is negative",
        );
        check("listen", " ", "METERHOOK_LISTEN: is empty");
        check("database_url", "mysql://x/y", "DATABASE_URL");
        for (key, var) in [
            ("management_token", "SMARTCAR_MANAGEMENT_TOKEN"),
            ("webhook_secret", "SMARTCAR_WEBHOOK_SECRET"),
            ("api_token", "METERHOOK_API_TOKEN"),
            ("ui_password", "METERHOOK_UI_PASSWORD"),
        ] {
            check(key, "", &format!("{var}: is set but empty"));
            check(key, " \n\t", &format!("{var}: is set but empty"));
        }
    }
}
