//! `meterhook vehicles …`: the vehicles whose readings are recorded.

use std::fmt::Write as _;

use clap::Subcommand;
use meterhook_store::{Store, Vehicle};

use super::{pipeline, CliError};
use crate::config::Settings;
use crate::views::{self, rfc3339};

/// `meterhook vehicles …`
#[derive(Debug, Subcommand)]
pub enum VehiclesCommand {
    /// Register a Smartcar vehicle for an app vehicle (again: re-point and activate it).
    Add {
        /// Smartcar's vehicle id.
        smartcar_vehicle_id: String,
        /// The app's vehicle id that meter entries are written for.
        #[arg(long)]
        vehicle_id: String,
    },
    /// List registered vehicles.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop processing events for a vehicle (they are still kept).
    Deactivate {
        /// A Smartcar vehicle id, or an app vehicle id with one Smartcar vehicle.
        #[arg(value_name = "ID")]
        smartcar_vehicle_id: String,
    },
    /// Resume processing events for a vehicle.
    Activate {
        /// A Smartcar vehicle id, or an app vehicle id with one Smartcar vehicle.
        #[arg(value_name = "ID")]
        smartcar_vehicle_id: String,
    },
    /// Erase a vehicle: its registration, meter entries, signals, errors, sync logs and the
    /// events that name it. Asks for the id again on a terminal.
    Delete {
        /// Smartcar's vehicle id.
        smartcar_vehicle_id: String,
        /// Erase everything it sent (required: there is no lighter delete; `deactivate` keeps
        /// the data).
        #[arg(long)]
        purge: bool,
        /// Do not ask (for scripts; needed when the input is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// A vehicle's health (open errors) and latest readings.
    Show {
        /// A Smartcar vehicle id, or an app vehicle id with one Smartcar vehicle.
        #[arg(value_name = "ID")]
        smartcar_vehicle_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How a command reads a vehicle id: an id registered as a Smartcar vehicle id names that
/// Smartcar vehicle (and the app vehicle it feeds); any other id is an app vehicle id. Smartcar's
/// ids are UUIDs, so the two kinds do not collide in practice.
pub(super) fn app_vehicle_id(store: &Store, id: &str) -> Result<String, CliError> {
    Ok(match store.find_vehicle(id)? {
        Some(v) => v.vehicle_id,
        None => id.to_owned(),
    })
}

/// The Smartcar vehicle ids an id stands for (see [`app_vehicle_id`]): a registered Smartcar
/// vehicle; else the Smartcar vehicles registered for that app vehicle; else the id itself, as an
/// unregistered Smartcar vehicle's (events wait with `unknown_vehicle` under it).
pub(super) fn smartcar_ids(store: &Store, id: &str) -> Result<Vec<String>, CliError> {
    if store.find_vehicle(id)?.is_some() {
        return Ok(vec![id.to_owned()]);
    }
    let mapped: Vec<String> = store
        .vehicles_for(id)?
        .into_iter()
        .map(|v| v.smartcar_vehicle_id)
        .collect();
    Ok(if mapped.is_empty() {
        vec![id.to_owned()]
    } else {
        mapped
    })
}

/// The one registration an id names: a Smartcar vehicle id, or an app vehicle id that has exactly
/// one Smartcar vehicle.
pub(super) fn one_registration(store: &Store, id: &str) -> Result<Vehicle, CliError> {
    if let Some(v) = store.find_vehicle(id)? {
        return Ok(v);
    }
    let mut mapped = store.vehicles_for(id)?;
    match mapped.len() {
        0 => Err(CliError::new(format!(
            "no vehicle with Smartcar id or app vehicle id {}",
            super::cell(id)
        ))),
        1 => Ok(mapped.remove(0)),
        _ => Err(CliError::new(format!(
            "app vehicle {} has {} Smartcar vehicles ({}); name one by its Smartcar id",
            super::cell(id),
            mapped.len(),
            mapped
                .iter()
                .map(|v| super::cell(&v.smartcar_vehicle_id).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Runs `meterhook vehicles …`.
pub fn run(store: &Store, settings: &Settings, cmd: VehiclesCommand) -> Result<(), CliError> {
    match cmd {
        VehiclesCommand::Add {
            smartcar_vehicle_id,
            vehicle_id,
        } => {
            let r = crate::registration::register(
                &pipeline(store, settings)?,
                &smartcar_vehicle_id,
                &vehicle_id,
            )?;
            println!(
                "registered Smartcar vehicle {} for vehicle {} (active)",
                r.vehicle.smartcar_vehicle_id, r.vehicle.vehicle_id
            );
            if !r.others.is_empty() {
                println!(
                    "note: vehicle {} also has Smartcar vehicle{} {}; the readings of all of them \
                     are judged as one odometer. If the car was reconnected under a new id, \
                     deactivate the old one (`meterhook vehicles deactivate OLD_ID`)",
                    super::cell(&r.vehicle.vehicle_id),
                    if r.others.len() == 1 { "" } else { "s" },
                    r.others
                        .iter()
                        .map(|v| format!(
                            "{} ({})",
                            super::cell(&v.smartcar_vehicle_id),
                            if v.is_active { "active" } else { "inactive" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if r.processed > 0 {
                println!(
                    "processed {} event{} that waited for this vehicle ({} meter entr{} created)",
                    r.processed,
                    if r.processed == 1 { "" } else { "s" },
                    r.entries_created,
                    if r.entries_created == 1 { "y" } else { "ies" }
                );
            }
        }
        VehiclesCommand::Activate {
            smartcar_vehicle_id: id,
        } => {
            let v = one_registration(store, &id)?;
            store.set_vehicle_active(&v.smartcar_vehicle_id, true)?;
            println!(
                "activated Smartcar vehicle {} (vehicle {})",
                super::cell(&v.smartcar_vehicle_id),
                super::cell(&v.vehicle_id)
            );
        }
        VehiclesCommand::Deactivate {
            smartcar_vehicle_id: id,
        } => {
            let v = one_registration(store, &id)?;
            store.set_vehicle_active(&v.smartcar_vehicle_id, false)?;
            println!(
                "deactivated Smartcar vehicle {} (vehicle {})",
                super::cell(&v.smartcar_vehicle_id),
                super::cell(&v.vehicle_id)
            );
        }
        VehiclesCommand::Delete {
            smartcar_vehicle_id,
            purge,
            yes,
        } => delete(store, &smartcar_vehicle_id, purge, yes)?,
        VehiclesCommand::Show {
            smartcar_vehicle_id: id,
            json,
        } => {
            let vehicle = one_registration(store, &id)?;
            let errors = store.open_errors(&vehicle.smartcar_vehicle_id)?;
            let signals = store.latest_signals(&vehicle.vehicle_id)?;
            let latest_entry = store.entries_page(&vehicle.vehicle_id, false, 1, None)?;
            if json {
                let detail =
                    views::vehicle_detail(&vehicle, &errors, &signals, latest_entry.first());
                println!("{}", serde_json::to_string(&detail)?);
            } else {
                let mut out = format!(
                    "Smartcar vehicle {} -> vehicle {} ({})\n",
                    super::cell(&vehicle.smartcar_vehicle_id),
                    super::cell(&vehicle.vehicle_id),
                    if vehicle.is_active {
                        "active"
                    } else {
                        "inactive"
                    }
                );
                match latest_entry.first() {
                    Some(e) => {
                        let _ = writeln!(
                            out,
                            "Odometer: {:.3} km at {}",
                            e.distance().km(),
                            rfc3339(e.entry_date)
                        );
                    }
                    None => out.push_str("Odometer: no entries\n"),
                }
                if vehicle.needs_reconnection {
                    out.push_str(
                        "Needs reconnection: only the owner can fix an open error below \
                         (reconnect the car, renew the account or grant permissions)\n",
                    );
                }
                if errors.is_empty() {
                    out.push_str("Health: no open errors\n");
                } else {
                    out.push_str("Open errors:\n");
                    for e in &errors {
                        let _ = writeln!(
                            out,
                            "  {} since {}{}{}",
                            super::cell(&e.label()),
                            rfc3339(e.first_seen_at),
                            e.suggested_user_message
                                .as_deref()
                                .map(|m| format!(" — {m}"))
                                .unwrap_or_default(),
                            e.resolution_type
                                .as_deref()
                                .map(|r| format!(" (resolution: {r})"))
                                .unwrap_or_default()
                        );
                    }
                }
                if !signals.is_empty() {
                    out.push_str("Latest signals:\n");
                    for s in &signals {
                        let value = s.value.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
                        let _ = writeln!(
                            out,
                            "  {:<44} {value} {} at {}",
                            s.code,
                            s.unit.as_deref().unwrap_or(""),
                            rfc3339(s.observed_at)
                        );
                    }
                }
                print!("{out}");
            }
        }
        VehiclesCommand::List { json } => {
            let vehicles = store.list_vehicles()?;
            if json {
                let rows: Vec<_> = vehicles.iter().map(views::vehicle).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                let mut out = format!(
                    "{:<40} {:<30} {:<8} {:<10} {}\n",
                    "SMARTCAR VEHICLE ID", "VEHICLE ID", "ACTIVE", "RECONNECT", "LAST ERROR"
                );
                for v in &vehicles {
                    let _ = writeln!(
                        out,
                        "{:<40} {:<30} {:<8} {:<10} {}",
                        super::cell(&v.smartcar_vehicle_id),
                        super::cell(&v.vehicle_id),
                        if v.is_active { "yes" } else { "no" },
                        if v.needs_reconnection { "needed" } else { "-" },
                        super::cell(v.last_error.as_deref().unwrap_or("-"))
                    );
                }
                print!("{out}");
            }
        }
    }
    Ok(())
}

/// `vehicles delete ID --purge [--yes]`: on a terminal, the id typed again confirms.
fn delete(
    store: &Store,
    smartcar_vehicle_id: &str,
    purge: bool,
    yes: bool,
) -> Result<(), CliError> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !purge {
        return Err(CliError::usage(
            "vehicles delete erases the vehicle and everything it sent; confirm with --purge \
             (or keep the data and stop processing with `vehicles deactivate`)",
        ));
    }
    let Some(vehicle) = store.find_vehicle(smartcar_vehicle_id)? else {
        return Err(CliError::new(format!(
            "no vehicle with Smartcar id {}",
            super::cell(smartcar_vehicle_id)
        )));
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage(
                "not a terminal: pass --yes to erase the vehicle without being asked",
            ));
        }
        eprint!(
            "Erase Smartcar vehicle {} (vehicle {}) with its meter entries, signals, errors and \
             events? This cannot be undone. Type the Smartcar id to confirm: ",
            super::cell(&vehicle.smartcar_vehicle_id),
            super::cell(&vehicle.vehicle_id)
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != smartcar_vehicle_id {
            return Err(CliError::new("not confirmed; nothing was erased"));
        }
    }
    let purged = crate::registration::purge(store, smartcar_vehicle_id, "the CLI")?;
    println!(
        "erased Smartcar vehicle {} (vehicle {}): {} meter entries, {} signal values, {} errors, \
         {} sync logs, {} events",
        super::cell(&purged.vehicle.smartcar_vehicle_id),
        super::cell(&purged.vehicle.vehicle_id),
        purged.entries,
        purged.signals,
        purged.errors,
        purged.sync_logs,
        purged.events
    );
    Ok(())
}
