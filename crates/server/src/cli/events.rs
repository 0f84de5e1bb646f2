//! `meterhook events …`: received events.

use std::fmt::Write as _;

use clap::Subcommand;
use meterhook_domain::Outcome;
use meterhook_store::{EventFilter, Reprocess, Store};

use super::{pipeline, CliError};
use crate::config::Settings;
use crate::views::{self, rfc3339};

/// `meterhook events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List received events, newest first by the time they were received.
    List {
        /// How many (at least 1).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Only events with this outcome.
        #[arg(long, value_parser = super::outcome_parser())]
        outcome: Option<Outcome>,
        /// Only events of this vehicle: a Smartcar vehicle id, or an app vehicle id (its Smartcar
        /// vehicles' events).
        #[arg(long, visible_alias = "vehicle-id", value_name = "ID")]
        vehicle: Option<String>,
        /// Only events received in this window, back from now (e.g. 24h, 7d).
        #[arg(long, value_parser = super::window)]
        since: Option<std::time::Duration>,
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
    /// Sign a stored event's raw body with this configuration's token and post it to a webhook,
    /// e.g. to replay a real delivery against another instance.
    #[cfg(feature = "http-client")]
    Resend {
        /// The event id.
        event_id: String,
        /// The webhook URL (default: this configuration's listen address,
        /// http://METERHOOK_LISTEN/api/smartcar/webhook).
        #[arg(long)]
        url: Option<String>,
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
        EventsCommand::List {
            limit,
            outcome,
            vehicle,
            since,
            json,
        } => {
            let filter = EventFilter {
                outcome,
                smartcar_vehicle_ids: match &vehicle {
                    Some(id) => Some(super::vehicles::smartcar_ids(store, id)?),
                    None => None,
                },
                since: since.map(|w| super::ago(w, "--since")).transpose()?,
            };
            let events = store.list_events(&filter, i64::from(limit))?;
            if json {
                let rows: Vec<_> = events.iter().map(views::event).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                let mut out = format!(
                    "{:<24} {:<40} {:<14} {:<10} {:<22} {:<40} {}\n",
                    "RECEIVED", "EVENT ID", "TYPE", "PROCESSED", "OUTCOME", "VEHICLE", "ERROR"
                );
                for e in &events {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<40} {:<14} {:<10} {:<22} {:<40} {}",
                        rfc3339(e.received_at),
                        super::cell(&e.event_id),
                        super::cell(&e.event_type),
                        e.processed,
                        e.outcome,
                        super::cell(e.smartcar_vehicle_id.as_deref().unwrap_or("-")),
                        super::cell(e.error.as_deref().unwrap_or("-"))
                    );
                }
                print!("{out}");
            }
        }
        #[cfg(feature = "http-client")]
        EventsCommand::Resend { event_id, url } => {
            let Some(event) = store.find_event(&event_id)? else {
                return Err(CliError::new(format!("no event {event_id}")));
            };
            let body = raw_body(&event);
            let url = url.unwrap_or_else(|| super::send_test_event::default_url(settings));
            let (status, answer) = super::send_test_event::post_signed(settings, &url, &body)?;
            println!(
                "POST {url} (stored event {}, {}, {} bytes, signed with this configuration's token) -> {status}",
                super::cell(&event.event_id),
                super::cell(&event.event_type),
                body.len()
            );
            println!("{answer}");
        }
    }
    Ok(())
}

/// The bytes an event was received as: a `malformed` body that was not UTF-8 (or held a NUL) is
/// stored as `hex:…`.
#[cfg(feature = "http-client")]
fn raw_body(event: &meterhook_store::EventRecord) -> Vec<u8> {
    let payload = &event.payload;
    Some(payload.as_str())
        .filter(|_| event.outcome == Outcome::Malformed.as_str())
        .and_then(|p| p.strip_prefix("hex:"))
        .and_then(|hex| base16ct::lower::decode_vec(hex).ok())
        .unwrap_or_else(|| payload.as_bytes().to_vec())
}
