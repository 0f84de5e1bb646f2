//! Settings: defaults → optional `meterhook.toml` (or `--config PATH`) → `.env.local` / `.env` in
//! the working directory → environment. Only this module reads the environment.
//!
//! Each setting is declared once, in the `declare_settings!` table below: its key, variable,
//! default, parser, how it is shown, and whether it is secret. The struct, the parsing, `doctor`'s
//! listing and the check of docs/CONFIGURATION.md all come from that table. Every value is parsed
//! there, once, into its type: a bad one stops the start with the name of its variable, and
//! nothing downstream parses text again.

mod sources;
mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meterhook_domain::{Distance, Policy};
use meterhook_ingest::{Intake, RetryPolicy};
use meterhook_smartcar::SigningKeys;

pub use sources::{load_env_files, origins, ValueSource, DEFAULT_CONFIG_FILE};
pub use values::{parse, show, Secret, MIN_RETENTION};

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

/// One setting as every surface names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// The key in `meterhook.toml` (and, upper-cased after `METERHOOK_`, a variable).
    pub key: &'static str,
    /// The environment variable that sets it, and that messages name.
    pub var: &'static str,
    /// Whether its value is secret: shown only as set or not, and its length.
    pub secret: bool,
}

impl Declared {
    /// `METERHOOK_<KEY>`, which sets every setting; for most it is [`Declared::var`] itself.
    pub fn prefixed_var(&self) -> String {
        format!("METERHOOK_{}", self.key.to_ascii_uppercase())
    }
}

/// Declares the settings: from one table, the [`Settings`] struct, [`SETTINGS`], the parsing
/// and [`Settings::shown`]. Each entry:
///
/// ```text
/// /// doc
/// key: Type { var: "VARIABLE", secret: bool, default: expression,
///             parse: parser, show: display, [blank_is_default: true,] }
/// ```
///
/// `parse(var, text)` turns the written text into the value; `show(&value)` words it for an
/// operator; with `blank_is_default`, an empty or blank text counts as not set.
macro_rules! declare_settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty {
            var: $var:literal,
            secret: $secret:literal,
            default: $default:expr,
            parse: $parse:expr,
            show: $show:expr
            $(, blank_is_default: $blank:literal)?
            $(,)?
        }
    )*) => {
        /// Everything meterhook can be configured with, parsed. See `docs/CONFIGURATION.md`.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $($(#[doc = $doc])* pub $key: $ty,)*
        }

        /// Every setting, in the order of the docs and of `doctor`.
        pub const SETTINGS: &[Declared] = &[
            $(Declared { key: stringify!($key), var: $var, secret: $secret },)*
        ];

        impl Settings {
            /// Settings from the defaults alone, as if nothing were configured: a base to adjust
            /// in code when meterhook is embedded.
            pub fn default_settings() -> Settings {
                Settings { $($key: $default,)* }
            }

            /// Parses every value a source set, by key; the others keep their defaults.
            fn parse(written: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
                Ok(Settings {
                    $($key: {
                        let blank_is_default = false $(|| $blank)?;
                        match written
                            .get(stringify!($key))
                            .filter(|text| !(blank_is_default && text.trim().is_empty()))
                        {
                            None => $default,
                            Some(text) => ($parse)($var, text)?,
                        }
                    },)*
                })
            }

            /// Every setting's value as shown to an operator, by variable name, in the order of
            /// [`SETTINGS`]: secrets as `[redacted]`, the database URL without its password.
            pub fn shown(&self) -> Vec<(&'static str, String)> {
                vec![$(($var, ($show)(&self.$key)),)*]
            }
        }
    };
}

/// The default `METERHOOK_SIGNAL_RETENTION`: a quarter of signal history (battery, tires,
/// location) is plenty to judge trends; the latest values are what the API serves.
pub const DEFAULT_SIGNAL_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The default `METERHOOK_SYNC_LOG_RETENTION`: a year of the audit trail, and a month more so
/// that a yearly review still finds the whole year.
pub const DEFAULT_SYNC_LOG_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// The shortest API token and status-page password accepted: shorter ones can be guessed.
pub const MIN_SECRET_BYTES: usize = 16;

