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
            #[cfg(feature = "http-client")]
            check_live_signatures(&settings, &mut report);
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
    let width = config::SETTINGS
        .iter()
        .map(|s| s.var.len())
        .max()
        .unwrap_or(0);
    for (var, value) in settings.shown() {
        let origin = origins
            .iter()
            .find(|(name, _)| *name == var)
            .map_or_else(|| "?".to_owned(), |(_, o)| o.to_string());
        println!("  {var:<width$} {value:<40} {origin}");
    }
}

/// Whose secret it is: Smartcar's tokens are copied, meterhook's own are chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Copied from the Smartcar dashboard: too short means a part of it.
    Copied,
    /// Chosen by the operator: too short can be guessed, and `serve` refuses it.
    Chosen,
}

/// A secret's problems: whitespace inside it (surrounding whitespace is already trimmed) and a
/// length too short to be a whole token.
fn check_secret(name: &'static str, secret: &Secret, kind: Kind, report: &mut Report) -> bool {
    let value = secret.expose();
    let mut sane = true;
    if value.chars().any(char::is_whitespace) {
        report.problem(
            format!("{name} contains whitespace"),
            format!("set {name} to the token alone, on one line, as copied"),
        );
        sane = false;
    }
    if value.len() < config::MIN_SECRET_BYTES {
        let fix = match kind {
            Kind::Copied => {
                format!("check that {name} holds the whole token, not a part or a placeholder")
            }
            Kind::Chosen => format!(
                "serve refuses it: set {name} to a long random value (at least {} bytes), e.g. \
                 the output of `openssl rand -hex 32`",
                config::MIN_SECRET_BYTES
            ),
        };
        report.problem(format!("{name} is only {} bytes long", value.len()), fix);
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
            if check_secret("SMARTCAR_MANAGEMENT_TOKEN", token, Kind::Copied, report) {
                report.ok(format!(
                    "SMARTCAR_MANAGEMENT_TOKEN: {} bytes, no whitespace",
                    token.expose().len()
                ));
            }
        }
    }
    if let Some(secret) = &settings.webhook_secret {
        check_secret("SMARTCAR_WEBHOOK_SECRET", secret, Kind::Copied, report);
    }
    match &settings.api_token {
        None => report.ok("the app API is off (METERHOOK_API_TOKEN not set)"),
        Some(token) => {
            if check_secret("METERHOOK_API_TOKEN", token, Kind::Chosen, report) {
                report.ok("METERHOOK_API_TOKEN: the app API is on");
            }
        }
    }
    match &settings.ui_password {
        None => report.ok("the status pages are off (METERHOOK_UI_PASSWORD not set)"),
        Some(password) => {
            if check_secret("METERHOOK_UI_PASSWORD", password, Kind::Chosen, report) {
                report.ok("METERHOOK_UI_PASSWORD: the status pages are on");
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

/// Refusals younger than this are a problem; older ones a warning.
#[cfg(feature = "http-client")]
const RECENT: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Asks the service running at `listen` (from its `/metrics`) whether it refused deliveries for
/// an invalid signature. A VERIFY round trip cannot tell: doctor answers it with the same token as
/// the service, while Smartcar may sign live deliveries with another.
#[cfg(feature = "http-client")]
fn check_live_signatures(settings: &Settings, report: &mut Report) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    let Some(mut address) = settings
        .listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .filter(|a| a.port() != 0)
    else {
        report.ok(format!(
            "live signature refusals not checked: METERHOOK_LISTEN {} names no fixed port",
            settings.listen
        ));
        return;
    };
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let url = format!("http://{address}/metrics");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    let text = match agent.get(&url).call() {
        Ok(mut answer) if answer.status() == 200 => {
            answer.body_mut().read_to_string().unwrap_or_default()
        }
        Ok(answer) => {
            report.warn(format!(
                "{url} answered HTTP {}: is another program listening on {address}?",
                answer.status().as_u16()
            ));
            return;
        }
        Err(_) => {
            report.ok(format!(
                "no service answers at {address}: live signature refusals not checked"
            ));
            return;
        }
    };
    let figure = |name: &str| -> Option<i64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as i64)
    };
    let (Some(count), Some(last)) = (
        figure("meterhook_invalid_signatures_total"),
        figure("meterhook_last_invalid_signature_timestamp_seconds"),
    ) else {
        report.warn(format!(
            "{url} does not count invalid signatures: an older meterhook, or another program"
        ));
        return;
    };
    if count == 0 {
        report.ok(format!(
            "the service at {address} refused no delivery for an invalid signature since it started"
        ));
        return;
    }
    let now = chrono::Utc::now();
    let last = chrono::DateTime::from_timestamp(last, 0).unwrap_or(now);
    let what = format!(
        "the service at {address} refused {count} deliver{} for an invalid SC-Signature since \
         it started, the last {} ago ({} UTC)",
        if count == 1 { "y" } else { "ies" },
        humantime::format_duration(std::time::Duration::from_secs(
            (now - last).num_seconds().max(0).unsigned_abs()
        )),
        last.format("%Y-%m-%d %H:%M")
    );
    if now - last < RECENT {
        report.problem(
            format!(
                "{what}: most likely Smartcar signs live deliveries with another token than the \
                 service's SMARTCAR_MANAGEMENT_TOKEN, and each is lost after Smartcar's retries \
                 (a VERIFY that passes cannot tell: it is answered with the service's own token)"
            ),
            "copy the Application Management Token of the Smartcar application whose webhook \
             posts here into SMARTCAR_MANAGEMENT_TOKEN and restart (while rotating, keep the \
             previous one in SMARTCAR_WEBHOOK_SECRET); if the 'invalid SC-Signature' log lines \
             name peers that are not Smartcar's, someone else is posting",
        );
    } else {
        report.warn(what);
    }
}
