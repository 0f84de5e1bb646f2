//! `meterhook send-test-event`: sign and post an event, or run the handshake, against a running
//! meterhook.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;

use meterhook_smartcar::SigningKeys;

use super::CliError;
use crate::config::Settings;

/// `meterhook send-test-event …`
#[derive(Debug, Args)]
pub struct SendTestEvent {
    /// The webhook URL (default: this configuration's listen address,
    /// http://METERHOOK_LISTEN/api/smartcar/webhook).
    #[arg(long)]
    pub url: Option<String>,
    /// Run the verification handshake instead of sending an event.
    #[arg(long, conflicts_with_all = ["vehicle", "odometer", "signal", "error", "at", "ago"])]
    pub verify: bool,
    /// Smartcar vehicle id the event is for.
    #[arg(long, required_unless_present = "verify")]
    pub vehicle: Option<String>,
    /// Odometer value (a VEHICLE_STATE).
    #[arg(
        long,
        required_unless_present_any = ["verify", "signal", "error"],
        allow_negative_numbers = true,
        value_parser = finite
    )]
    pub odometer: Option<f64>,
    /// Odometer unit.
    #[arg(long, value_enum, default_value_t = UnitArg::Km)]
    pub unit: UnitArg,
    /// Another signal of the VEHICLE_STATE, as CODE=VALUE, or CODE=NUMBER:UNIT (e.g.
    /// tractionbattery-stateofcharge=80:percent); repeatable. VALUE is sent as a number, true or
    /// false, or else as text.
    #[arg(long, value_name = "CODE=VALUE", value_parser = signal_arg)]
    pub signal: Vec<SignalArg>,
    /// Send a VEHICLE_ERROR with this condition instead of a VEHICLE_STATE, e.g.
    /// VEHICLE_STATE:UNREACHABLE or CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED.
    #[arg(long, value_name = "TYPE:CODE", value_parser = error_arg, conflicts_with_all = ["odometer", "signal", "at", "ago"])]
    pub error: Option<ErrorArg>,
    /// With --error: report the condition as `RESOLVED` instead of `ERROR`.
    #[arg(long, requires = "error")]
    pub resolved: bool,
    /// When the car observed the readings (`oemUpdatedAt`), an RFC 3339 UTC time such as
    /// 2026-12-01T08:00:00Z (default: now).
    #[arg(long, value_name = "TIME", value_parser = time_arg, conflicts_with = "ago")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the car observed the readings, back from now, e.g. 2h or 3d.
    #[arg(long, value_name = "DURATION", value_parser = super::window)]
    pub ago: Option<Duration>,
    /// `meta.mode` of the event: `live` (the default) goes through the rules like a car's
    /// reading; `test` is what the Smartcar dashboard's test delivery sends, kept as
    /// `test_event` with no meter entry.
    #[arg(long, value_enum, default_value_t = ModeArg::Live)]
    pub mode: ModeArg,
}

/// A `--signal CODE=VALUE[:UNIT]`.
#[derive(Debug, Clone)]
pub struct SignalArg {
    /// The signal code.
    pub code: String,
    /// The body's `value`.
    pub value: serde_json::Value,
    /// The body's `unit`, when given.
    pub unit: Option<String>,
}

/// A `--error TYPE:CODE`.
#[derive(Debug, Clone)]
pub struct ErrorArg {
    /// The error type, e.g. `VEHICLE_STATE`.
    pub error_type: String,
    /// The error code, e.g. `UNREACHABLE`.
    pub code: String,
}