declare_settings! {
    /// `SMARTCAR_MANAGEMENT_TOKEN`: the Application Management Token Smartcar signs with.
    management_token: Option<Secret> {
        var: "SMARTCAR_MANAGEMENT_TOKEN", secret: true, default: None,
        parse: parse::secret, show: show::secret,
    }
    /// `SMARTCAR_WEBHOOK_SECRET`: one more accepted signing key (e.g. the previous token).
    webhook_secret: Option<Secret> {
        var: "SMARTCAR_WEBHOOK_SECRET", secret: true, default: None,
        parse: parse::secret, show: show::secret,
    }
    /// `DATABASE_URL`: `sqlite://PATH` or `postgres://…`.
    database_url: Secret {
        var: "DATABASE_URL", secret: true, default: Secret::new("sqlite://meterhook.db"),
        parse: parse::database_url, show: show::database_url,
    }
    /// `METERHOOK_LISTEN`: the address to serve on.
    listen: String {
        var: "METERHOOK_LISTEN", secret: false, default: "127.0.0.1:3000".to_owned(),
        parse: parse::not_empty, show: show::plain,
    }
    /// `METERHOOK_WORKERS`: HTTP worker threads (0: one per core).
    workers: usize {
        var: "METERHOOK_WORKERS", secret: false, default: 0,
        parse: parse::count, show: show::plain,
    }
    /// `METERHOOK_WRITERS`: threads committing deliveries in batches (0: the ingest crate's
    /// choice for the backend).
    writers: usize {
        var: "METERHOOK_WRITERS", secret: false, default: 0,
        parse: parse::count, show: show::plain,
    }
    /// `METERHOOK_POOL_SIZE`: database connections for the writers and background passes, at
    /// least 1.
    pool_size: u32 {
        var: "METERHOOK_POOL_SIZE", secret: false,
        default: meterhook_store::PoolOptions::default().max_size,
        parse: parse::positive, show: show::plain,
    }
    /// `METERHOOK_READ_POOL_SIZE`: database connections for the readers (read API, metrics,
    /// readiness), a pool of their own, at least 1.
    read_pool_size: u32 {
        var: "METERHOOK_READ_POOL_SIZE", secret: false, default: 4,
        parse: parse::positive, show: show::plain,
    }
    /// `METERHOOK_METRICS_INTERVAL`: how often the database gauges of `/metrics` are refreshed.
    metrics_interval: Duration {
        var: "METERHOOK_METRICS_INTERVAL", secret: false, default: Duration::from_secs(10),
        parse: parse::interval, show: show::duration,
    }
    /// `METERHOOK_QUEUE`: deliveries waiting for each writer at most; more are answered 503.
    queue: usize {
        var: "METERHOOK_QUEUE", secret: false, default: meterhook_ingest::DEFAULT_QUEUE,
        parse: parse::positive, show: show::plain,
    }
    /// `METERHOOK_MAX_CONNECTIONS`: open connections each HTTP worker serves at most.
    max_connections: usize {
        var: "METERHOOK_MAX_CONNECTIONS", secret: false, default: 1_024,
        parse: parse::positive, show: show::plain,
    }
    /// `METERHOOK_DUPLICATE_WINDOW`: the same reading within this time is a duplicate.
    duplicate_window: Duration {
        var: "METERHOOK_DUPLICATE_WINDOW", secret: false,
        default: Duration::from_millis(Policy::default().duplicate_window_ms.unsigned_abs()),
        parse: parse::date_span, show: show::duration,
    }
    /// `METERHOOK_MAX_SPEED_KMH`: implausible-jump threshold; 0 turns the check off.
    max_speed_kmh: u32 {
        var: "METERHOOK_MAX_SPEED_KMH", secret: false, default: Policy::default().max_speed_kmh,
        parse: parse::count, show: show::plain,
    }
    /// `METERHOOK_JUMP_TOLERANCE_KM`: differences up to this never count as a jump.
    jump_tolerance_km: Distance {
        var: "METERHOOK_JUMP_TOLERANCE_KM", secret: false,
        default: Policy::default().jump_tolerance,
        parse: parse::kilometres, show: show::kilometres,
    }
    /// `METERHOOK_SUPERSEDE_AFTER`: this many refused readings that agree with each other void
    /// the accepted entry that refused them; 0 turns self-healing off.
    supersede_after: u32 {
        var: "METERHOOK_SUPERSEDE_AFTER", secret: false,
        default: Policy::default().supersede_after,
        parse: parse::count, show: show::plain,
    }
    /// `METERHOOK_MAX_CLOCK_SKEW`: a car's observation time later than the receipt by more than
    /// this is not trusted.
    max_clock_skew: Duration {
        var: "METERHOOK_MAX_CLOCK_SKEW", secret: false,
        default: Intake::default().max_clock_skew,
        parse: parse::duration, show: show::duration,
    }
    /// `METERHOOK_PROCESS_TEST_EVENTS`: process the dashboard's TEST deliveries like live ones.
    process_test_events: bool {
        var: "METERHOOK_PROCESS_TEST_EVENTS", secret: false,
        default: Intake::default().process_test_events,
        parse: parse::flag, show: show::plain, blank_is_default: true,
    }
    /// `METERHOOK_BODY_LIMIT`: the largest request body accepted, in bytes.
    body_limit: usize {
        var: "METERHOOK_BODY_LIMIT", secret: false, default: 64 * 1024,
        parse: parse::body_limit, show: show::plain,
    }
    /// `METERHOOK_CLIENT_TIMEOUT`: how long a client may take to send its request head, and
    /// again its body.
    client_timeout: Duration {
        var: "METERHOOK_CLIENT_TIMEOUT", secret: false, default: Duration::from_secs(10),
        parse: parse::duration, show: show::duration,
    }
    /// `METERHOOK_MAX_ATTEMPTS`: processing attempts before an event is `dead`, at least 1.
    max_attempts: u32 {
        var: "METERHOOK_MAX_ATTEMPTS", secret: false,
        default: RetryPolicy::default().max_attempts,
        parse: parse::attempts, show: show::plain,
    }
    /// `METERHOOK_RETRY_BACKOFF`: wait before the first retry; doubles each time, at most 1h.
    retry_backoff: Duration {
        var: "METERHOOK_RETRY_BACKOFF", secret: false, default: RetryPolicy::default().backoff,
        parse: parse::duration, show: show::duration,
    }
    /// `METERHOOK_SPOOL_PATH`: local SQLite file that takes events while PostgreSQL is
    /// unreachable (PostgreSQL only; empty turns the spool off).
    spool_path: String {
        var: "METERHOOK_SPOOL_PATH", secret: false, default: "meterhook-spool.db".to_owned(),
        parse: parse::text, show: show::plain,
    }
    /// `METERHOOK_SPOOL_MAX_EVENTS`: events the outage spool holds at most.
    spool_max_events: u64 {
        var: "METERHOOK_SPOOL_MAX_EVENTS", secret: false,
        default: meterhook_ingest::DEFAULT_SPOOL_MAX_EVENTS,
        parse: parse::events, show: show::plain,
    }
    /// `METERHOOK_RETENTION`: when set (at least 7 days), processed events older than this are
    /// pruned every hour.
    retention: Option<Duration> {
        var: "METERHOOK_RETENTION", secret: false, default: None,
        parse: parse::event_retention, show: show::duration_or_off, blank_is_default: true,
    }
    /// `METERHOOK_SIGNAL_RETENTION`: `meterhook prune` deletes signal values stored longer ago
    /// than this (`off` keeps them).
    signal_retention: Option<Duration> {
        var: "METERHOOK_SIGNAL_RETENTION", secret: false, default: Some(DEFAULT_SIGNAL_RETENTION),
        parse: parse::retention_or_off, show: show::duration_or_off, blank_is_default: true,
    }
    /// `METERHOOK_SYNC_LOG_RETENTION`: `meterhook prune` deletes sync logs written longer ago
    /// than this (`off` keeps them).
    sync_log_retention: Option<Duration> {
        var: "METERHOOK_SYNC_LOG_RETENTION", secret: false,
        default: Some(DEFAULT_SYNC_LOG_RETENTION),
        parse: parse::retention_or_off, show: show::duration_or_off, blank_is_default: true,
    }
    /// `METERHOOK_API_TOKEN`: turns the app API (reads and registrations) on, behind
    /// `Authorization: Bearer <token>`.
    api_token: Option<Secret> {
        var: "METERHOOK_API_TOKEN", secret: true, default: None,
        parse: parse::secret, show: show::secret,
    }
    /// `METERHOOK_UI_PASSWORD`: turns the status pages under `/ui/` on, behind HTTP Basic
    /// authentication with this password.
    ui_password: Option<Secret> {
        var: "METERHOOK_UI_PASSWORD", secret: true, default: None,
        parse: parse::secret, show: show::secret,
    }
}

