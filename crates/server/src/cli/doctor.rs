//! `meterhook doctor`: checks a set-up without changing it, and says how to fix what is wrong.

use std::path::Path;

use clap::Args;
use meterhook_store::{Backend, DatabaseUrl, Store, StoreError};

use super::CliError;
use crate::config::{self, Secret, Settings};

/// `meterhook doctor …`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The public webhook URL Smartcar posts to (e.g. https://….ngrok.app/api/smartcar/webhook):
    /// runs a VERIFY round trip through it and checks the answer.
    #[cfg(feature = "http-client")]
    #[arg(long)]
    pub url: Option<String>,
}

/// One thing doctor found wrong, and how to fix it.
struct Problem {
    what: String,
    fix: String,
}

/// What doctor found: lines that passed, warnings, problems.
#[derive(Default)]
struct Report {
    passed: Vec<String>,
    warnings: Vec<String>,
    problems: Vec<Problem>,
}

impl Report {
    fn ok(&mut self, line: impl Into<String>) {
        self.passed.push(line.into());
    }

    fn warn(&mut self, line: impl Into<String>) {
        self.warnings.push(line.into());
    }

    fn problem(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            what: what.into(),
            fix: fix.into(),
        });
    }
}

/// Runs `meterhook doctor`: prints the settings and the checks; fails (exit 1) when a check
/// found a problem.
pub fn run(config_path: Option<&Path>, args: &DoctorArgs) -> Result<(), CliError> {
    let mut report = Report::default();
    match Settings::load(config_path) {
        Ok(settings) => {
            print_settings(&settings, config_path);
            report.ok("settings load");
            check_tokens(&settings, &mut report);
            check_database(&settings, &mut report);
            check_spool(&settings, &mut report);
            #[cfg(feature = "http-client")]
            if let Some(url) = &args.url {
                check_url(&settings, url, &mut report);
            }
        }
        Err(e) => report.problem(
            e.to_string(),
            "correct that setting where it is set (the environment, .env.local, .env or the \
             configuration file; docs/CONFIGURATION.md); the other checks need valid settings",
        ),
    }
    #[cfg(not(feature = "http-client"))]
    let _ = args;
    println!("\nChecks");
    for line in &report.passed {
        println!("  ok       {line}");
    }
    for line in &report.warnings {
        println!("  warning  {line}");
    }
    for p in &report.problems {
        println!("  PROBLEM  {}\n           fix: {}", p.what, p.fix);
    }
    match report.problems.len() {
        0 => {
            println!("\nno problems found");
            Ok(())
        }
        n => Err(CliError::new(format!(
            "doctor found {n} problem{}",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

fn print_settings(settings: &Settings, config_path: Option<&Path>) {
    let origins = config::origins(config_path);
    println!("Settings (value, then where it came from)");
    for (var, value) in settings.shown() {
        let origin = origins
            .iter()
            .find(|(name, _)| *name == var)
            .map_or_else(|| "?".to_owned(), |(_, o)| o.to_string());
        println!("  {var:<28} {value:<40} {origin}");
    }
}

/// A secret's problems: whitespace inside it (surrounding whitespace is already trimmed) and a
/// length too short to be a whole token.
fn check_secret(name: &str, secret: &Secret, report: &mut Report) -> bool {
    let value = secret.expose();
    let mut sane = true;
    if value.chars().any(char::is_whitespace) {
        report.problem(
            format!("{name} contains whitespace"),
            format!("set {name} to the token alone, on one line, as copied"),
        );
        sane = false;
    }
    if value.len() < 16 {
        report.problem(
            format!("{name} is only {} bytes long", value.len()),
            format!("check that {name} holds the whole token, not a part or a placeholder"),
        );
        sane = false;
    }
    sane
}

fn check_tokens(settings: &Settings, report: &mut Report) {
    match &settings.management_token {
        None => report.problem(
            "SMARTCAR_MANAGEMENT_TOKEN is not set: the service cannot check signatures",
            "set SMARTCAR_MANAGEMENT_TOKEN to the Application Management Token from the \
             Smartcar dashboard",
        ),
        Some(token) => {
            if check_secret("SMARTCAR_MANAGEMENT_TOKEN", token, report) {
                report.ok(format!(
                    "SMARTCAR_MANAGEMENT_TOKEN: {} bytes, no whitespace",
                    token.expose().len()
                ));
            }
        }
    }
    if let Some(secret) = &settings.webhook_secret {
        check_secret("SMARTCAR_WEBHOOK_SECRET", secret, report);
    }
    match &settings.api_token {
        None => report.ok("the app API is off (METERHOOK_API_TOKEN not set)"),
        Some(token) => {
            if check_secret("METERHOOK_API_TOKEN", token, report) {
                report.ok("METERHOOK_API_TOKEN: the app API is on");
            }
        }
    }
}

fn check_database(settings: &Settings, report: &mut Report) {
    let shown = DatabaseUrl::parse(settings.database_url.expose())
        .map_or_else(|_| "DATABASE_URL".to_owned(), |u| u.redacted());
    match Store::open_existing(settings.database_url.expose(), &settings.pool_options()) {
        Ok(_) => report.ok(format!("database {shown}: reachable, migrations current")),
        Err(e @ StoreError::Missing(_)) => report.problem(
            format!("database {shown}: {e}"),
            "if this is the right path, create it with `meterhook migrate`; if not, correct \
             DATABASE_URL",
        ),
        Err(e @ StoreError::Outdated(_)) => report.problem(
            format!("database {shown}: {e}"),
            "run `meterhook migrate` (serve also applies them at start)",
        ),
        Err(e) if e.is_transient() => report.problem(
            format!("database {shown}: {e}"),
            "check that the database server runs and that DATABASE_URL's host, port, user, \
             password and database name are right",
        ),
        Err(e) => report.problem(
            format!("database {shown}: {e}"),
            "check DATABASE_URL and the database's permissions",
        ),
    }
}

fn check_spool(settings: &Settings, report: &mut Report) {
    let postgres = DatabaseUrl::parse(settings.database_url.expose())
        .is_ok_and(|u| u.backend() == Backend::Postgres);
    if !postgres {
        report.ok("spool: not used (SQLite)");
        return;
    }
    if settings.spool_path.is_empty() {
        report.warn(
            "spool off (METERHOOK_SPOOL_PATH is empty): during a PostgreSQL outage deliveries \
             are refused with 503 and Smartcar must retry",
        );
        return;
    }
    let path = Path::new(&settings.spool_path);
    let writable = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
    } else {
        // An unnamed temporary file: the folder is probed without leaving anything in it.
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        tempfile::tempfile_in(folder).map(drop)
    };
    match writable {
        Ok(()) => report.ok(format!("spool {}: writable", path.display())),
        Err(e) => report.problem(
            format!("spool {}: not writable ({e})", path.display()),
            "give the service's user write access to the spool file and its folder, or set \
             METERHOOK_SPOOL_PATH to a writable place",
        ),
    }
}

#[cfg(feature = "http-client")]
fn check_url(settings: &Settings, url: &str, report: &mut Report) {
    if !url.starts_with("https://") {
        report.warn(format!(
            "{url} is not https: Smartcar delivers to public https URLs only"
        ));
    }
    let Ok(keys) = settings.signing_keys() else {
        report.problem(
            format!("{url}: VERIFY round trip not run: no management token"),
            "set SMARTCAR_MANAGEMENT_TOKEN, then run doctor again",
        );
        return;
    };
    match super::send_test_event::handshake(&keys, url) {
        Ok(h) if h.matches => report.ok(format!(
            "{url}: VERIFY round trip answered with this management token's challenge hash"
        )),
        Ok(h) if h.status == 200 => report.problem(
            format!("{url}: VERIFY answered, but not with this management token's hash"),
            "the service behind the URL runs with another SMARTCAR_MANAGEMENT_TOKEN: give both \
             the same token",
        ),
        Ok(h) => report.problem(
            format!("{url}: VERIFY answered HTTP {}", h.status),
            "check that the URL ends in /api/smartcar/webhook and that the tunnel or proxy \
             forwards to the running meterhook",
        ),
        Err(e) => report.problem(
            format!("{url}: {}", e.line()),
            "check the URL, that the tunnel (e.g. ngrok) runs, and that meterhook serves",
        ),
    }
}
