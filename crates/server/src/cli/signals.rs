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
        /// The app's vehicle id, or a Smartcar vehicle id (its app vehicle's signals).
        #[arg(long, visible_alias = "vehicle", value_name = "ID")]
        vehicle_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The values of one signal over time, newest first.
    History {
        /// The app's vehicle id, or a Smartcar vehicle id (its app vehicle's signals).
        #[arg(long, visible_alias = "vehicle", value_name = "ID")]
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

/// A signal value as `signals` prints it: with, for an odometer value, the rules' refusal when
/// its reading became a void entry (so the latest odometer here does not silently contradict the
/// meter entries).
#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    signal: views::Signal<'a>,
    /// The void entry's reason, when the rules refused this odometer reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

/// Runs `meterhook signals …`.
pub fn run(store: &Store, cmd: SignalsCommand) -> Result<(), CliError> {
    let (vehicle_id, rows, json) = match cmd {
        SignalsCommand::Latest { vehicle_id, json } => {
            let vehicle_id = super::vehicles::app_vehicle_id(store, &vehicle_id)?;
            let rows = store.latest_signals(&vehicle_id)?;
            (vehicle_id, rows, json)
        }
        SignalsCommand::History {
            vehicle_id,
            code,
            limit,
            json,
        } => {
            let vehicle_id = super::vehicles::app_vehicle_id(store, &vehicle_id)?;
            let rows = store.signal_history(&vehicle_id, &code, i64::from(limit))?;
            (vehicle_id, rows, json)
        }
    };
    let mut shown = Vec::with_capacity(rows.len());
    for r in &rows {
        let refused = if r.code == meterhook_smartcar::ODOMETER_CODE && !r.test {
            store
                .entry_for_reading(&vehicle_id, &r.event_id, r.observed_at)?
                .filter(|e| e.void)
                .map(|e| e.void_reason.unwrap_or_else(|| "void".into()))
        } else {
            None
        };
        shown.push(Shown {
            signal: views::signal(r),
            refused,
        });
    }
    if json {
        println!("{}", serde_json::to_string(&shown)?);
    } else {
        let mut out = format!(
            "{:<44} {:>14} {:<10} {}\n",
            "CODE", "VALUE", "UNIT", "OBSERVED AT"
        );
        for (r, s) in rows.iter().zip(&shown) {
            let value = r.value.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
            let _ = writeln!(
                out,
                "{:<44} {:>14} {:<10} {}{}",
                super::cell(&r.code),
                value,
                super::cell(r.unit.as_deref().unwrap_or("-")),
                rfc3339(r.observed_at),
                s.refused
                    .as_deref()
                    .map(|reason| format!(
                        "  REFUSED by the rules (void entry): {}",
                        super::cell(reason)
                    ))
                    .unwrap_or_default()
            );
        }
        print!("{out}");
    }
    Ok(())
}
