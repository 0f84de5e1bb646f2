//! `meterhook events …`: received events.

use std::fmt::Write as _;

use clap::Subcommand;
use meterhook_domain::Outcome;
use meterhook_store::{Reprocess, Store};

use super::{pipeline, CliError};
use crate::config::Settings;
use crate::views::{self, rfc3339};

/// `meterhook events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List received events, newest first.
    List {
        /// How many (at least 1).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Process events again: one by id, or every event with an outcome (e.g. dead).
    Reprocess {
        /// The event id.
        #[arg(required_unless_present = "outcome", conflicts_with = "outcome")]
        event_id: Option<String>,
        /// Every event with this outcome.
        #[arg(long, value_parser = super::outcome_parser())]
        outcome: Option<Outcome>,
    },
}

/// Runs `meterhook events …`.
pub fn run(store: &Store, settings: &Settings, cmd: EventsCommand) -> Result<(), CliError> {
    match cmd {
        EventsCommand::Reprocess { event_id, outcome } => {
            let which = match (&event_id, outcome) {
                (Some(id), _) => Reprocess::Event(id),
                (None, Some(outcome)) => Reprocess::Outcome(outcome),
                (None, None) => return Err(CliError::usage("name an event id or --outcome")),
            };
            let bar = super::progress::bar("reprocessing events", 0);
            let done = pipeline(store, settings)?.reprocess_with(which, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            let done = done?;
            if done.is_empty() {
                if let Some(id) = &event_id {
                    return Err(CliError::new(match store.find_event(id)? {
                        None => format!("no event {id}"),
                        Some(e) => format!(
                            "event {id} has outcome {} and is not processed again",
                            e.outcome
                        ),
                    }));
                }
            }
            for (id, outcome) in &done {
                println!("{id}: {outcome}");
            }
            let mut by_outcome = std::collections::BTreeMap::<String, usize>::new();
            for (_, outcome) in &done {
                *by_outcome.entry(outcome.to_string()).or_default() += 1;
            }
            let counts: Vec<String> = by_outcome
                .iter()
                .map(|(outcome, n)| format!("{n} {outcome}"))
                .collect();
            println!(
                "reprocessed {} event{}{}{}",
                done.len(),
                if done.len() == 1 { "" } else { "s" },
                if counts.is_empty() { "" } else { ": " },
                counts.join(", ")
            );
        }
        EventsCommand::List { limit, json } => {
            let events = store.recent_events(i64::from(limit))?;
            if json {
                let rows: Vec<_> = events.iter().map(views::event).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                let mut out = format!(
                    "{:<24} {:<40} {:<14} {:<10} {:<22} {}\n",
                    "RECEIVED", "EVENT ID", "TYPE", "PROCESSED", "OUTCOME", "VEHICLE"
                );
                for e in &events {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<40} {:<14} {:<10} {:<22} {}",
                        rfc3339(e.received_at),
                        super::cell(&e.event_id),
                        super::cell(&e.event_type),
                        e.processed,
                        e.outcome,
                        super::cell(e.smartcar_vehicle_id.as_deref().unwrap_or("-"))
                    );
                }
                print!("{out}");
            }
        }
    }
    Ok(())
}