fn signal_arg(text: &str) -> Result<SignalArg, String> {
    let (code, value) = text
        .split_once('=')
        .filter(|(code, value)| !code.trim().is_empty() && !value.is_empty())
        .ok_or("expected CODE=VALUE, e.g. tractionbattery-stateofcharge=80:percent")?;
    let number = |t: &str| t.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let (value, unit) = match value.split_once(':') {
        Some((n, unit)) if number(n).is_some() && !unit.is_empty() => {
            (json!(number(n)), Some(unit.to_owned()))
        }
        _ => match (number(value), value) {
            (Some(n), _) => (json!(n), None),
            (None, "true") => (json!(true), None),
            (None, "false") => (json!(false), None),
            (None, text) => (json!(text), None),
        },
    };
    Ok(SignalArg {
        code: code.trim().to_owned(),
        value,
        unit,
    })
}

fn error_arg(text: &str) -> Result<ErrorArg, String> {
    match text.split_once(':') {
        Some((t, c)) if !t.trim().is_empty() && !c.trim().is_empty() => Ok(ErrorArg {
            error_type: t.trim().to_owned(),
            code: c.trim().to_owned(),
        }),
        _ => Err("expected TYPE:CODE, e.g. VEHICLE_STATE:UNREACHABLE".into()),
    }
}

fn time_arg(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}; expected an RFC 3339 time such as 2026-12-01T08:00:00Z"))
}

/// `meta.mode` values `send-test-event` can send.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// `LIVE`: a reading like a car's.
    Live,
    /// `TEST`: like the dashboard's test delivery.
    Test,
}