impl Settings {
    /// Loads settings from every source; `config_path` overrides `meterhook.toml`, and must exist.
    pub fn load(config_path: Option<&Path>) -> Result<Settings, ConfigError> {
        load_env_files()?;
        Settings::parse(&sources::read(config_path)?)
    }

    /// The signing keys: the management token, then the webhook secret. Needed to serve and to
    /// send test events; an absent or empty token stops the start.
    pub fn signing_keys(&self) -> Result<SigningKeys, ConfigError> {
        let token = match &self.management_token {
            Some(t) if !t.expose().is_empty() => t,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "SMARTCAR_MANAGEMENT_TOKEN",
                    reason: "is not set; it is the Application Management Token from the Smartcar \
                         dashboard"
                        .to_owned(),
                })
            }
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

    /// Whether the management token is shorter than [`MIN_SECRET_BYTES`] (warned about at
    /// start: it is Smartcar's, so it may only be a truncated copy).
    pub fn token_is_short(&self) -> bool {
        self.management_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < MIN_SECRET_BYTES)
    }

    /// The secrets that guard meterhook's own doors (the API token, the status pages'
    /// password), refused by `serve` when shorter than [`MIN_SECRET_BYTES`]: they can be
    /// guessed. The first short one, named, with the fix.
    pub fn refuse_weak_secrets(&self) -> Result<(), ConfigError> {
        for (name, secret) in [
            ("METERHOOK_API_TOKEN", &self.api_token),
            ("METERHOOK_UI_PASSWORD", &self.ui_password),
        ] {
            if let Some(len) = secret
                .as_ref()
                .map(|s| s.expose().len())
                .filter(|len| *len < MIN_SECRET_BYTES)
            {
                return Err(ConfigError::Invalid {
                    name,
                    reason: weak_secret(len),
                });
            }
        }
        Ok(())
    }

    /// The odometer rules' policy.
    pub fn policy(&self) -> Policy {
        Policy {
            duplicate_window_ms: i64::try_from(self.duplicate_window.as_millis())
                .unwrap_or(i64::MAX),
            max_speed_kmh: self.max_speed_kmh,
            jump_tolerance: self.jump_tolerance_km,
            supersede_after: self.supersede_after,
        }
    }

    /// How deliveries are classified before the store sees them.
    pub fn intake(&self) -> Intake {
        Intake {
            max_clock_skew: self.max_clock_skew,
            process_test_events: self.process_test_events,
            replay_window: self.retention,
        }
    }

    /// How failed processing is retried.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.retry_backoff,
        }
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

