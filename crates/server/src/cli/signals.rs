//! `meterhook signals …`: kept signal values.

use std::fmt::Write as _;

use clap::Subcommand;
use meterhook_store::Store;

use super::CliError;
use crate::views::{self, rfc3339};

/// `meterhook signals …`
#[derive(Debug, Subcommand)]
pub enum SignalsCommand {
    /// The latest value of every signal of a vehicle.
    Latest {
        /// The app's vehicle id.
        #[arg(long)]
        vehicle_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The values of one signal over time, newest first.
    History {
        /// The app's vehicle id.
        #[arg(long)]
        vehicle_id: String,
        /// The signal code, e.g. tractionbattery-stateofcharge.
        #[arg(long)]
        code: String,
        /// How many (at least 1).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `meterhook signals …`.
pub fn run(store: &Store, cmd: SignalsCommand) -> Result<(), CliError> {
    let (rows, json) = match cmd {
        SignalsCommand::Latest { vehicle_id, json } => (store.latest_signals(&vehicle_id)?, json),
        SignalsCommand::History {
            vehicle_id,
            code,
            limit,
            json,
        } => (
            store.signal_history(&vehicle_id, &code, i64::from(limit))?,
            json,
        ),
    };
    if json {
        let rows: Vec<_> = rows.iter().map(views::signal).collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        let mut out = format!(
            "{:<44} {:>14} {:<10} {}\n",
            "CODE", "VALUE", "UNIT", "OBSERVED AT"
        );
        for r in &rows {
            let value = r.value.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
            let _ = writeln!(
                out,
                "{:<44} {:>14} {:<10} {}",
                super::cell(&r.code),
                value,
                super::cell(r.unit.as_deref().unwrap_or("-")),
                rfc3339(r.observed_at)
            );
        }
        print!("{out}");
    }
    Ok(())
}