/// A number that JSON can carry: NaN and infinities would be sent as `null`.
fn finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("must be a finite number".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Units `send-test-event` can send.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UnitArg {
    /// Kilometres.
    Km,
    /// Miles.
    Miles,
}

/// The answer to a VERIFY round trip.
pub(super) struct Handshake {
    /// The random challenge sent.
    pub challenge: String,
    /// The HTTP status.
    pub status: u16,
    /// The body answered.
    pub answer: String,
    /// Whether the answer is 200 with the challenge's HMAC under the management token.
    pub matches: bool,
}

/// The client both commands use: answers of every status are returned, not errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// Posts a VERIFY event with a random challenge to `url` and checks the answer against `keys`,
/// as Smartcar does when a webhook is registered.
pub(super) fn handshake(keys: &SigningKeys, url: &str) -> Result<Handshake, CliError> {
    let challenge = random_token(16);
    let body = json!({
        "eventId": random_uuid(),
        "eventType": "VERIFY",
        "data": { "challenge": challenge },
        "meta": {
            "version": "4.0",
            "webhookId": "meterhook-send-test-event",
            "deliveryId": random_uuid(),
            "deliveredAt": chrono::Utc::now().timestamp_millis(),
        },
    })
    .to_string();
    let (status, answer) = post(&agent(), url, body.as_bytes(), None)?;
    let expected = keys.answer_challenge(&challenge);
    let got = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| {
            v.get("challenge")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    Ok(Handshake {
        matches: status == 200 && got.as_deref() == Some(expected.as_str()),
        challenge,
        status,
        answer,
    })
}

/// The webhook URL of this configuration's own service: `METERHOOK_LISTEN`, with an
/// all-interfaces address read as the loopback one.
pub(super) fn default_url(settings: &Settings) -> String {
    let listen = settings.listen.trim();
    let listen = if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    };
    format!("http://{listen}/api/smartcar/webhook")
}

/// What an answer that is not a 2xx means, for a signed delivery to `url`.
pub(super) fn explain(url: &str, status: u16, answer: &str) -> String {
    let answer = crate::cli::cell(answer.trim());
    match status {
        401 => format!(
            "{url} answered HTTP 401: it refused the signature. The server checks SC-Signature \
             with another token than this SMARTCAR_MANAGEMENT_TOKEN: run both with the same \
             token (for example from the same .env.local)"
        ),
        404 => format!(
            "{url} answered HTTP 404: nothing answers at this path. meterhook's webhook is \
             POST /api/smartcar/webhook; check the URL's path and port"
        ),
        405 => format!("{url} answered HTTP 405: this path does not take POST; check the URL"),
        413 => format!("{url} answered HTTP 413: the body is larger than the server accepts"),
        503 => format!(
            "{url} answered HTTP 503: the server could not store the event (database or spool \
             unavailable); it is not stored, try again later: {answer}"
        ),
        _ => format!("{url} answered HTTP {status}: {answer}"),
    }
}

/// Runs `meterhook send-test-event`.
pub fn run(settings: &Settings, args: &SendTestEvent) -> Result<(), CliError> {
    let keys = settings.signing_keys().map_err(CliError::config)?;
    let url = args.url.clone().unwrap_or_else(|| default_url(settings));
    if args.verify {
        let h = handshake(&keys, &url)?;
        println!(
            "POST {url} (VERIFY, challenge {}) -> {}",
            h.challenge, h.status
        );
        println!("{}", h.answer);
        return if h.matches {
            println!("verification handshake OK: the answer matches the management token");
            Ok(())
        } else if h.status == 200 {
            Err(CliError::new(format!(
                "verification handshake failed: {url} answered 200, but the answer does not \
                 match this management token's hash of the challenge: the server runs with \
                 another SMARTCAR_MANAGEMENT_TOKEN"
            )))
        } else {
            Err(CliError::new(format!(
                "verification handshake failed: {}",
                explain(&url, h.status, &h.answer)
            )))
        };
    }

    let Some(vehicle) = args.vehicle.as_deref() else {
        return Err(CliError::usage("--vehicle is required without --verify"));
    };
    let now = chrono::Utc::now();
    let observed = match (args.at, args.ago) {
        (Some(at), _) => at,
        (None, Some(ago)) => chrono::TimeDelta::from_std(ago)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| CliError::usage("--ago reaches back further than dates go"))?,
        (None, None) => now,
    };
    let event_id = random_uuid();
    let (body, what) = match &args.error {
        Some(error) => (
            vehicle_error(&event_id, vehicle, error, args.resolved, args.mode, now),
            format!(
                "VEHICLE_ERROR {event_id}, {}:{} {}",
                error.error_type,
                error.code,
                if args.resolved { "RESOLVED" } else { "ERROR" }
            ),
        ),
        None => {
            let unit = match args.unit {
                UnitArg::Km => "km",
                UnitArg::Miles => "miles",
            };
            let mut signals = Vec::new();
            let mut said = Vec::new();
            if let Some(odometer) = args.odometer {
                signals.push(SignalArg {
                    code: "odometer-traveleddistance".into(),
                    value: json!(odometer),
                    unit: Some(unit.into()),
                });
                said.push(format!("odometer {odometer} {unit}"));
            }
            signals.extend(args.signal.iter().cloned());
            said.extend(
                args.signal
                    .iter()
                    .map(|s| format!("{}={}", s.code, s.value)),
            );
            (
                vehicle_state(&event_id, vehicle, &signals, args.mode, observed, now),
                format!(
                    "VEHICLE_STATE {event_id}, {} at {}",
                    said.join(", "),
                    observed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            )
        }
    };
    let signature = keys.sign(body.as_bytes());
    let (status, answer) = post(&agent(), &url, body.as_bytes(), Some(&signature))?;
    println!("POST {url} ({what}) -> {status}");
    println!("{answer}");
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(CliError::new(explain(&url, status, &answer)))
    }
}

/// Signs `body` with the configured token and posts it to `url`; a non-2xx answer is an error
/// saying what it means. Returns the status and the answer.
pub(super) fn post_signed(
    settings: &Settings,
    url: &str,
    body: &[u8],
) -> Result<(u16, String), CliError> {
    let keys = settings.signing_keys().map_err(CliError::config)?;
    let (status, answer) = post(&agent(), url, body, Some(&keys.sign(body)))?;
    if (200..300).contains(&status) {
        Ok((status, answer))
    } else {
        Err(CliError::new(explain(url, status, &answer)))
    }
}

