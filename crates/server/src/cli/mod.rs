//! The `meterhook` command line: serve, migrate, and the operator's commands, one module per
//! command group.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDateTime;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use meterhook_domain::Outcome;
use meterhook_store::Store;

use crate::config::Settings;
use crate::startup::{Application, StartError};

mod backup;
mod doctor;
mod entries;
mod events;
mod progress;
mod prune;
#[cfg(feature = "http-client")]
mod send_test_event;
mod signals;
mod stats;
mod vehicles;

pub use doctor::DoctorArgs;
pub use entries::{EntriesCommand, ExportFormat};
pub use events::EventsCommand;
pub use prune::PruneArgs;
#[cfg(feature = "http-client")]
pub use send_test_event::{ModeArg, SendTestEvent, UnitArg};
pub use signals::SignalsCommand;
pub use vehicles::VehiclesCommand;

/// Receives Smartcar webhooks and turns odometer readings into meter entries.
#[derive(Debug, Parser)]
#[command(name = "meterhook", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: meterhook.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhook endpoint (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Register and manage Smartcar vehicles.
    #[command(subcommand)]
    Vehicles(VehiclesCommand),
    /// Meter entries.
    #[command(subcommand)]
    Entries(EntriesCommand),
    /// Received webhook events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Signal values (battery, fuel, location, tires, …).
    #[command(subcommand)]
    Signals(SignalsCommand),
    /// Monitoring figures: events by type and state, success, duplicate and error rates.
    Stats {
        /// The window, back from now (e.g. 24h, 7d, 90m).
        #[arg(long, default_value = "24h", value_parser = window)]
        since: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete what is older than its retention window: processed events, signal values, sync
    /// logs.
    Prune(PruneArgs),
    /// Take a consistent copy of the SQLite database while the service runs (PostgreSQL: use
    /// pg_dump).
    Backup {
        /// Where to write the copy; must not exist.
        path: PathBuf,
    },
    /// Check the set-up: settings and where each came from, the database, the spool, the token,
    /// and with --url the public webhook URL.
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Sign and post a test event (or run the verification handshake) against a running meterhook.
    #[cfg(feature = "http-client")]
    SendTestEvent(SendTestEvent),
}

/// A command's failure: one line for the user, and the process's exit code.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, for the user.
    pub message: String,
    /// The exit code: [`CliError::USAGE`], [`CliError::CONFIG`] or 1.
    pub code: u8,
}

impl CliError {
    /// Exit code of a usage error (a flag's value, as clap's own).
    pub const USAGE: u8 = 2;
    /// Exit code of a configuration error (sysexits' `EX_CONFIG`): restarting will not help, so
    /// the systemd unit does not restart on it.
    pub const CONFIG: u8 = 78;

