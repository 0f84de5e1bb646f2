//! `meterhook prune`: deletes what is older than its retention window, table by table.

use std::time::Duration;

use clap::Args;
use meterhook_store::Store;

use super::{ago, progress, window, CliError};
use crate::config::{Settings, MIN_RETENTION};
use crate::views::{self, Pruned};

/// `meterhook prune …`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Processed events received before this window, e.g. 30d (at least 7d; default
    /// METERHOOK_RETENTION, and without it events are kept).
    #[arg(long, value_parser = window)]
    pub older_than: Option<Duration>,
    /// Signal values stored before this window (default METERHOOK_SIGNAL_RETENTION, 90d).
    #[arg(long, value_parser = window)]
    pub signals_older_than: Option<Duration>,
    /// Sync logs written before this window (default METERHOOK_SYNC_LOG_RETENTION, 400d).
    #[arg(long, value_parser = window)]
    pub sync_logs_older_than: Option<Duration>,
    /// Changes recorded before this window (default METERHOOK_CHANGE_RETENTION, 30d); a reader
    /// whose cursor is older is told so (410), never skipped silently.
    #[arg(long, value_parser = window)]
    pub changes_older_than: Option<Duration>,
    /// Rows deleted per transaction (1 to 100000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Delete nothing: count, per table, what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a signal or sync-log window below its floor (7d and 30d). The events' floor, 7d,
    /// always holds.
    #[arg(long)]
    pub force: bool,
}

/// The shortest signal window without `--force`: a typo such as `1s` would delete every value.
pub const SIGNAL_FLOOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest sync-log window without `--force`: sync logs are the audit trail.
pub const SYNC_LOG_FLOOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Refuses a window under its floor unless forced, naming the flag or the setting it came from.
fn check_floor(
    window: Option<Duration>,
    from_flag: bool,
    flag: &str,
    setting: &str,
    floor: Duration,
    force: bool,
) -> Result<(), CliError> {
    match window {
        Some(w) if w < floor && !force => Err(CliError::usage(format!(
            "{} is {}, below the floor of {}: that would delete recent rows; pass --force if \
             you mean it",
            if from_flag { flag } else { setting },
            humantime::format_duration(w),
            humantime::format_duration(floor)
        ))),
        _ => Ok(()),
    }
}

/// Runs `meterhook prune`.
pub fn run(store: &Store, settings: &Settings, args: &PruneArgs) -> Result<(), CliError> {
    let events = args.older_than.or(settings.retention);
    if events.is_some_and(|w| w < MIN_RETENTION) {
        return Err(CliError::usage(
            "--older-than must be at least 7d: Smartcar may redeliver for days, and deduplication needs the ids",
        ));
    }
    let signals = args.signals_older_than.or(settings.signal_retention);
    let sync_logs = args.sync_logs_older_than.or(settings.sync_log_retention);
    check_floor(
        signals,
        args.signals_older_than.is_some(),
        "--signals-older-than",
        "METERHOOK_SIGNAL_RETENTION",
        SIGNAL_FLOOR,
        args.force,
    )?;
    check_floor(
        sync_logs,
        args.sync_logs_older_than.is_some(),
        "--sync-logs-older-than",
        "METERHOOK_SYNC_LOG_RETENTION",
        SYNC_LOG_FLOOR,
        args.force,
    )?;
    let changes = args.changes_older_than.or(settings.change_retention);
    let batch = i64::from(args.batch);
    let count = |n: i64| u64::try_from(n).unwrap_or(0);

    let mut summary = views::PruneSummary {
        dry_run: args.dry_run,
        ..views::PruneSummary::default()
    };
    if let Some(w) = events {
        let before = ago(w, "--older-than")?;
        let deleted = if args.dry_run {
            count(store.count_prunable_events(before)?)
        } else {
            let bar = progress::counter("processed events");
            let deleted = store.prune_events_with(before, batch, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            deleted
        };
        summary.events = Some(Pruned::new(deleted, before));
    }
    if let Some(w) = signals {
        let before = ago(w, "--signals-older-than")?;
        let deleted = if args.dry_run {
            count(store.count_prunable_signals(before)?)
        } else {
            let bar = progress::counter("signal values");
            let deleted = store.prune_signals(before, batch, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            deleted
        };
        summary.signal_values = Some(Pruned::new(deleted, before));
    }
    if let Some(w) = sync_logs {
        let before = ago(w, "--sync-logs-older-than")?;
        let deleted = if args.dry_run {
            count(store.count_prunable_sync_logs(before)?)
        } else {
            let bar = progress::counter("sync logs");
            let deleted = store.prune_sync_logs(before, batch, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            deleted
        };
        summary.sync_logs = Some(Pruned::new(deleted, before));
    }
    if let Some(w) = changes {
        let before = ago(w, "--changes-older-than")?;
        let deleted = if args.dry_run {
            count(store.count_prunable_changes(before)?)
        } else {
            let bar = progress::counter("changes");
            let deleted = store.prune_changes(before, batch, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            deleted
        };
        summary.changes = Some(Pruned::new(deleted, before));
    }

    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    let done = if args.dry_run {
        "would prune"
    } else {
        "pruned"
    };
    let line = |p: &Option<Pruned>, what: &str, verb: &str, kept: &str| match p {
        Some(p) => println!("{done} {} {what} {verb} before {}", p.deleted, p.before),
        None => println!("{what} kept ({kept})"),
    };
    line(
        &summary.events,
        "processed events",
        "received",
        "no --older-than, and METERHOOK_RETENTION is not set",
    );
    line(
        &summary.signal_values,
        "signal values",
        "stored",
        "METERHOOK_SIGNAL_RETENTION is off",
    );
    line(
        &summary.sync_logs,
        "sync logs",
        "written",
        "METERHOOK_SYNC_LOG_RETENTION is off",
    );
    line(
        &summary.changes,
        "changes",
        "recorded",
        "METERHOOK_CHANGE_RETENTION is off",
    );
    Ok(())
}