/// Why a secret of `len` bytes is refused, and the fix (one line).
pub fn weak_secret(len: usize) -> String {
    format!(
        "is only {len} bytes; use at least {MIN_SECRET_BYTES} random bytes, e.g. the output of \
         `openssl rand -hex 32`"
    )
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
        Settings::parse(&sources::written(builder.build().expect("build"))?)
    }

    #[test]
    fn defaults_are_valid_and_secret_free() {
        let s = Settings::default_settings();
        assert_eq!(s.listen, "127.0.0.1:3000");
        assert_eq!(s.database_url.expose(), "sqlite://meterhook.db");
        assert_eq!(s.policy(), Policy::default());
        assert_eq!(s.intake(), Intake::default());
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
        assert!(s.refuse_weak_secrets().is_ok());
    }

    /// Each default, written as it is shown, parses back to itself: the defaults pass their own
    /// checks, and what doctor and the docs show is what a file would say.
    #[test]
    fn every_default_is_shown_as_text_that_parses_back_to_it() {
        let defaults = Settings::default_settings();
        let shown = defaults.shown();
        assert_eq!(shown.len(), SETTINGS.len());
        let pairs: Vec<(&str, &str)> = SETTINGS
            .iter()
            .zip(&shown)
            .filter(|(setting, _)| !setting.secret)
            .map(|(setting, (_, text))| (setting.key, text.as_str()))
            .collect();
        let reparsed = from_pairs(&pairs).expect("the defaults as text are valid");
        assert_eq!(reparsed.shown(), shown);
    }

    #[test]
    fn keys_and_variables_are_unique_and_follow_the_prefix_rule() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert!(a.key != b.key && a.var != b.var, "{a:?} and {b:?}");
            }
            // Only the seed's three names go without the prefix.
            let plain = [
                "SMARTCAR_MANAGEMENT_TOKEN",
                "SMARTCAR_WEBHOOK_SECRET",
                "DATABASE_URL",
            ];
            assert!(a.var == a.prefixed_var() || plain.contains(&a.var), "{a:?}");
        }
    }

    /// The example file and the table of docs/CONFIGURATION.md hold every setting, with its
    /// default, and nothing else.
    #[test]
    fn the_docs_list_every_setting_with_its_default() {
        let doc = include_str!("../../../../docs/CONFIGURATION.md");
        let example = doc
            .split("## Example `meterhook.toml`")
            .nth(1)
            .and_then(|rest| rest.split("```toml").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("the example in docs/CONFIGURATION.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('|').map(str::trim).collect())
            .filter(|cells: &Vec<&str>| cells.len() > 4 && cells[2].starts_with('`'))
            .collect();
        let defaults = Settings::default_settings().shown();
        for (setting, (_, default)) in SETTINGS.iter().zip(&defaults) {
            let written = example.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{} ", setting.key))
                    || line.starts_with(&format!("{}=", setting.key))
            });
            assert!(written, "{} is missing from the example", setting.key);
            let row = rows
                .iter()
                .find(|cells| cells[2] == format!("`{}`", setting.var))
                .unwrap_or_else(|| panic!("{} has no row in the settings table", setting.var));
            assert_eq!(row[1], format!("`{}`", setting.key), "{}", setting.var);
            let documented = if default == "not set" {
                "none".to_owned()
            } else {
                format!("`{default}`")
            };
            assert_eq!(row[3], documented, "the default of {}", setting.var);
        }
        for row in &rows {
            let var = row[2].trim_matches('`');
            assert!(
                SETTINGS.iter().any(|s| s.var == var),
                "the table documents {var}, which is no setting"
            );
        }
        let config = config::Config::builder()
            .add_source(config::File::from_str(example, config::FileFormat::Toml))
            .build()
            .expect("the example parses");
        Settings::parse(&sources::written(config).expect("only known keys"))
            .expect("the example is valid");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_it() {
        let err = from_pairs(&[("lisen", "x")])
            .expect_err("unknown")
            .to_string();
        assert!(
            err.starts_with(
                "configuration: unknown field `lisen`, expected one of `management_token`"
            ),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_shown_only_by_length() {
        let mut s = Settings::default_settings();
        s.management_token = Some(Secret::new("tok-abcdefghijklmnop"));
        s.webhook_secret = Some(Secret::new("previous-tok-9"));
        s.database_url = Secret::new("postgres://u:pw-xyz@h/db");
        s.api_token = Some(Secret::new("api-token-secret-0123"));
        s.ui_password = Some(Secret::new("ui-pw-secret-0123456"));
        let debug = format!("{s:?}");
        let shown = format!("{:?}", s.shown());
        for secret in [
            "tok-abcdefghijklmnop",
            "previous-tok-9",
            "pw-xyz",
            "api-token-secret-0123",
            "ui-pw-secret-0123456",
        ] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(debug.contains("[redacted]"));
        for (setting, (var, text)) in SETTINGS.iter().zip(s.shown()) {
            assert_eq!(setting.var, var);
            if setting.secret {
                assert!(text.contains("[redacted]"), "{var}: {text}");
            }
        }
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
            ("process_test_events", "yes"),
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
        assert_eq!(s.jump_tolerance_km.metres(), 500);
        assert!(s.process_test_events);
        for blank in [" ", "off"] {
            assert_eq!(
                from_pairs(&[("retention", blank)])
                    .expect("valid")
                    .retention,
                None
            );
        }
        assert!(
            !from_pairs(&[("process_test_events", "")])
                .expect("valid")
                .process_test_events
        );
        let s = from_pairs(&[("signal_retention", "OFF"), ("sync_log_retention", "30d")])
            .expect("valid");
        assert_eq!(s.signal_retention, None);
        assert_eq!(
            s.sync_log_retention,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        assert_eq!(
            from_pairs(&[("signal_retention", "")])
                .expect("valid")
                .signal_retention,
            Some(DEFAULT_SIGNAL_RETENTION)
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
        assert!(!s.token_is_short());
        assert!(s.refuse_weak_secrets().is_ok());
    }

    #[test]
    fn short_secrets_of_our_own_doors_are_refused_naming_them() {
        let check = |key: &str, var: &str| {
            let s = from_pairs(&[(key, "123456789012345")]).expect("parses");
            let err = s.refuse_weak_secrets().expect_err(var).to_string();
            assert_eq!(
                err,
                format!(
                    "configuration: {var}: is only 15 bytes; use at least 16 random bytes, e.g. \
                     the output of `openssl rand -hex 32`"
                )
            );
            let s = from_pairs(&[(key, "1234567890123456")]).expect("parses");
            assert!(s.refuse_weak_secrets().is_ok(), "{var}");
        };
        check("api_token", "METERHOOK_API_TOKEN");
        check("ui_password", "METERHOOK_UI_PASSWORD");
        // Smartcar's token is not ours to choose: a short one is warned about, not refused.
        let s = from_pairs(&[("management_token", "short")]).expect("parses");
        assert!(s.token_is_short() && s.refuse_weak_secrets().is_ok());
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
            "supersede_after",
            "-1",
            "METERHOOK_SUPERSEDE_AFTER: invalid count",
        );
        check(
            "max_clock_skew",
            "5",
            "METERHOOK_MAX_CLOCK_SKEW: invalid duration",
        );
        check(
            "process_test_events",
            "maybe",
            "METERHOOK_PROCESS_TEST_EVENTS: invalid value",
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
