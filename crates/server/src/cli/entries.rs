//! `meterhook entries …`: meter entries.

use std::fmt::Write as _;

use clap::{Subcommand, ValueEnum};
use meterhook_store::{MeterEntry, Store, UnvoidRefusal};

use super::CliError;
use crate::config::Settings;
use crate::views::{self, rfc3339};

/// `meterhook entries …`
#[derive(Debug, Subcommand)]
pub enum EntriesCommand {
    /// List a vehicle's meter entries, oldest reading first.
    List {
        /// The app's vehicle id, or a Smartcar vehicle id (its app vehicle's entries).
        #[arg(long, visible_alias = "vehicle", value_name = "ID")]
        vehicle_id: String,
        /// Include voided entries.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Void an entry: it stays, marked with the reason, and leaves the rules and the latest value.
    Void {
        /// The entry id.
        entry_id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Make a void entry active again, if the rules accept it now.
    Unvoid {
        /// The entry id.
        entry_id: i64,
    },
    /// Export a vehicle's entries (void ones included, marked) to standard output.
    Export {
        /// The app's vehicle id, or a Smartcar vehicle id (its app vehicle's entries).
        #[arg(long, visible_alias = "vehicle", value_name = "ID")]
        vehicle_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
}

/// Formats of `entries export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array.
    Json,
}

/// Runs `meterhook entries …`.
pub fn run(store: &Store, settings: &Settings, cmd: EntriesCommand) -> Result<(), CliError> {
    match cmd {
        EntriesCommand::List {
            vehicle_id,
            all,
            json,
        } => {
            let vehicle_id = super::vehicles::app_vehicle_id(store, &vehicle_id)?;
            print_entries(&store.list_entries(&vehicle_id, all)?, json)?;
        }
        EntriesCommand::Void { entry_id, reason } => {
            let entry = store.void_entry(entry_id, &reason)?;
            println!(
                "voided entry {} ({:.3} km): {reason}",
                entry.id,
                entry.distance().km()
            );
        }
        EntriesCommand::Unvoid { entry_id } => {
            match store.unvoid_entry(entry_id, &settings.policy())? {
                Ok(entry) => println!(
                    "entry {} ({:.3} km) is active again",
                    entry.id,
                    entry.distance().km()
                ),
                Err(UnvoidRefusal::NotVoid) => {
                    return Err(CliError::new(format!("entry {entry_id} is not void")))
                }
                Err(UnvoidRefusal::Rules(decision)) => {
                    return Err(CliError::new(format!(
                        "entry {entry_id} stays void: the rules refuse it now ({}: {decision})",
                        meterhook_domain::Outcome::of(&decision).as_str()
                    )))
                }
            }
        }
        EntriesCommand::Export { vehicle_id, format } => {
            let vehicle_id = super::vehicles::app_vehicle_id(store, &vehicle_id)?;
            let entries = store.list_entries(&vehicle_id, true)?;
            let bar = super::progress::bar("entries", entries.len() as u64);
            match format {
                ExportFormat::Json => {
                    let rows: Vec<_> = entries
                        .iter()
                        .inspect(|_| bar.inc(1))
                        .map(views::entry)
                        .collect();
                    println!("{}", serde_json::to_string(&rows)?);
                }
                ExportFormat::Csv => {
                    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
                    out.write_record([
                        "id",
                        "vehicle_id",
                        "value_km",
                        "entry_date",
                        "source_type",
                        "event_id",
                        "void",
                        "void_reason",
                        "notes",
                        "created_at",
                    ])?;
                    for e in &entries {
                        out.write_record(
                            [
                                e.id.to_string(),
                                e.vehicle_id.clone(),
                                format!("{:.3}", e.distance().km()),
                                rfc3339(e.entry_date),
                                e.source_type.clone(),
                                e.event_id.clone().unwrap_or_default(),
                                e.void.to_string(),
                                e.void_reason.clone().unwrap_or_default(),
                                e.notes.clone().unwrap_or_default(),
                                rfc3339(e.created_at),
                            ]
                            .map(spreadsheet_safe),
                        )?;
                        bar.inc(1);
                    }
                    out.flush()?;
                }
            }
            bar.finish_and_clear();
            eprintln!("exported {} entries of vehicle {vehicle_id}", entries.len());
        }
    }
    Ok(())
}

/// A CSV cell that a spreadsheet will not run as a formula: one starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return gets a leading `'` (OWASP's advice on CSV injection). Void reasons
/// and notes are typed by people, and ids come from webhooks.
fn spreadsheet_safe(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn print_entries(entries: &[MeterEntry], json: bool) -> Result<(), CliError> {
    if json {
        let rows: Vec<_> = entries.iter().map(views::entry).collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        let mut out = format!(
            "{:<8} {:<26} {:>16} {:<18} {:<40} {}\n",
            "ID", "READ AT", "KM", "SOURCE", "EVENT", "VOID"
        );
        for e in entries {
            let void = match (e.void, e.void_reason.as_deref()) {
                (false, _) => "-".into(),
                (true, None) => "void".into(),
                (true, Some(reason)) => format!("void: {}", super::cell(reason)),
            };
            let _ = writeln!(
                out,
                "{:<8} {:<26} {:>16.3} {:<18} {:<40} {void}",
                e.id,
                rfc3339(e.entry_date),
                e.distance().km(),
                super::cell(&e.source_type),
                super::cell(e.event_id.as_deref().unwrap_or("-")),
            );
        }
        print!("{out}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_neutralised() {
        for (cell, expected) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("12.500", "12.500"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell.to_owned()), expected, "{cell:?}");
        }
    }
}
