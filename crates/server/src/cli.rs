//! The `meterhook` command line: serve, migrate, and the operator's commands.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use meterhook_store::{MeterEntry, Outcome, Reprocess, Store, UnvoidRefusal};
use serde_json::json;

use crate::config::{parse_duration, Settings};
use crate::processor;
use crate::startup::Application;
use crate::views::{self, rfc3339};

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
        #[arg(long, default_value = "24h")]
        since: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete processed events older than a window (never younger than 7 days, never
    /// unprocessed or dead ones).
    Prune {
        /// The window, e.g. 30d.
        #[arg(long)]
        older_than: String,
        /// Rows deleted per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Sign and post a test event (or run the verification handshake) against a running meterhook.
    SendTestEvent(SendTestEvent),
}

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
        /// Smartcar's vehicle id.
        smartcar_vehicle_id: String,
    },
    /// Resume processing events for a vehicle.
    Activate {
        /// Smartcar's vehicle id.
        smartcar_vehicle_id: String,
    },
    /// A vehicle's health (open errors) and latest readings.
    Show {
        /// Smartcar's vehicle id.
        smartcar_vehicle_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

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
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `meterhook entries …`
#[derive(Debug, Subcommand)]
pub enum EntriesCommand {
    /// List a vehicle's meter entries, oldest reading first.
    List {
        /// The app's vehicle id.
        #[arg(long)]
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
        /// The app's vehicle id.
        #[arg(long)]
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

/// `meterhook events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List received events, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
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
        #[arg(long)]
        outcome: Option<String>,
    },
}

/// `meterhook send-test-event …`
#[derive(Debug, Args)]
pub struct SendTestEvent {
    /// The webhook URL, e.g. http://127.0.0.1:3000/api/smartcar/webhook.
    #[arg(long)]
    pub url: String,
    /// Run the verification handshake instead of sending a reading.
    #[arg(long, conflicts_with_all = ["vehicle", "odometer"])]
    pub verify: bool,
    /// Smartcar vehicle id the reading is for.
    #[arg(long, required_unless_present = "verify")]
    pub vehicle: Option<String>,
    /// Odometer value.
    #[arg(
        long,
        required_unless_present = "verify",
        allow_negative_numbers = true
    )]
    pub odometer: Option<f64>,
    /// Odometer unit.
    #[arg(long, value_enum, default_value_t = UnitArg::Km)]
    pub unit: UnitArg,
}

/// Units `send-test-event` can send.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UnitArg {
    /// Kilometres.
    Km,
    /// Miles.
    Miles,
}

