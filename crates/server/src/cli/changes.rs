//! `meterhook changes`: the record of changes the app follows, one line per change; `--follow`
//! keeps printing them as they are committed (polling the database), like `stripe listen`.

use std::time::Duration;

use clap::Args;
use meterhook_store::{Change, ChangeFilter, ChangeType, ChangesError, Store};
use serde_json::Value;

use super::CliError;
use crate::feed;

/// How often `--follow` reads the database for new changes.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// `meterhook changes …`
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Start after this cursor (a position, as `next_cursor` gives it); default: from the oldest
    /// change kept, or with --follow only the changes to come.
    #[arg(long, value_parser = cursor)]
    pub after: Option<i64>,
    /// Keep printing changes as they come, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Only changes of these types (comma-separated, e.g. meter_entry.created,meter_entry.voided).
    #[arg(long, value_delimiter = ',', value_parser = change_type)]
    pub types: Vec<ChangeType>,
    /// Only changes of this app vehicle.
    #[arg(long)]
    pub vehicle_id: Option<String>,
    /// Print each change as one line of JSON, as `GET /api/changes` shows it.
    #[arg(long)]
    pub json: bool,
}

fn cursor(text: &str) -> Result<i64, String> {
    feed::parse_cursor(text).ok_or_else(|| format!("{text:?} is not a cursor (a position: 42)"))
}

fn change_type(text: &str) -> Result<ChangeType, String> {
    text.parse::<ChangeType>().map_err(|e| {
        format!(
            "{e}; known: {}",
            ChangeType::ALL.map(ChangeType::as_str).join(", ")
        )
    })
}

/// Runs `meterhook changes`.
pub fn run(store: &Store, args: &ChangesArgs) -> Result<(), CliError> {
    let filter = ChangeFilter {
        types: args.types.clone(),
        vehicle_id: args.vehicle_id.clone(),
    };
    let mut after = match (args.after, args.follow) {
        (Some(after), _) => Some(after),
        (None, true) => Some(store.last_change_position()?),
        (None, false) => None,
    };
    loop {
        let page = store
            .changes_after(after, 500, &filter)
            .map_err(|e| match e {
                ChangesError::Gone { .. } => CliError::new(format!(
                    "{e} (start without --after, or with the oldest position)"
                )),
                e => CliError::new(e.to_string()),
            })?;
        for change in &page.changes {
            if args.json {
                println!("{}", serde_json::to_string(&feed::change(change))?);
            } else {
                println!("{}", line(change));
            }
        }
        after = Some(page.next);
        if page.has_more {
            continue;
        }
        if !args.follow {
            if !args.json {
                eprintln!("next cursor: {}", feed::cursor(page.next));
            }
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// One line: position, time, type, vehicle, and what changed.
fn line(change: &Change) -> String {
    let data: Value = serde_json::from_str(&change.data).unwrap_or(Value::Null);
    let what = match change.change_type.split_once('.').map(|(kind, _)| kind) {
        Some("meter_entry") => {
            let mut what = format!(
                "entry {} {} km at {}",
                data["id"],
                data["value_km"],
                data["entry_date"].as_str().unwrap_or("?")
            );
            if let Some(reason) = data["void_reason"].as_str() {
                what.push_str(&format!(" (void: {reason})"));
            }
            what
        }
        _ if change.change_type.starts_with("vehicle.error_") => format!(
            "{}:{} {}",
            data["type"].as_str().unwrap_or(""),
            data["code"].as_str().unwrap_or(""),
            data["state"].as_str().unwrap_or("")
        ),
        _ => format!(
            "{}{}",
            if data["is_active"] == true {
                "active"
            } else {
                "inactive"
            },
            if data["needs_reconnection"] == true {
                ", needs reconnection"
            } else {
                ""
            }
        ),
    };
    format!(
        "{:>6}  {}  {:<26}  {} ({})  {}",
        change.position,
        crate::views::rfc3339(change.created_at),
        change.change_type,
        super::cell(change.vehicle_id.as_deref().unwrap_or("-")),
        super::cell(change.smartcar_vehicle_id.as_deref().unwrap_or("-")),
        super::cell(&what)
    )
}
