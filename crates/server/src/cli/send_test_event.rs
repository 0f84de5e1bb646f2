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
        allow_negative_numbers = true,
        value_parser = finite
    )]
    pub odometer: Option<f64>,
    /// Odometer unit.
    #[arg(long, value_enum, default_value_t = UnitArg::Km)]
    pub unit: UnitArg,
    /// `meta.mode` of the event: `live` (the default) goes through the rules like a car's
    /// reading; `test` is what the Smartcar dashboard's test delivery sends, kept as
    /// `test_event` with no meter entry.
    #[arg(long, value_enum, default_value_t = ModeArg::Live)]
    pub mode: ModeArg,
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
    let (status, answer) = post(&agent(), url, &body, None)?;
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

/// Runs `meterhook send-test-event`.
pub fn run(settings: &Settings, args: &SendTestEvent) -> Result<(), CliError> {
    let keys = settings.signing_keys().map_err(CliError::config)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let agent = agent();
    if args.verify {
        let h = handshake(&keys, &args.url)?;
        println!(
            "POST {} (VERIFY, challenge {}) -> {}",
            args.url, h.challenge, h.status
        );
        println!("{}", h.answer);
        return if h.matches {
            println!("verification handshake OK: the answer matches the management token");
            Ok(())
        } else {
            Err(CliError::new(format!(
                "verification handshake failed: HTTP {}, the answer does not match this management token",
                h.status
            )))
        };
    }

    let (Some(vehicle), Some(odometer)) = (args.vehicle.as_deref(), args.odometer) else {
        return Err(CliError::new(
            "--vehicle and --odometer are required without --verify",
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
            "mode": match args.mode {
                ModeArg::Live => "LIVE",
                ModeArg::Test => "TEST",
            },
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
        Err(CliError::new(format!("the webhook answered HTTP {status}")))
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