/// A command's failure: one line for the user.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// Runs the command line; returns the text to print on success.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Serve);
    let settings = Settings::load(cli.config.as_deref())?;
    match command {
        Command::Serve => serve(&settings),
        Command::Migrate => {
            let store = open_store(&settings)?;
            // open() has already applied them; report the state.
            println!(
                "migrations applied ({} database {})",
                store.backend(),
                store.url().redacted()
            );
            Ok(())
        }
        Command::Vehicles(cmd) => vehicles(&open_store(&settings)?, &settings, cmd),
        Command::Entries(cmd) => entries(&open_store(&settings)?, &settings, cmd),
        Command::Signals(cmd) => signals(&open_store(&settings)?, cmd),
        Command::Events(EventsCommand::Reprocess { event_id, outcome }) => {
            let store = open_store(&settings)?;
            let which = match (&event_id, &outcome) {
                (Some(id), _) => Reprocess::Event(id),
                (None, Some(name)) => Reprocess::Outcome(name.parse::<Outcome>()?),
                (None, None) => return Err(CliError("name an event id or --outcome".into())),
            };
            let done = processor::reprocess(&store, which, &settings.policy(), &settings.retry())?;
            if done.is_empty() {
                if let Some(id) = &event_id {
                    return Err(CliError(match store.find_event(id)? {
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
            println!(
                "reprocessed {} event{}",
                done.len(),
                if done.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Command::Prune { older_than, batch } => {
            let window = parse_duration("--older-than", &older_than)?;
            if window < crate::config::MIN_RETENTION {
                return Err(CliError(
                    "--older-than must be at least 7d: Smartcar may redeliver for days, and deduplication needs the ids".into(),
                ));
            }
            let before = meterhook_store::now()
                - chrono::TimeDelta::from_std(window)
                    .map_err(|_| CliError("--older-than is too long".into()))?;
            let deleted = open_store(&settings)?.prune_events(before, batch)?;
            println!(
                "pruned {deleted} processed events received before {}",
                rfc3339(before)
            );
            Ok(())
        }
        Command::Events(EventsCommand::List { limit, json }) => {
            let events = open_store(&settings)?.recent_events(limit)?;
            if json {
                let rows: Vec<_> = events
                    .iter()
                    .map(|e| {
                        json!({
                            "event_id": e.event_id,
                            "event_type": e.event_type,
                            "smartcar_vehicle_id": e.smartcar_vehicle_id,
                            "received_at": rfc3339(e.received_at),
                            "processed": e.processed,
                            "processed_at": e.processed_at.map(rfc3339),
                            "outcome": e.outcome,
                            "error": e.error,
                            "attempts": e.attempts,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
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
                        e.event_id,
                        e.event_type,
                        e.processed,
                        e.outcome,
                        e.smartcar_vehicle_id.as_deref().unwrap_or("-")
                    );
                }
                print!("{out}");
            }
            Ok(())
        }
        Command::Stats { since, json } => {
            let window = parse_duration("--since", &since)?;
            let from = meterhook_store::now()
                - chrono::TimeDelta::from_std(window)
                    .map_err(|_| CliError("--since is too long".into()))?;
            let stats = open_store(&settings)?.stats(from)?;
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
        Command::SendTestEvent(args) => send_test_event(&settings, &args),
    }
}

fn serve(settings: &Settings) -> Result<(), CliError> {
    let app = Application::build(settings)?;
    actix_web::rt::System::new()
        .block_on(app.run_until_stopped())
        .map_err(|e| CliError(format!("server stopped: {e}")))
}

fn open_store(settings: &Settings) -> Result<Store, CliError> {
    Ok(Store::open(
        settings.database_url.expose(),
        &settings.pool_options(),
    )?)
}

fn vehicles(store: &Store, settings: &Settings, cmd: VehiclesCommand) -> Result<(), CliError> {
    match cmd {
        VehiclesCommand::Add {
            smartcar_vehicle_id,
            vehicle_id,
        } => {
            let v = store.register_vehicle(&smartcar_vehicle_id, &vehicle_id)?;
            println!(
                "registered Smartcar vehicle {} for vehicle {} (active)",
                v.smartcar_vehicle_id, v.vehicle_id
            );
            // Events that arrived before the registration are processed now.
            let waiting = processor::reprocess(
                store,
                Reprocess::UnknownVehicle(&smartcar_vehicle_id),
                &settings.policy(),
                &settings.retry(),
            )?;
            if !waiting.is_empty() {
                let created = waiting
                    .iter()
                    .filter(|(_, o)| *o == Outcome::Created)
                    .count();
                println!(
                    "processed {} event{} that waited for this vehicle ({created} meter entr{} created)",
                    waiting.len(),
                    if waiting.len() == 1 { "" } else { "s" },
                    if created == 1 { "y" } else { "ies" }
                );
            }
        }
        VehiclesCommand::Activate {
            smartcar_vehicle_id,
        } => {
            store.set_vehicle_active(&smartcar_vehicle_id, true)?;
            println!("activated Smartcar vehicle {smartcar_vehicle_id}");
        }
        VehiclesCommand::Deactivate {
            smartcar_vehicle_id,
        } => {
            store.set_vehicle_active(&smartcar_vehicle_id, false)?;
            println!("deactivated Smartcar vehicle {smartcar_vehicle_id}");
        }
        VehiclesCommand::Show {
            smartcar_vehicle_id,
            json,
        } => {
            let Some(vehicle) = store.find_vehicle(&smartcar_vehicle_id)? else {
                return Err(CliError(format!(
                    "no vehicle with Smartcar id {smartcar_vehicle_id}"
                )));
            };
            let errors = store.open_errors(&smartcar_vehicle_id)?;
            let signals = store.latest_signals(&vehicle.vehicle_id)?;
            let latest_entry = store.entries_page(&vehicle.vehicle_id, false, 1, 0)?;
            if json {
                let mut value = views::vehicle(&vehicle);
                value["open_errors"] = errors.iter().map(views::vehicle_error).collect();
                value["latest_signals"] = signals.iter().map(views::signal).collect();
                value["latest_entry"] = latest_entry
                    .first()
                    .map_or(serde_json::Value::Null, views::entry);
                println!("{value}");
            } else {
                let mut out = format!(
                    "Smartcar vehicle {} -> vehicle {} ({})\n",
                    vehicle.smartcar_vehicle_id,
                    vehicle.vehicle_id,
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
                if errors.is_empty() {
                    out.push_str("Health: no open errors\n");
                } else {
                    out.push_str("Open errors:\n");
                    for e in &errors {
                        let _ = writeln!(
                            out,
                            "  {} since {}{}{}",
                            e.label(),
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
                println!("{}", serde_json::Value::Array(rows));
            } else {
                let mut out = format!(
                    "{:<40} {:<30} {:<8} {}\n",
                    "SMARTCAR VEHICLE ID", "VEHICLE ID", "ACTIVE", "LAST ERROR"
                );
                for v in &vehicles {
                    let _ = writeln!(
                        out,
                        "{:<40} {:<30} {:<8} {}",
                        v.smartcar_vehicle_id,
                        v.vehicle_id,
                        if v.is_active { "yes" } else { "no" },
                        v.last_error.as_deref().unwrap_or("-")
                    );
                }
                print!("{out}");
            }
        }
    }
    Ok(())
}

fn entries(store: &Store, settings: &Settings, cmd: EntriesCommand) -> Result<(), CliError> {
    match cmd {
        EntriesCommand::List {
            vehicle_id,
            all,
            json,
        } => print_entries(&store.list_entries(&vehicle_id, all)?, json),
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
                    return Err(CliError(format!("entry {entry_id} is not void")))
                }
                Err(UnvoidRefusal::Rules(decision)) => {
                    return Err(CliError(format!(
                        "entry {entry_id} stays void: the rules refuse it now ({}: {decision})",
                        decision.outcome()
                    )))
                }
            }
        }
        EntriesCommand::Export { vehicle_id, format } => {
            let entries = store.list_entries(&vehicle_id, true)?;
            match format {
                ExportFormat::Json => {
                    let rows: Vec<_> = entries.iter().map(views::entry).collect();
                    println!("{}", serde_json::Value::Array(rows));
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
                        out.write_record([
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
                        ])?;
                    }
                    out.flush()?;
                }
            }
        }
    }
    Ok(())
}

fn signals(store: &Store, cmd: SignalsCommand) -> Result<(), CliError> {
    let (rows, json) = match cmd {
        SignalsCommand::Latest { vehicle_id, json } => (store.latest_signals(&vehicle_id)?, json),
        SignalsCommand::History {
            vehicle_id,
            code,
            limit,
            json,
        } => (store.signal_history(&vehicle_id, &code, limit)?, json),
    };
    if json {
        println!(
            "{}",
            serde_json::Value::Array(rows.iter().map(views::signal).collect())
        );
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
                r.code,
                value,
                r.unit.as_deref().unwrap_or("-"),
                rfc3339(r.observed_at)
            );
        }
        print!("{out}");
    }
    Ok(())
}

fn print_entries(entries: &[MeterEntry], json: bool) {
    if json {
        let rows: Vec<_> = entries.iter().map(views::entry).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let mut out = format!(
            "{:<8} {:<26} {:>16} {:<18} {}\n",
            "ID", "READ AT", "KM", "SOURCE", "EVENT"
        );
        for e in entries {
            let _ = writeln!(
                out,
                "{:<8} {:<26} {:>16.3} {:<18} {}{}",
                e.id,
                rfc3339(e.entry_date),
                e.distance().km(),
                e.source_type,
                e.event_id.as_deref().unwrap_or("-"),
                if e.void { " (void)" } else { "" }
            );
        }
        print!("{out}");
    }
}

fn send_test_event(settings: &Settings, args: &SendTestEvent) -> Result<(), CliError> {
    let keys = settings.signing_keys()?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    if args.verify {
        let challenge = random_token(16);
        let body = json!({
            "eventId": random_uuid(),
            "eventType": "VERIFY",
            "data": { "challenge": challenge },
            "meta": {
                "version": "4.0",
                "webhookId": "meterhook-send-test-event",
                "deliveryId": random_uuid(),
                "deliveredAt": now_ms,
            },
        })
        .to_string();
        let (status, answer) = post(&agent, &args.url, &body, None)?;
        println!(
            "POST {} (VERIFY, challenge {challenge}) -> {status}",
            args.url
        );
        println!("{answer}");
        let expected = keys.answer_challenge(&challenge);
        let got = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v.get("challenge")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            });
        return if status == 200 && got.as_deref() == Some(expected.as_str()) {
            println!("verification handshake OK: the answer matches the management token");
            Ok(())
        } else {
            Err(CliError(format!(
                "verification handshake failed: HTTP {status}, the answer does not match this management token"
            )))
        };
    }

    let (Some(vehicle), Some(odometer)) = (args.vehicle.as_deref(), args.odometer) else {
        return Err(CliError(
            "--vehicle and --odometer are required without --verify".into(),
        ));
    };
    let unit = match args.unit {
        UnitArg::Km => "km",
        UnitArg::Miles => "miles",
    };
    let event_id = random_uuid();
    let body = json!({
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": {
            "user": { "id": "meterhook-send-test-event" },
            "vehicle": { "id": vehicle },
            "signals": [{
                "code": "odometer-traveleddistance",
                "name": "TraveledDistance",
                "group": "Odometer",
                "body": { "value": odometer, "unit": unit },
                "meta": { "oemUpdatedAt": now_ms, "retrievedAt": now_ms },
                "status": { "value": "SUCCESS" },
            }],
        },
        "triggers": [{
            "type": "SIGNAL_UPDATED",
            "signal": { "name": "TraveledDistance", "code": "odometer-traveleddistance", "group": "Odometer" },
        }],
        "meta": {
            "deliveryId": random_uuid(),
            "deliveredAt": now_ms,
            "version": "4.0",
            "webhookId": "meterhook-send-test-event",
            "webhookName": "meterhook send-test-event",
            "mode": "TEST",
            "signalCount": 1,
        },
    })
    .to_string();
    let signature = keys.sign(body.as_bytes());
    let (status, answer) = post(&agent, &args.url, &body, Some(&signature))?;
    println!(
        "POST {} (VEHICLE_STATE {event_id}, odometer {odometer} {unit}) -> {status}",
        args.url
    );
    println!("{answer}");
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(CliError(format!("the webhook answered HTTP {status}")))
    }
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    signature: Option<&str>,
) -> Result<(u16, String), CliError> {
    let mut request = agent.post(url).content_type("application/json");
    if let Some(sig) = signature {
        request = request.header(meterhook_smartcar::SIGNATURE_HEADER, sig);
    }
    let mut response = request
        .send(body)
        .map_err(|e| CliError(format!("cannot reach {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| format!("(unreadable answer: {e})"));
    Ok((status, text))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    // The system generator does not fail on the platforms we build for; zeros would only make the
    // test id predictable, never unsafe.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
}

/// A random version-4 UUID, as Smartcar's ids look.
fn random_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = base16ct::lower::encode_string(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random challenge of `len` alphanumeric characters.
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes::<64>()
        .iter()
        .take(len)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