fn meta(mode: ModeArg, now: chrono::DateTime<chrono::Utc>, signals: usize) -> serde_json::Value {
    json!({
        "deliveryId": random_uuid(),
        "deliveredAt": now.timestamp_millis(),
        "version": "4.0",
        "webhookId": "meterhook-send-test-event",
        "webhookName": "meterhook send-test-event",
        "mode": match mode {
            ModeArg::Live => "LIVE",
            ModeArg::Test => "TEST",
        },
        "signalCount": signals,
    })
}

/// `tractionbattery-stateofcharge` → (`TractionBattery`-like group, name): Smartcar's names are
/// display names; meterhook reads only the code.
fn name_and_group(code: &str) -> (String, String) {
    let (group, name) = code.split_once('-').unwrap_or((code, code));
    let title = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    };
    (title(name), title(group))
}

/// A v4 VEHICLE_STATE with `signals`, observed at `observed`.
fn vehicle_state(
    event_id: &str,
    vehicle: &str,
    signals: &[SignalArg],
    mode: ModeArg,
    observed: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let at = observed.timestamp_millis();
    let signals: Vec<serde_json::Value> = signals
        .iter()
        .map(|s| {
            let (name, group) = name_and_group(&s.code);
            let mut body = json!({ "value": s.value });
            if let Some(unit) = &s.unit {
                body["unit"] = json!(unit);
            }
            json!({
                "code": s.code,
                "name": name,
                "group": group,
                "body": body,
                "meta": { "oemUpdatedAt": at, "retrievedAt": at },
                "status": { "value": "SUCCESS" },
            })
        })
        .collect();
    let triggers: Vec<serde_json::Value> = signals
        .iter()
        .map(|s| {
            json!({
                "type": "SIGNAL_UPDATED",
                "signal": { "name": s["name"], "code": s["code"], "group": s["group"] },
            })
        })
        .collect();
    json!({
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": {
            "user": { "id": "meterhook-send-test-event" },
            "vehicle": { "id": vehicle },
            "signals": signals,
        },
        "triggers": triggers,
        "meta": meta(mode, now, signals.len()),
    })
    .to_string()
}

/// A v4 VEHICLE_ERROR with one condition, in the shape Smartcar sends
/// (`data.errors[]{type, code, state, description, suggestedUserMessage, resolution, signals}`).
fn vehicle_error(
    event_id: &str,
    vehicle: &str,
    error: &ErrorArg,
    resolved: bool,
    mode: ModeArg,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut meta = meta(mode, now, 0);
    if let Some(m) = meta.as_object_mut() {
        m.remove("signalCount");
    }
    json!({
        "eventId": event_id,
        "eventType": "VEHICLE_ERROR",
        "vehicleId": vehicle,
        "data": {
            "user": { "id": "meterhook-send-test-event" },
            "vehicle": { "id": vehicle },
            "errors": [{
                "type": error.error_type,
                "code": error.code,
                "state": if resolved { "RESOLVED" } else { "ERROR" },
                "description": format!("{}:{} sent by meterhook send-test-event", error.error_type, error.code),
                "suggestedUserMessage": "This is a test condition sent by meterhook send-test-event.",
                "resolution": { "type": match error.error_type.as_str() {
                    "CONNECTED_SERVICES_ACCOUNT" | "AUTHENTICATION" | "PERMISSION" => "REAUTHENTICATE",
                    _ => "RETRY_LATER",
                } },
                "signals": [{ "code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer" }],
            }],
        },
        "meta": meta,
    })
    .to_string()
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(u16, String), CliError> {
    let mut request = agent.post(url).content_type("application/json");
    if let Some(sig) = signature {
        request = request.header(meterhook_smartcar::SIGNATURE_HEADER, sig);
    }
    let mut response = request
        .send(body)
        .map_err(|e| CliError::new(format!("cannot reach {url}: {e}")))?;
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