    /// A failure (exit code 1).
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: CliError::USAGE,
        }
    }

    /// A configuration error (exit code 78).
    pub fn config(e: impl std::fmt::Display) -> CliError {
        CliError {
            message: e.to_string(),
            code: CliError::CONFIG,
        }
    }

    /// Why a database could not be opened, with what to do about it.
    pub fn open(e: meterhook_store::StoreError) -> CliError {
        use meterhook_store::StoreError;
        match e {
            StoreError::Missing(_) => CliError::config(format!(
                "{e}; check DATABASE_URL, or create it with `meterhook migrate`"
            )),
            StoreError::InvalidUrl(_) => CliError::config(e),
            StoreError::Outdated(_) => CliError::new(format!("{e}; run `meterhook migrate`")),
            e => CliError::new(e.to_string()),
        }
    }

    /// Why the service did not start: settings are configuration errors.
    pub fn start(e: StartError) -> CliError {
        match e {
            StartError::Config(e) => CliError::config(e),
            e => CliError::new(e.to_string()),
        }
    }

    /// The message on one line, as printed (the store's errors are one line already; a
    /// message of another source may span several).
    pub fn line(&self) -> String {
        self.message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::new(e.to_string())
    }
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Serve);
    // These two run whatever the settings hold: completions need none, and doctor reports a bad
    // setting as one of its findings.
    let command = match command {
        Command::Completions { shell } => return completions(shell),
        Command::Doctor(args) => return doctor::run(cli.config.as_deref(), &args),
        command => command,
    };
    let settings = Settings::load(cli.config.as_deref()).map_err(CliError::config)?;
    match command {
        Command::Serve => serve(&settings),
        Command::Migrate => {
            let store = Store::open(settings.database_url.expose(), &settings.pool_options())
                .map_err(CliError::open)?;
            // open() has already applied them; report the state.
            println!(
                "migrations applied ({} database {})",
                store.backend(),
                store.url().redacted()
            );
            Ok(())
        }
        Command::Vehicles(cmd) => vehicles::run(&open_store(&settings)?, &settings, cmd),
        Command::Entries(cmd) => entries::run(&open_store(&settings)?, &settings, cmd),
        Command::Signals(cmd) => signals::run(&open_store(&settings)?, cmd),
        Command::Events(cmd) => events::run(&open_store(&settings)?, &settings, cmd),
        Command::Stats { since, json } => stats::run(&open_store(&settings)?, since, json),
        Command::Prune(args) => prune::run(&open_store(&settings)?, &settings, &args),
        Command::Backup { path } => backup::run(&open_store(&settings)?, &path),
        #[cfg(feature = "http-client")]
        Command::SendTestEvent(args) => send_test_event::run(&settings, &args),
        Command::Completions { .. } | Command::Doctor(_) => Ok(()),
    }
}

fn serve(settings: &Settings) -> Result<(), CliError> {
    let app = Application::build(settings).map_err(CliError::start)?;
    actix_web::rt::System::new()
        .block_on(app.run_until_stopped())
        .map_err(|e| CliError::new(format!("server stopped: {e}")))
}

/// Prints the completion script for `shell`.
fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    use clap::CommandFactory;
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "meterhook",
        &mut std::io::stdout(),
    );
    Ok(())
}

/// The existing, migrated database: only `serve` and `migrate` create or migrate one.
fn open_store(settings: &Settings) -> Result<Store, CliError> {
    Store::open_existing(settings.database_url.expose(), &settings.pool_options())
        .map_err(CliError::open)
}

/// The ingest pipeline on `store`, without writers (the CLI commits on its own thread), and
/// without the spool: a command that finds the database away fails.
fn pipeline(store: &Store, settings: &Settings) -> Result<meterhook_ingest::Pipeline, CliError> {
    Ok(meterhook_ingest::Pipeline::new(
        store.clone(),
        None,
        settings.policy(),
        settings.intake(),
        settings.retry(),
    ))
}

/// Outcomes as a flag's possible values.
fn outcome_parser() -> impl TypedValueParser<Value = Outcome> {
    PossibleValuesParser::new(Outcome::ALL.map(Outcome::as_str)).try_map(|s| s.parse::<Outcome>())
}

/// A window such as `24h` or `7d`: a duration whose start, back from now, is a time we can
/// represent.
fn window(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|d| meterhook_store::now().checked_sub_signed(d))
        .ok_or_else(|| format!("{text} reaches back further than dates go"))?;
    Ok(duration)
}

/// The time `window` back from now.
fn ago(window: Duration, flag: &str) -> Result<NaiveDateTime, CliError> {
    chrono::TimeDelta::from_std(window)
        .ok()
        .and_then(|d| meterhook_store::now().checked_sub_signed(d))
        .ok_or_else(|| CliError::new(format!("{flag} reaches back further than dates go")))
}

/// Text from the database as a table cell: control characters escaped (`\n`, `\u{1b}`, …), so
/// that a stored id can neither break a table's lines nor drive the terminal. Rows stored before
/// the id policy (`meterhook_smartcar::limits`) may hold such characters.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    meterhook_smartcar::escaped(text)
}

#[cfg(test)]
mod cell_tests {
    use super::cell;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(cell("sc-1"), "sc-1");
        assert_eq!(cell("é \"quoted\""), "é \"quoted\"");
        assert_eq!(cell("a\nb"), "a\\nb");
        assert_eq!(cell("\u{1b}[31mred"), "\\u{1b}[31mred");
    }
}
