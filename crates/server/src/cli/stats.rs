//! `meterhook stats`: monitoring figures.

use std::fmt::Write as _;
use std::time::Duration;

use meterhook_store::Store;

use super::{ago, CliError};
use crate::views::rfc3339;

/// Prints the figures of the `since` window back from now.
pub fn run(store: &Store, since: Duration, json: bool) -> Result<(), CliError> {
    let from = ago(since, "--since")?;
    let since = humantime::format_duration(since);
    let stats = store.stats(from)?;
    if json {
        let mut value = serde_json::to_value(&stats)?;
        value["since"] = rfc3339(stats.since).into();
        println!("{value}");
    } else {
        let mut out = format!("Since {} ({since})\n", rfc3339(stats.since));
        let _ = writeln!(out, "Events received:          {}", stats.events_total);
        for t in &stats.events_by_type {
            let state = if t.processed {
                "processed"
            } else {
                "unprocessed"
            };
            let _ = writeln!(out, "  {:<22} {:<12} {}", t.event_type, state, t.count);
        }
        let _ = writeln!(out, "Outcomes:");
        for (outcome, count) in &stats.events_by_outcome {
            let _ = writeln!(out, "  {outcome:<35} {count}");
        }
        let _ = writeln!(
            out,
            "Processing success rate:  {:.1}%",
            stats.processing_success_rate * 100.0
        );
        let _ = writeln!(
            out,
            "Duplicate rate:           {:.1}%",
            stats.duplicate_rate * 100.0
        );
        let _ = writeln!(
            out,
            "Error rate:               {:.1}%",
            stats.error_rate * 100.0
        );
        let _ = writeln!(out, "Pending:                  {}", stats.pending);
        let _ = writeln!(out, "Dead:                     {}", stats.dead);
        print!("{out}");
    }
    Ok(())
}
