//! The wire format against the official SDK's vectors and captured payloads (`tests/data`, copied
//! byte for byte from `shared/smartcar`).

use std::path::Path;
use std::time::Duration;

use meterhook_domain::{DistanceError, Millis, TimeSource, DEFAULT_MAX_CLOCK_SKEW};
use meterhook_smartcar::{
    hash_challenge, is_safe_challenge, parse_event, parse_event_with, sign, DeliveryHeaders, Event,
    EventId, EventType, Location, Mode, OdometerError, ParseError, SignalKind, SignalValue,
    SignatureCheck, SigningKeys, Trigger, V2Odometer, V2Vehicle, VehicleErrorInfo, VehicleReading,
    ODOMETER_CODE, SIGNATURE_HEADER,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn data(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn payload(name: &str) -> Vec<u8> {
    data(&format!("payloads/{name}"))
}

fn event(name: &str) -> Event {
    parse_event(&payload(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn vectors() -> Value {
    serde_json::from_slice(&data("vectors.json")).expect("vectors.json is JSON")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn keys(keys: &[&str]) -> SigningKeys {
    SigningKeys::new(keys).expect("non-empty keys")
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

// --- signatures and challenges -------------------------------------------------------------

#[test]
fn header_name() {
    assert_eq!(SIGNATURE_HEADER, "SC-Signature");
}

#[test]
fn challenge_vectors() {
    let vectors = vectors();
    let challenges = vectors["challenges"].as_array().expect("challenges");
    assert_eq!(challenges.len(), 3);
    for v in challenges {
        let (token, challenge, expected) =
            (text(v, "token"), text(v, "challenge"), text(v, "expected"));
        assert_eq!(hash_challenge(token.as_bytes(), challenge), expected, "{v}");
        assert_eq!(keys(&[token]).answer_challenge(challenge), expected, "{v}");
        assert_eq!(
            keys(&[token, "other"]).answer_challenge(challenge),
            expected,
            "{v}"
        );
        assert!(is_safe_challenge(challenge), "{v}");
    }
}

#[test]
fn swapped_key_and_message_is_wrong() {
    let vectors = vectors();
    let wrong = &vectors["wrong_if_you_get_this"];
    let (token, challenge, value) = (
        text(wrong, "token"),
        text(wrong, "challenge"),
        text(wrong, "value"),
    );
    assert_ne!(hash_challenge(token.as_bytes(), challenge), value);
    // Proves the vector is what it claims, so the inequality above tests the argument order.
    assert_eq!(hash_challenge(challenge.as_bytes(), token), value);
    let keys = keys(&[token]);
    assert_ne!(keys.answer_challenge(challenge), value);
    assert_eq!(
        keys.verify(Some(value.as_bytes()), challenge.as_bytes()),
        SignatureCheck::Invalid
    );
    // The handshake's answer is never accepted as the signature of a body made of the challenge.
    assert_eq!(
        keys.verify(
            Some(keys.answer_challenge(challenge).as_bytes()),
            challenge.as_bytes()
        ),
        SignatureCheck::Invalid
    );
}

#[test]
fn signature_vectors() {
    let vectors = vectors();
    let signatures = vectors["signatures"].as_array().expect("signatures");
    assert_eq!(signatures.len(), 10);
    for v in signatures {
        let token = text(v, "token");
        let expected = text(v, "sc_signature");
        let body = match v.get("body_file") {
            Some(file) => {
                let body = data(file.as_str().expect("path"));
                assert_eq!(Some(body.len() as u64), v["bytes"].as_u64(), "{v}");
                body
            }
            None => text(v, "body_inline").as_bytes().to_vec(),
        };
        assert_eq!(sign(token.as_bytes(), &body), expected, "{v}");
        let set = keys(&[token]);
        assert_eq!(set.sign(&body), expected, "{v}");
        assert_eq!(
            set.verify(Some(expected.as_bytes()), &body),
            SignatureCheck::Valid,
            "{v}"
        );
        let upper = expected.to_ascii_uppercase();
        assert_eq!(
            set.verify(Some(upper.as_bytes()), &body),
            SignatureCheck::Valid,
            "{v}"
        );
        assert_eq!(set.verify(None, &body), SignatureCheck::Missing, "{v}");
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            set.verify(Some(expected.as_bytes()), &tampered),
            SignatureCheck::Invalid,
            "{v}"
        );
        assert_eq!(
            keys(&["not-the-amt"]).verify(Some(expected.as_bytes()), &body),
            SignatureCheck::Invalid
        );
    }
}

/// The official Node/Ruby vector: key `amt`, body `{"pizza":"pasta"}`.
const PIZZA: &[u8] = br#"{"pizza":"pasta"}"#;
const PIZZA_SIG: &str = "4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70";

fn check_header(header: Option<&[u8]>, expected: SignatureCheck) {
    let shown = header.map(String::from_utf8_lossy);
    assert_eq!(keys(&["amt"]).verify(header, PIZZA), expected, "{shown:?}");
}

#[test]
fn malformed_headers() {
    let sig = PIZZA_SIG.as_bytes();
    let with = |extra: &str| format!("{PIZZA_SIG}{extra}").into_bytes();
    check_header(Some(sig), SignatureCheck::Valid);
    check_header(
        Some(PIZZA_SIG.to_ascii_uppercase().as_bytes()),
        SignatureCheck::Valid,
    );
    check_header(
        Some(format!(" \t{PIZZA_SIG}\r\n").as_bytes()),
        SignatureCheck::Valid,
    );
    check_header(None, SignatureCheck::Missing);
    // An empty header is no signature at all, exactly like a missing one.
    check_header(Some(b""), SignatureCheck::Missing);
    check_header(Some(b" "), SignatureCheck::Missing);
    check_header(Some(b"   "), SignatureCheck::Missing);
    check_header(Some(b" \t\r\n"), SignatureCheck::Missing);
    check_header(Some(b"\x0c"), SignatureCheck::Missing);
    check_header(Some(b"\x0b"), SignatureCheck::Invalid);
    check_header(Some(b"\0"), SignatureCheck::Invalid);
    check_header(Some(b" 0 "), SignatureCheck::Invalid);
    check_header(Some(&sig[..63]), SignatureCheck::Invalid);
    check_header(Some(&sig[..62]), SignatureCheck::Invalid);
    check_header(Some(&sig[..32]), SignatureCheck::Invalid);
    check_header(Some(&sig[..8]), SignatureCheck::Invalid);
    check_header(Some(&with("0")), SignatureCheck::Invalid);
    check_header(Some(&with("00")), SignatureCheck::Invalid);
    check_header(Some(&with("g")), SignatureCheck::Invalid);
    check_header(Some(&with(",v1")), SignatureCheck::Invalid);
    check_header(
        Some(format!("sha256={PIZZA_SIG}").as_bytes()),
        SignatureCheck::Invalid,
    );
    check_header(
        Some(format!("{}zz", &PIZZA_SIG[..62]).as_bytes()),
        SignatureCheck::Invalid,
    );
    check_header(
        Some(format!("{} {}", &PIZZA_SIG[..32], &PIZZA_SIG[32..]).as_bytes()),
        SignatureCheck::Invalid,
    );
    check_header(Some(&[0xff; 64]), SignatureCheck::Invalid);
    check_header(Some(&[b'0'; 64]), SignatureCheck::Invalid);
    check_header(
        Some(sign(b"amt", b"another body").as_bytes()),
        SignatureCheck::Invalid,
    );
    check_header(
        Some(sign(b"amt2", PIZZA).as_bytes()),
        SignatureCheck::Invalid,
    );
}

#[test]
fn any_configured_key_verifies() {
    let sig = Some(PIZZA_SIG.as_bytes());
    assert_eq!(
        keys(&["old-secret", "amt"]).verify(sig, PIZZA),
        SignatureCheck::Valid
    );
    assert_eq!(
        keys(&["a", "b", "amt"]).verify(sig, PIZZA),
        SignatureCheck::Valid
    );
    assert_eq!(
        keys(&["amt", "b"]).verify(sig, PIZZA),
        SignatureCheck::Valid
    );
    assert_eq!(
        keys(&["a", "b"]).verify(sig, PIZZA),
        SignatureCheck::Invalid
    );
    // Challenges and self-made signatures always use the first (current) key.
    let rotated = keys(&["new-amt", "amt"]);
    assert_eq!(rotated.len(), 2);
    assert_eq!(
        rotated.answer_challenge("challenge"),
        hash_challenge(b"new-amt", "challenge")
    );
    assert_eq!(rotated.sign(PIZZA), sign(b"new-amt", PIZZA));
}

#[test]
fn debug_hides_keys() {
    let keys = keys(&["test-amt-123", "amt"]);
    let shown = format!("{keys:?}");
    assert_eq!(shown, "SigningKeys([redacted; 2])");
    assert!(!shown.contains("amt"));
}

fn check_safe(challenge: &str, safe: bool) {
    assert_eq!(is_safe_challenge(challenge), safe, "{challenge:?}");
}

#[test]
fn safe_challenges() {
    check_safe("challenge", true);
    check_safe("nsQsLU7wY9WKt2IU", true);
    check_safe("3a5c8f72-e6d9-4b1a-9f2e-8c7d6a5b4e3f", true);
    check_safe("UPPER_lower-09", true);
    check_safe("a", true);
    check_safe(&"a".repeat(128), true);
    check_safe(&"a".repeat(129), false);
    check_safe("", false);
    check_safe(r#"{"eventId":"x","eventType":"VEHICLE_STATE"}"#, false);
    check_safe(
        std::str::from_utf8(&payload("v4_vehicle_state.json")).expect("utf-8"),
        false,
    );
    check_safe("has space", false);
    check_safe(" leading", false);
    check_safe("trailing\n", false);
    check_safe("héllo", false);
    check_safe("日本", false);
    check_safe("a.b", false);
    check_safe("a/b", false);
    check_safe("a=b", false);
    check_safe("a+b", false);
    check_safe("a\0b", false);
}

/// How a VERIFY body with `header` as its `SC-Signature` is checked, and the answer it would get.
fn check_verify_header(file: &str, header: Option<&[u8]>, expected: SignatureCheck) {
    let keys = keys(&["test-amt-123"]);
    let body = payload(file);
    let shown = header.map(String::from_utf8_lossy);
    assert_eq!(keys.verify(header, &body), expected, "{file} {shown:?}");
    let e = parse_event(&body).expect("parses");
    assert_eq!(e.event_type, EventType::Verify, "{file}");
    let challenge = e.challenge.as_deref().expect("challenge");
    assert!(is_safe_challenge(challenge), "{file}");
    assert_eq!(
        keys.answer_challenge(challenge),
        "eaee8adba92c5612b2a61c36bd7c7f36f1305aa93222d45f5d77d22f4571a1ab",
        "{file}"
    );
}

#[test]
fn unsigned_verify_with_an_empty_header() {
    // Sent unsigned, the handshake is answered; an empty header is unsigned too.
    for file in ["v4_verify.json", "seed_verify.json", "v2_verify.json"] {
        check_verify_header(file, None, SignatureCheck::Missing);
        check_verify_header(file, Some(b""), SignatureCheck::Missing);
        check_verify_header(file, Some(b"  \t"), SignatureCheck::Missing);
        // A VERIFY that does carry a signature must carry a valid one.
        check_verify_header(file, Some(b"not-a-signature"), SignatureCheck::Invalid);
        check_verify_header(file, Some(&[b'0'; 64]), SignatureCheck::Invalid);
        let signed = sign(b"test-amt-123", &payload(file));
        check_verify_header(file, Some(signed.as_bytes()), SignatureCheck::Valid);
    }
}

#[test]
fn oracle_attempt_is_parsed_but_not_safe() {
    let forged = r#"{"eventId":"x","eventType":"VEHICLE_STATE","data":{}}"#;
    let body = json!({"eventType": "VERIFY", "data": {"challenge": forged}}).to_string();
    let event = parse_event(body.as_bytes()).expect("parses");
    assert_eq!(event.challenge.as_deref(), Some(forged));
    assert!(!is_safe_challenge(forged));
}

// --- captured payloads ---------------------------------------------------------------------

const RECEIVED: Millis = Millis(1_800_000_000_000);

#[test]
fn v4_vehicle_state() {
    let e = event("v4_vehicle_state.json");
    assert_eq!(e.event_type, EventType::VehicleState);
    assert_eq!(
        e.id,
        EventId {
            value: "fc457667-b065-4c8c-8441-4a8fb6f64976".to_owned(),
            from_body_hash: false
        }
    );
    assert_eq!(e.vehicle_id, s("b3014ded-85db-4f12-8923-7a231354d8d0"));
    assert_eq!(e.user_id, s("da4ef0df-73b9-4ad7-8c59-1b15ff646f0b"));
    assert_eq!(e.challenge, None);
    assert_eq!(e.signals.len(), 6);
    assert_eq!(e.meta.signal_count, Some(6));
    assert!(e.errors.is_empty());

    let reading = e
        .odometer_reading(RECEIVED)
        .expect("has an odometer")
        .expect("valid");
    assert_eq!(reading.distance.metres(), 42_506_300);
    assert_eq!(reading.observed_at, Millis(1_769_852_860_000));
    let odometer = e.odometer().expect("odometer");
    assert_eq!(odometer.code, ODOMETER_CODE);
    assert_eq!(
        (odometer.name.as_deref(), odometer.group.as_deref()),
        (Some("TraveledDistance"), Some("Odometer"))
    );
    assert_eq!(odometer.status.as_deref(), Some("SUCCESS"));
    assert_eq!(odometer.retrieved_at, Some(1_769_937_942_628));
    assert_eq!(
        (odometer.value(), odometer.unit()),
        (Some(42506.3), Some("km"))
    );

    let soc = e
        .signal(SignalKind::EvStateOfCharge)
        .expect("state of charge");
    assert_eq!(
        (soc.value(), soc.normalized_unit()),
        (Some(89.0), Some("%"))
    );
    let range = e.signal(SignalKind::EvRange).expect("range");
    assert_eq!(
        (range.value(), range.normalized_unit()),
        (Some(290.0), Some("km"))
    );
    assert_eq!(
        e.signal(SignalKind::IsCharging)
            .and_then(|s| s.bool_value()),
        Some(true)
    );
    assert_eq!(
        e.signal(SignalKind::Location).and_then(|s| s.location()),
        Some(Location {
            latitude: 61.111111,
            longitude: 23.333333,
            heading: None,
            location_type: s("LAST_PARKED"),
        })
    );
    let fuel = e.signal(SignalKind::FuelLevel).expect("fuel level");
    assert!(fuel.failed());
    assert_eq!(fuel.body, None);
    let error = fuel.error.as_ref().expect("error");
    assert_eq!(
        (error.error_type.as_deref(), error.code.as_deref()),
        (Some("COMPATIBILITY"), Some("VEHICLE_NOT_CAPABLE"))
    );
    assert_eq!(e.signal(SignalKind::Tires), None);

    assert_eq!(
        e.triggers,
        [Trigger {
            trigger_type: s("SIGNAL_UPDATED"),
            code: s(ODOMETER_CODE),
            name: s("TraveledDistance"),
            group: s("Odometer"),
        }]
    );
    assert!(!e.triggers[0].is_first_delivery());
    assert_eq!(e.meta.delivered_at, Some(1_769_937_943_464));
    assert_eq!(
        e.meta.delivery_id,
        s("23db56ff-a58b-4c0d-990b-91846fd3a451")
    );
    assert_eq!(e.meta.version, s("4.0"));
    assert_eq!(e.meta.webhook_id, s("7ff798f5-bbce-4300-a1f4-d553d0fb23b0"));
    assert_eq!(e.meta.webhook_name, s("Odometer Ingest"));
    assert_eq!(e.meta.mode, s("LIVE"));
    assert!(!e.is_test());
}

#[test]
fn v4_vehicle_error() {
    let e = event("v4_vehicle_error.json");
    assert_eq!(e.event_type, EventType::VehicleError);
    assert_eq!(e.id.value, "5a537912-9ad3-424b-ba33-65a1704567e9");
    assert_eq!(e.vehicle_id, s("123e4567-e89b-12d3-a456-426614174000"));
    assert_eq!(e.user_id, s("93b3ea96-ca37-43a9-9073-f4334719aaa7"));
    assert!(e.signals.is_empty());
    assert_eq!(e.odometer_reading(RECEIVED), None);
    assert_eq!(
        e.errors,
        [VehicleErrorInfo {
            error_type: s("VEHICLE_STATE"),
            code: s("UNREACHABLE"),
            state: s("ERROR"),
            description: s("The vehicle is not connected to the internet."),
            suggested_user_message: s("Your car is currently unreachable."),
            doc_url: s(
                "https://smartcar.com/docs/errors/api-errors/vehicle-state-errors#unreachable"
            ),
            resolution_type: s("RETRY_LATER"),
            signals: vec![ODOMETER_CODE.to_owned()],
        }]
    );
    assert!(!e.errors[0].is_resolved());
    assert!(e.triggers.is_empty());
    assert_eq!(e.meta.delivered_at, Some(1_761_896_351_529));
    assert_eq!(
        e.meta.delivery_id,
        s("48b25f8f-9fea-42e1-9085-81043682cbb8")
    );
    assert_eq!(e.meta.mode, s("LIVE"));
    assert_eq!(e.meta.signal_count, None);
}

#[test]
fn v4_verify() {
    let e = event("v4_verify.json");
    assert_eq!(e.event_type, EventType::Verify);
    assert_eq!(e.id.value, "0b6a4a8e-7c1d-4f53-9a52-5d0e2f8c1a77");
    assert!(!e.id.from_body_hash);
    assert_eq!(e.challenge, s("nsQsLU7wY9WKt2IU"));
    assert_eq!(e.vehicle_id, None);
    assert_eq!(e.meta.delivered_at, Some(1_761_896_351_529));
    assert_eq!(e.meta.webhook_name, s("Odometer Ingest"));
    let challenge = e.challenge.as_deref().expect("challenge");
    assert!(is_safe_challenge(challenge));
    assert_eq!(
        keys(&["test-amt-123"]).answer_challenge(challenge),
        "eaee8adba92c5612b2a61c36bd7c7f36f1305aa93222d45f5d77d22f4571a1ab"
    );
}

#[test]
fn v2_verify() {
    let body = payload("v2_verify.json");
    let e = parse_event(&body).expect("parses");
    assert_eq!(e.event_type, EventType::Verify);
    assert_eq!(e.event_type.as_str(), "VERIFY");
    assert_eq!(e.challenge, s("nsQsLU7wY9WKt2IU"));
    assert_eq!(e.id, EventId::from_body(&body));
    assert_eq!(e.meta.version, s("2.0"));
    assert_eq!(e.meta.webhook_id, s("865ca68d-a9b6-4d74-856e-605db0209eca"));
    assert_eq!(
        keys(&["test-amt-123"]).answer_challenge("nsQsLU7wY9WKt2IU"),
        "eaee8adba92c5612b2a61c36bd7c7f36f1305aa93222d45f5d77d22f4571a1ab"
    );
    let upper =
        parse_event(br#"{"eventName":"VERIFY","payload":{"challenge":"abc","vehicleId":"v"}}"#)
            .expect("parses");
    assert_eq!(
        (upper.event_type, upper.challenge, upper.vehicle_id),
        (EventType::Verify, s("abc"), s("v"))
    );
}

#[test]
fn seed_verify() {
    let body = payload("seed_verify.json");
    let e = parse_event(&body).expect("parses");
    assert_eq!(e.event_type, EventType::Verify);
    assert_eq!(e.challenge, s("nsQsLU7wY9WKt2IU"));
    assert!(e.id.from_body_hash);
    assert_eq!(e.meta, Default::default());
}

#[test]
fn seed_vehicle_state() {
    let e = event("seed_vehicle_state.json");
    assert_eq!(e.event_type, EventType::VehicleState);
    assert_eq!(e.vehicle_id, s("vehicle-id-here"));
    assert!(e.id.from_body_hash);
    assert_eq!(e.signals.len(), 1);
    let odometer = e.odometer().expect("synthetic odometer");
    assert_eq!(odometer.code, ODOMETER_CODE);
    assert_eq!(
        odometer.body,
        Some(json!({"value": 12345, "unit": "kilometers"}))
    );
    assert_eq!(
        (odometer.oem_updated_at, odometer.retrieved_at),
        (None, None)
    );
    let reading = e
        .odometer_reading(RECEIVED)
        .expect("odometer")
        .expect("valid");
    assert_eq!(reading.distance.metres(), 12_345_000);
    assert_eq!(reading.observed_at, RECEIVED);
}

#[test]
fn seed_vehicle_error() {
    let e = event("seed_vehicle_error.json");
    assert_eq!(e.event_type, EventType::VehicleError);
    assert_eq!(e.vehicle_id, s("vehicle-id-here"));
    assert_eq!(
        e.errors,
        [VehicleErrorInfo {
            description: s("Error details"),
            ..Default::default()
        }]
    );
    assert_eq!(e.odometer(), None);
}

#[test]
fn minimal_event_has_an_odometer_without_unit() {
    let e = event("minimal_event.json");
    assert_eq!(e.id.value, "evt-1");
    assert_eq!(e.event_type, EventType::VehicleState);
    // A bare number carries no unit; it is flagged rather than assumed to be km.
    assert_eq!(e.odometer().and_then(|s| s.value()), Some(12345.6));
    assert_eq!(
        e.odometer_reading(RECEIVED),
        Some(Err(OdometerError::MissingUnit))
    );
}

#[test]
fn utf8_event() {
    let e = event("utf8_event.json");
    assert_eq!(e.id.value, "e-1");
    assert_eq!(e.event_type, EventType::VehicleState);
    assert_eq!(e.vehicle_id, None);
    assert!(e.signals.is_empty());
    assert_eq!(e.odometer_reading(RECEIVED), None);
}

#[test]
fn every_payload_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/payloads");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("payload dir") {
        let path = entry.expect("entry").path();
        let body = std::fs::read(&path).expect("payload");
        let e = parse_event(&body).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_ne!(e.event_type.as_str(), "UNKNOWN", "{}", path.display());
        count += 1;
    }
    assert_eq!(count, 9);
}

// --- ids, types, metadata ------------------------------------------------------------------

#[test]
fn body_hash_ids() {
    let a = br#"{"eventType":"VEHICLE_STATE","vehicleId":"v","data":{"odometer":{"distance":1,"unit":"km"}}}"#;
    let b = br#"{"eventType":"VEHICLE_STATE","vehicleId":"v","data":{"odometer":{"distance":2,"unit":"km"}}}"#;
    let id = |body: &[u8]| parse_event(body).expect("parses").id;
    assert_eq!(id(a), id(a));
    assert_ne!(id(a), id(b));
    // Whitespace changes the bytes, hence the id: the hash is over what was received.
    let mut spaced = a.to_vec();
    spaced.push(b'\n');
    assert_ne!(id(a), id(&spaced));
    let hashed = id(a);
    assert!(hashed.from_body_hash);
    assert_eq!(hashed, EventId::from_body(a));
    let hex = hashed.value.strip_prefix("sha256:").expect("prefix");
    assert_eq!(hex.len(), 64);
    assert!(hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    assert_eq!(
        EventId::from_body(b"").value,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // An empty or non-string eventId is no id.
    assert!(id(br#"{"eventId":"","eventType":"VERIFY"}"#).from_body_hash);
    assert!(id(br#"{"eventId":42,"eventType":"VERIFY"}"#).from_body_hash);
    assert_eq!(
        id(br#"{"eventId":"e","eventType":"VERIFY"}"#).to_string(),
        "e"
    );
}

fn check_type(body: &str, expected: EventType) {
    assert_eq!(
        parse_event(body.as_bytes()).expect("parses").event_type,
        expected,
        "{body}"
    );
}

#[test]
fn event_types() {
    check_type(r#"{"eventType":"VERIFY"}"#, EventType::Verify);
    check_type(r#"{"eventType":"VEHICLE_STATE"}"#, EventType::VehicleState);
    check_type(r#"{"eventType":"VEHICLE_ERROR"}"#, EventType::VehicleError);
    check_type(r#"{"eventName":"verify"}"#, EventType::Verify);
    check_type(
        r#"{"eventType":"VEHICLE_MOOD"}"#,
        EventType::Other("VEHICLE_MOOD".to_owned()),
    );
    check_type(
        r#"{"eventName":"schedule"}"#,
        EventType::Other("schedule".to_owned()),
    );
    check_type(r#"{}"#, EventType::Other("UNKNOWN".to_owned()));
    check_type(
        r#"{"eventType":""}"#,
        EventType::Other("UNKNOWN".to_owned()),
    );
    check_type(r#"{"eventType":7}"#, EventType::Other("UNKNOWN".to_owned()));
    assert_eq!(
        EventType::Other("VEHICLE_MOOD".to_owned()).as_str(),
        "VEHICLE_MOOD"
    );
    assert_eq!(EventType::VehicleError.to_string(), "VEHICLE_ERROR");
}

#[test]
fn challenge_only_on_verify() {
    let e = parse_event(br#"{"eventType":"VEHICLE_STATE","data":{"challenge":"abc"}}"#)
        .expect("parses");
    assert_eq!(e.challenge, None);
    let e = parse_event(br#"{"eventType":"VERIFY","data":{"challenge":42}}"#).expect("parses");
    assert_eq!(e.challenge, None);
}

fn check_delivered_at(value: Value, expected: Option<i64>) {
    let body = json!({"eventId": "e", "eventType": "VEHICLE_STATE", "meta": {"deliveredAt": value.clone()}});
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    assert_eq!(e.meta.delivered_at, expected, "{value}");
}

#[test]
fn delivered_at_forms() {
    check_delivered_at(json!(1_761_896_351_529_i64), Some(1_761_896_351_529));
    check_delivered_at(json!("2025-10-31T07:39:11.529Z"), Some(1_761_896_351_529));
    check_delivered_at(
        json!("2025-10-31T09:39:11.529+02:00"),
        Some(1_761_896_351_529),
    );
    check_delivered_at(json!("2025-10-31T07:39:11Z"), Some(1_761_896_351_000));
    check_delivered_at(json!("1761896351529"), Some(1_761_896_351_529));
    check_delivered_at(json!("2025-10-31T07:39:11"), None);
    check_delivered_at(json!("yesterday"), None);
    check_delivered_at(json!(null), None);
    check_delivered_at(json!([1]), None);
}

#[test]
fn triggers_in_every_shape() {
    let body = json!({
        "eventId": "e", "eventType": "VEHICLE_STATE",
        "triggers": [
            {"type": "SIGNAL_UPDATED", "signal": {"name": "TraveledDistance", "code": ODOMETER_CODE, "group": "Odometer"}},
            {"type": "SIGNAL_UPDATED", "signal": "Odometer.TraveledDistance"},
            {"type": "FIRST_DELIVERY"},
            "ignored-not-an-object-but-kept-as-code",
            7,
        ],
        "data": {"triggers": [
            {"code": "tractionbattery-stateofcharge", "name": "StateOfCharge", "group": "TractionBattery"},
            {"code": "FIRST_DELIVERY"},
        ]},
    });
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    let t = |trigger_type: Option<&str>,
             code: Option<&str>,
             name: Option<&str>,
             group: Option<&str>| Trigger {
        trigger_type: trigger_type.map(str::to_owned),
        code: code.map(str::to_owned),
        name: name.map(str::to_owned),
        group: group.map(str::to_owned),
    };
    assert_eq!(
        e.triggers,
        [
            t(
                Some("SIGNAL_UPDATED"),
                Some(ODOMETER_CODE),
                Some("TraveledDistance"),
                Some("Odometer")
            ),
            t(
                Some("SIGNAL_UPDATED"),
                Some("Odometer.TraveledDistance"),
                None,
                None
            ),
            t(Some("FIRST_DELIVERY"), None, None, None),
            t(
                None,
                Some("ignored-not-an-object-but-kept-as-code"),
                None,
                None
            ),
            t(
                None,
                Some("tractionbattery-stateofcharge"),
                Some("StateOfCharge"),
                Some("TractionBattery")
            ),
            t(None, Some("FIRST_DELIVERY"), None, None),
        ]
    );
    let first: Vec<bool> = e.triggers.iter().map(Trigger::is_first_delivery).collect();
    assert_eq!(first, [false, false, true, false, false, true]);
}

#[test]
fn error_infos_in_every_shape() {
    let body = json!({
        "eventId": "e", "eventType": "VEHICLE_ERROR",
        "data": {"errors": [
            {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE", "state": "ERROR",
             "resolution": {"type": null},
             "signals": ["InternalCombustionEngine.FuelLevel", {"name": "OnlyName"}, {"code": "closure-islocked", "name": "IsLocked"}, 5]},
            {"type": "PERMISSION", "code": null, "state": "RESOLVED", "docUrl": "https://x", "resolution": "REAUTHENTICATE"},
            "a bare message",
            17,
        ]},
    });
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    assert_eq!(
        e.errors,
        [
            VehicleErrorInfo {
                error_type: s("COMPATIBILITY"),
                code: s("VEHICLE_NOT_CAPABLE"),
                state: s("ERROR"),
                signals: vec![
                    "InternalCombustionEngine.FuelLevel".to_owned(),
                    "OnlyName".to_owned(),
                    "closure-islocked".to_owned(),
                ],
                ..Default::default()
            },
            VehicleErrorInfo {
                error_type: s("PERMISSION"),
                state: s("RESOLVED"),
                doc_url: s("https://x"),
                resolution_type: s("REAUTHENTICATE"),
                ..Default::default()
            },
            VehicleErrorInfo {
                description: s("a bare message"),
                ..Default::default()
            },
        ]
    );
    assert!(e.errors[1].is_resolved());
}

fn check_mode(body: &str, expected: Mode) {
    let e = parse_event(body.as_bytes()).unwrap_or_else(|err| panic!("{body}: {err}"));
    assert_eq!(e.mode, expected, "{body}");
    assert_eq!(e.is_test(), expected == Mode::Test, "{body}");
}

/// The dashboard's "send test payload" for a v4 webhook: made-up vehicle, `meta.mode` `TEST`.
const V4_DASHBOARD_TEST: &str = r#"{"eventId":"5a537912-9ad3-424b-ba33-65a1704567e9","eventType":"VEHICLE_STATE","data":{"user":{"id":"93b3ea96-ca37-43a9-9073-f4334712dbc7"},"vehicle":{"id":"123e4567-e89b-12d3-a456-426614174000","make":"Test Make","model":"Test Model","year":2020},"signals":[{"code":"odometer-traveleddistance","name":"TraveledDistance","group":"Odometer","body":{"value":12345.6,"unit":"km"},"status":{"value":"SUCCESS"},"meta":{"retrievedAt":1758668712404,"oemUpdatedAt":1758668712404}}]},"triggers":[{"type":"SIGNAL_UPDATED","signal":{"name":"TraveledDistance","group":"Odometer","code":"odometer-traveleddistance"}}],"meta":{"version":"4.0","deliveryId":"48b25f8f-9fea-42e1-9085-81043682cbb8","deliveredAt":1761896351529,"webhookId":"123e4567-e89b-12d3-a456-426614174000","webhookName":"My First Webhook","signalCount":1,"mode":"TEST"}}"#;

/// A v2 scheduled delivery; `mode` is `live`, `test` or `simulated` at the top level.
fn v2_schedule(mode: &str) -> String {
    json!({
        "version": "2.0", "webhookId": "865ca68d-a9b6-4d74-856e-605db0209eca",
        "eventName": "schedule", "mode": mode,
        "payload": {"vehicles": [{
            "vehicleId": "e20d2ec5-f3a4-4c20-a1ea-af9f9a1c5e08",
            "requestId": "25d743b8-14cf-4744-b067-bd8d7daf3f1a",
            "data": [{"path": "/odometer", "code": 200, "body": {"distance": 104.32}}],
        }]},
    })
    .to_string()
}

#[test]
fn live_and_test_modes() {
    check_mode(V4_DASHBOARD_TEST, Mode::Test);
    check_mode(
        &V4_DASHBOARD_TEST.replace(r#""mode":"TEST""#, r#""mode":"test""#),
        Mode::Test,
    );
    check_mode(
        &V4_DASHBOARD_TEST.replace(r#""mode":"TEST""#, r#""mode":"LIVE""#),
        Mode::Live,
    );
    check_mode(
        &V4_DASHBOARD_TEST.replace(r#","mode":"TEST""#, ""),
        Mode::Live,
    );
    check_mode(
        &V4_DASHBOARD_TEST.replace(r#""mode":"TEST""#, r#""mode":7"#),
        Mode::Live,
    );
    check_mode(
        &V4_DASHBOARD_TEST.replace(r#""mode":"TEST""#, r#""mode":"SANDBOX""#),
        Mode::Live,
    );
    check_mode(&v2_schedule("test"), Mode::Test);
    check_mode(&v2_schedule("simulated"), Mode::Test);
    check_mode(&v2_schedule("live"), Mode::Live);
    check_mode(&v2_schedule(""), Mode::Live);
    check_mode(
        r#"{"version":"2.0","webhookId":"uuid","eventName":"eventBased","mode":"test","payload":{"eventId":"e","vehicleId":"v","eventType":"CHARGING_STARTED","eventTime":"2022-04-13T10:00:00.000Z"}}"#,
        Mode::Test,
    );
    check_mode(
        r#"{"version":"2.0","webhookId":"w","eventName":"verify","mode":"test","payload":{"challenge":"c"}}"#,
        Mode::Test,
    );
    // `meta.mode` wins over a top-level `mode`.
    check_mode(
        r#"{"eventType":"VEHICLE_STATE","mode":"test","meta":{"mode":"LIVE"}}"#,
        Mode::Live,
    );
    for file in [
        "v4_vehicle_state.json",
        "v4_vehicle_error.json",
        "v4_verify.json",
        "v2_verify.json",
        "seed_vehicle_state.json",
        "seed_vehicle_error.json",
        "seed_verify.json",
        "minimal_event.json",
        "utf8_event.json",
    ] {
        assert_eq!(event(file).mode, Mode::Live, "{file}");
    }
}

// --- odometer readings ---------------------------------------------------------------------

const NOW: Millis = Millis(1_000);

/// Parses an event whose only signal is `signal` and reads its odometer as (metres, observed ms).
fn check_odometer(signal: Value, expected: Result<(i64, i64), OdometerError>) {
    let body = json!({"eventId": "e", "eventType": "VEHICLE_STATE", "data": {"signals": [signal.clone()]}});
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    let got = e
        .odometer_reading(NOW)
        .expect("an odometer signal")
        .map(|r| (r.distance.metres(), r.observed_at.0));
    assert_eq!(got, expected, "{signal}");
}

fn odo(body: Value, meta: Value) -> Value {
    json!({"code": ODOMETER_CODE, "body": body, "meta": meta, "status": {"value": "SUCCESS"}})
}

#[test]
fn odometer_readings() {
    let at = json!({"oemUpdatedAt": 5_000, "retrievedAt": 6_000});
    check_odometer(
        odo(json!({"value": 42506.3, "unit": "km"}), at.clone()),
        Ok((42_506_300, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 12345, "unit": "kilometers"}), at.clone()),
        Ok((12_345_000, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 12345, "unit": "kilometres"}), at.clone()),
        Ok((12_345_000, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 10, "unit": "mi"}), at.clone()),
        Ok((16_093, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 10, "unit": "miles"}), at.clone()),
        Ok((16_093, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 1000, "unit": "miles"}), at.clone()),
        Ok((1_609_344, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 0, "unit": "km"}), at.clone()),
        Ok((0, 5_000)),
    );
    check_odometer(
        odo(json!({"value": "42506.3", "unit": "km"}), at.clone()),
        Ok((42_506_300, 5_000)),
    );
    check_odometer(
        odo(json!({"value": 1, "unit": "furlongs"}), at.clone()),
        Err(OdometerError::UnknownUnit("furlongs".to_owned())),
    );
    check_odometer(
        odo(json!({"value": 1, "unit": "m"}), at.clone()),
        Err(OdometerError::UnknownUnit("m".to_owned())),
    );
    check_odometer(
        odo(json!({"value": 1}), at.clone()),
        Err(OdometerError::MissingUnit),
    );
    check_odometer(
        odo(json!({"value": 1, "unit": 5}), at.clone()),
        Err(OdometerError::MissingUnit),
    );
    check_odometer(
        odo(json!({"unit": "km"}), at.clone()),
        Err(OdometerError::MissingValue),
    );
    check_odometer(
        odo(json!({"value": "far", "unit": "km"}), at.clone()),
        Err(OdometerError::MissingValue),
    );
    check_odometer(
        odo(json!({"value": true, "unit": "km"}), at.clone()),
        Err(OdometerError::MissingValue),
    );
    check_odometer(odo(json!(42), at.clone()), Err(OdometerError::MissingValue));
    check_odometer(
        odo(json!({"value": -1, "unit": "km"}), at.clone()),
        Err(OdometerError::Distance(DistanceError::Negative)),
    );
    check_odometer(
        odo(json!({"value": 1e12, "unit": "km"}), at.clone()),
        Err(OdometerError::Distance(DistanceError::TooLarge)),
    );
    check_odometer(
        json!({"code": ODOMETER_CODE, "status": {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}}}),
        Err(OdometerError::SignalFailed {
            error_type: s("COMPATIBILITY"),
            code: s("VEHICLE_NOT_CAPABLE"),
        }),
    );
    check_odometer(
        json!({"code": ODOMETER_CODE, "body": {"value": 1, "unit": "km"}, "status": {"value": "ERROR"}}),
        Err(OdometerError::SignalFailed {
            error_type: None,
            code: None,
        }),
    );
}

#[test]
fn odometer_observation_times() {
    let km = || json!({"value": 1, "unit": "km"});
    check_odometer(
        odo(km(), json!({"oemUpdatedAt": 5_000, "retrievedAt": 6_000})),
        Ok((1_000, 5_000)),
    );
    check_odometer(
        odo(km(), json!({"oemUpdatedAt": 0, "retrievedAt": 6_000})),
        Ok((1_000, 6_000)),
    );
    check_odometer(
        odo(km(), json!({"oemUpdatedAt": 0, "fetchedAt": 7_000})),
        Ok((1_000, 7_000)),
    );
    check_odometer(odo(km(), json!({"fetchedAt": 7_000})), Ok((1_000, 7_000)));
    check_odometer(
        odo(km(), json!({"retrievedAt": 6_000, "fetchedAt": 7_000})),
        Ok((1_000, 6_000)),
    );
    check_odometer(
        odo(km(), json!({"oemUpdatedAt": "5000"})),
        Ok((1_000, 5_000)),
    );
    check_odometer(odo(km(), json!({"oemUpdatedAt": 0})), Ok((1_000, NOW.0)));
    check_odometer(odo(km(), json!({})), Ok((1_000, NOW.0)));
    check_odometer(odo(km(), json!("not an object")), Ok((1_000, NOW.0)));
}

/// Reads the odometer of `signal` received at `RECEIVED` under a tolerance of `skew_min` minutes
/// as (observed ms, the source used when the time was corrected).
fn check_clock(signal: Value, skew_min: u64, expected: (i64, Option<TimeSource>)) {
    let body = json!({"eventId": "e", "eventType": "VEHICLE_STATE",
        "data": {"vehicle": {"id": "v"}, "signals": [signal.clone()]}});
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    let got = e
        .odometer_reading_with(RECEIVED, Duration::from_secs(skew_min * 60))
        .expect("an odometer signal")
        .expect("a valid reading");
    assert_eq!(got.reading.distance.metres(), 42_506_300, "{signal}");
    assert_eq!(
        (got.reading.observed_at.0, got.correction.map(|c| c.source)),
        expected,
        "{signal}"
    );
    if let Some(c) = got.correction {
        assert_eq!(c.corrected, got.reading.observed_at, "{signal}");
        assert_ne!(c.original, c.corrected, "{signal}");
    }
    // The old form applies the default tolerance of five minutes.
    let default = e
        .odometer_reading(RECEIVED)
        .expect("odometer")
        .expect("valid");
    let with_default = e
        .odometer_reading_with(RECEIVED, DEFAULT_MAX_CLOCK_SKEW)
        .expect("odometer")
        .expect("valid");
    assert_eq!(default, with_default.reading, "{signal}");
    assert_eq!(
        e.odometer().map(|s| s.observed_at(RECEIVED)),
        Some(default.observed_at),
        "{signal}"
    );
}

#[test]
fn car_clocks_ahead() {
    use TimeSource::{Received, Retrieved};
    let r = RECEIVED.0;
    let min = 60_000;
    let year = 365 * 24 * 60 * min;
    let polestar = |oem: i64, retrieved: i64| {
        odo(
            json!({"value": 42506.3, "unit": "km"}),
            json!({"oemUpdatedAt": oem, "retrievedAt": retrieved}),
        )
    };
    // A clock behind or on time, a delivery late by a day: the car's time.
    check_clock(
        polestar(r - 24 * 60 * min, r - 2 * min),
        5,
        (r - 24 * 60 * min, None),
    );
    check_clock(polestar(r + 5 * min, r - 2 * min), 5, (r + 5 * min, None));
    // A car a year ahead: Smartcar's retrieval time.
    check_clock(
        polestar(r + year, r - 2 * min),
        5,
        (r - 2 * min, Some(Retrieved)),
    );
    check_clock(
        polestar(r + 5 * min + 1, r - 2 * min),
        5,
        (r - 2 * min, Some(Retrieved)),
    );
    // A wider tolerance lets a clock ten minutes ahead through; none corrects any second ahead.
    check_clock(
        polestar(r + 10 * min, r - 2 * min),
        15,
        (r + 10 * min, None),
    );
    check_clock(polestar(r + 1_000, r), 0, (r, Some(Retrieved)));
    // Retrieval also in the future (our clock is the one that is off, or both are): receipt.
    check_clock(polestar(r + year, r + year), 5, (r, Some(Received)));
    check_clock(
        odo(
            json!({"value": 42506.3, "unit": "km"}),
            json!({"oemUpdatedAt": r + year}),
        ),
        5,
        (r, Some(Received)),
    );
    check_clock(
        odo(
            json!({"value": 42506.3, "unit": "km"}),
            json!({"oemUpdatedAt": 0, "fetchedAt": r + year}),
        ),
        5,
        (r, Some(Received)),
    );
    // No time at all: receipt, and nothing was corrected.
    check_clock(
        odo(json!({"value": 42506.3, "unit": "km"}), json!({})),
        5,
        (r, None),
    );
}

/// The stored odometer signal and the odometer reading come from one conversion.
fn check_stored_odometer(value: f64, unit: &str, km: f64) {
    let body = json!({"eventId": "e", "eventType": "VEHICLE_STATE", "data": {"vehicle": {"id": "v"},
        "signals": [odo(json!({"value": value, "unit": unit}), json!({"oemUpdatedAt": 5_000}))]}});
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    let reading = e
        .odometer_reading(RECEIVED)
        .expect("odometer")
        .expect("valid");
    let stored = e.odometer().expect("odometer").values();
    assert_eq!(
        stored,
        [SignalValue {
            code: ODOMETER_CODE.to_owned(),
            value: Some(reading.distance.km()),
            unit: s("km"),
            part: None,
        }],
        "{value} {unit}"
    );
    assert_eq!(reading.distance.km(), km, "{value} {unit}");
}

#[test]
fn stored_odometer_matches_the_reading() {
    check_stored_odometer(10.0, "mile", 16.093);
    check_stored_odometer(10.0, "miles", 16.093);
    check_stored_odometer(10.0, "Mi", 16.093);
    check_stored_odometer(1000.0, "miles", 1609.344);
    check_stored_odometer(62_137.119_223_733, "mi", 100_000.0);
    check_stored_odometer(42506.3, "km", 42506.3);
    check_stored_odometer(12345.0, "kilometres", 12345.0);
    check_stored_odometer(12345.0, "kilometer", 12345.0);
    check_stored_odometer(12345.0, "KMS", 12345.0);
    check_stored_odometer(0.0005, "km", 0.001);
}

#[test]
fn oem_updated_at_zero_is_kept() {
    let body = json!({"eventType": "VEHICLE_STATE", "data": {"signals": [
        odo(json!({"value": 1, "unit": "km"}), json!({"oemUpdatedAt": 0, "retrievedAt": 6_000}))
    ]}});
    let e = parse_event(body.to_string().as_bytes()).expect("parses");
    let odometer = e.odometer().expect("odometer");
    assert_eq!(
        (odometer.oem_updated_at, odometer.retrieved_at),
        (Some(0), Some(6_000))
    );
}

#[test]
fn shortened_odometer_variants() {
    let reading = |data: Value| {
        let body = json!({"eventType": "VEHICLE_STATE", "vehicleId": "v", "data": data});
        parse_event(body.to_string().as_bytes())
            .expect("parses")
            .odometer_reading(NOW)
            .map(|r| r.map(|r| r.distance.metres()))
    };
    assert_eq!(
        reading(json!({"odometer": {"distance": 12345, "unit": "kilometers"}})),
        Some(Ok(12_345_000))
    );
    assert_eq!(
        reading(json!({"odometer": {"distance": 10, "unit": "miles"}})),
        Some(Ok(16_093))
    );
    assert_eq!(
        reading(json!({"odometer": {"value": 5, "unit": "km"}})),
        Some(Ok(5_000))
    );
    assert_eq!(
        reading(json!({"odometer": {"distance": 5}})),
        Some(Err(OdometerError::MissingUnit))
    );
    assert_eq!(
        reading(json!({"odometer": {"unit": "km"}})),
        Some(Err(OdometerError::MissingValue))
    );
    assert_eq!(reading(json!({"odometer": null})), None);
    assert_eq!(reading(json!({"odometer": [1]})), None);
    assert_eq!(reading(json!({})), None);
    // A real odometer signal wins over the shortened form.
    let both = json!({
        "odometer": {"distance": 1, "unit": "km"},
        "signals": [odo(json!({"value": 2, "unit": "km"}), json!({"oemUpdatedAt": 5}))],
    });
    assert_eq!(reading(both), Some(Ok(2_000)));
}

// --- v2 (legacy) scheduled and dynamic data ----------------------------------------------

const V2_CAR_A: &str = "e20d2ec5-f3a4-4c20-a1ea-af9f9a1c5e08";
const V2_CAR_B: &str = "4bb777b2-bde7-4305-8952-25956f8c0868";
/// The vehicle of `v4_vehicle_state.json`.
const POLESTAR: &str = "b3014ded-85db-4f12-8923-7a231354d8d0";
/// 2019-10-24T00:43:46.000Z and 2020-06-12T06:04:28.843Z.
const AGE_A: i64 = 1_571_877_826_000;
const AGE_B: i64 = 1_591_941_868_843;

/// A v2 delivery of `vehicles` (each `(vehicleId, data[])`) named `event_name`.
fn v2_body(event_name: &str, vehicles: Vec<(Option<&str>, Value)>) -> Vec<u8> {
    let vehicles: Vec<Value> = vehicles
        .into_iter()
        .enumerate()
        .map(|(i, (id, data))| {
            let mut v = json!({"requestId": format!("25d743b8-14cf-4744-b067-bd8d7daf3f1{i}"), "data": data});
            if let Some(id) = id {
                v["vehicleId"] = json!(id);
            }
            v
        })
        .collect();
    json!({
        "version": "2.0", "webhookId": "865ca68d-a9b6-4d74-856e-605db0209eca",
        "eventName": event_name, "mode": "live", "payload": {"vehicles": vehicles},
    })
    .to_string()
    .into_bytes()
}

/// A `/odometer` entry as a v2 batch response carries it; `headers` `None` leaves them out.
fn v2_odometer(distance: Value, headers: Option<Value>) -> Value {
    let mut entry = json!({"path": "/odometer", "code": 200, "body": {"distance": distance}});
    if let Some(h) = headers {
        entry["headers"] = h;
    }
    entry
}

fn v2_headers(unit_system: &str, data_age: &str) -> Option<Value> {
    Some(json!({"sc-data-age": data_age, "sc-unit-system": unit_system}))
}

fn delivery(unit_system: Option<&str>, data_age: Option<&str>) -> DeliveryHeaders {
    DeliveryHeaders {
        unit_system: unit_system.map(str::to_owned),
        data_age: data_age.map(str::to_owned),
    }
}

type Expected<'a> = (
    Option<&'a str>,
    Result<(i64, i64, Option<TimeSource>), OdometerError>,
);

/// The readings of `body` parsed with `headers`, as (vehicle, (metres, ms, correction source)).
fn check_v2(body: &[u8], headers: &DeliveryHeaders, expected: &[Expected<'_>]) {
    let e = parse_event_with(body, headers).expect("parses");
    let got: Vec<Expected<'_>> = e
        .odometer_readings(RECEIVED, DEFAULT_MAX_CLOCK_SKEW)
        .into_iter()
        .map(|r: VehicleReading| {
            let vehicle = [V2_CAR_A, V2_CAR_B, POLESTAR, "v", "vehicle-id-here"]
                .into_iter()
                .find(|id| r.vehicle_id.as_deref() == Some(*id));
            assert_eq!(vehicle.is_some(), r.vehicle_id.is_some(), "{r:?}");
            let odometer = r.odometer.map(|o| {
                (
                    o.reading.distance.metres(),
                    o.reading.observed_at.0,
                    o.correction.map(|c| c.source),
                )
            });
            (vehicle, odometer)
        })
        .collect();
    assert_eq!(got, expected, "{}", String::from_utf8_lossy(body));
}

/// Two cars, one metric and one imperial, with their headers in each entry.
fn v2_schedule_sample() -> Vec<u8> {
    v2_body(
        "schedule",
        vec![
            (
                Some(V2_CAR_A),
                json!([
                    v2_odometer(json!(37829.4), v2_headers("metric", "2019-10-24T00:43:46.000Z")),
                    {"path": "/battery", "code": 200, "body": {"range": 283.244544, "percentRemaining": 0.58},
                     "headers": {"sc-data-age": "2019-10-24T00:43:46.000Z", "sc-unit-system": "metric"}},
                ]),
            ),
            (
                Some(V2_CAR_B),
                json!([v2_odometer(
                    json!(17966.948),
                    v2_headers("imperial", "2020-06-12T06:04:28.843Z")
                )]),
            ),
        ],
    )
}

#[test]
fn v2_schedule_with_headers_in_each_entry() {
    let body = v2_schedule_sample();
    let expected = [
        (Some(V2_CAR_A), Ok((37_829_400, AGE_A, None))),
        (Some(V2_CAR_B), Ok((28_915_000, AGE_B, None))),
    ];
    check_v2(&body, &DeliveryHeaders::default(), &expected);
    // The entries' own headers win over the request's.
    check_v2(
        &body,
        &delivery(Some("imperial"), Some("2030-01-01T00:00:00Z")),
        &expected,
    );

    let e = parse_event(&body).expect("parses");
    assert_eq!(e.event_type, EventType::Other("schedule".to_owned()));
    assert_eq!((e.vehicle_id, e.signals.len()), (None, 0));
    assert_eq!(e.vehicles.len(), 2);
    assert_eq!(
        e.vehicles[0],
        V2Vehicle {
            vehicle_id: s(V2_CAR_A),
            request_id: s("25d743b8-14cf-4744-b067-bd8d7daf3f10"),
            odometer: Some(V2Odometer {
                status: Some(200),
                distance: Some(37829.4),
                unit_system: s("metric"),
                data_age: Some(AGE_A),
                error: None,
            }),
        }
    );
}

#[test]
fn v2_schedule_with_request_headers() {
    let body = v2_body(
        "schedule",
        vec![
            (Some(V2_CAR_A), json!([v2_odometer(json!(10), None)])),
            (Some(V2_CAR_B), json!([v2_odometer(json!("23512.7"), None)])),
        ],
    );
    let at = 1_571_929_318_392; // 2019-10-24T15:01:58.392Z
    check_v2(
        &body,
        &delivery(Some("imperial"), Some("2019-10-24T15:01:58.392Z")),
        &[
            (Some(V2_CAR_A), Ok((16_093, at, None))),
            (Some(V2_CAR_B), Ok((37_840_023, at, None))),
        ],
    );
    check_v2(
        &body,
        &delivery(Some("Metric"), Some("2019-10-24T17:01:58.392+02:00")),
        &[
            (Some(V2_CAR_A), Ok((10_000, at, None))),
            (Some(V2_CAR_B), Ok((23_512_700, at, None))),
        ],
    );
    // No data age, or one that is no time: dated at receipt. One in the future: corrected.
    let received = RECEIVED.0;
    for age in [None, Some("yesterday"), Some("1571929318392"), Some("")] {
        check_v2(
            &body,
            &delivery(Some("metric"), age),
            &[
                (Some(V2_CAR_A), Ok((10_000, received, None))),
                (Some(V2_CAR_B), Ok((23_512_700, received, None))),
            ],
        );
    }
    check_v2(
        &body,
        &delivery(Some("metric"), Some("2099-01-01T00:00:00Z")),
        &[
            (
                Some(V2_CAR_A),
                Ok((10_000, received, Some(TimeSource::Received))),
            ),
            (
                Some(V2_CAR_B),
                Ok((23_512_700, received, Some(TimeSource::Received))),
            ),
        ],
    );
    // No unit system anywhere: flagged, never assumed metric.
    let unitless = [
        (Some(V2_CAR_A), Err(OdometerError::MissingUnit)),
        (Some(V2_CAR_B), Err(OdometerError::MissingUnit)),
    ];
    check_v2(&body, &DeliveryHeaders::default(), &unitless);
    check_v2(
        &body,
        &delivery(None, Some("2019-10-24T15:01:58.392Z")),
        &unitless,
    );
    let unknown = |system: &str| Err(OdometerError::UnknownUnitSystem(system.to_owned()));
    check_v2(
        &body,
        &delivery(Some("nautical"), None),
        &[
            (Some(V2_CAR_A), unknown("nautical")),
            (Some(V2_CAR_B), unknown("nautical")),
        ],
    );
    assert_eq!(
        OdometerError::UnknownUnitSystem("nautical".to_owned()).to_string(),
        "unit system \"nautical\" is neither metric nor imperial"
    );
}

#[test]
fn v2_entries_that_fail_or_are_odd() {
    let metric = || v2_headers("metric", "2019-10-24T00:43:46.000Z");
    let body = v2_body(
        "dynamic",
        vec![
            // Asleep: the entry failed, with an error body.
            (
                Some(V2_CAR_A),
                json!([{"path": "/odometer", "code": 409, "headers": {"sc-unit-system": "metric"},
                        "body": {"type": "VEHICLE_STATE", "code": "ASLEEP", "description": "Vehicle is asleep."}}]),
            ),
            // A server error without a body.
            (Some(V2_CAR_B), json!([{"path": "/odometer", "code": 500}])),
            // No vehicle id; header names in another case; the path with a slash at the end.
            (
                None,
                json!([{"path": "/odometer/", "code": 200, "body": {"distance": 5},
                        "headers": {"SC-Unit-System": "metric", "SC-Data-Age": "2019-10-24T00:43:46.000Z"}}]),
            ),
            // No distance, a negative one, and an odometer entry after a non-object.
            (Some(V2_CAR_A), json!([v2_odometer(json!(null), metric())])),
            (Some(V2_CAR_B), json!([v2_odometer(json!(-1), metric())])),
            (
                Some(V2_CAR_A),
                json!([7, "x", v2_odometer(json!(1), metric())]),
            ),
            // No odometer data at all: no reading.
            (
                Some(V2_CAR_B),
                json!([{"path": "/battery", "code": 200, "body": {"range": 283.2, "percentRemaining": 0.58}},
                       {"path": "/location", "code": 200, "body": {"latitude": 37.4, "longitude": -122.1}}]),
            ),
            (Some(V2_CAR_B), json!("not a list")),
        ],
    );
    check_v2(
        &body,
        &DeliveryHeaders::default(),
        &[
            (
                Some(V2_CAR_A),
                Err(OdometerError::SignalFailed {
                    error_type: s("VEHICLE_STATE"),
                    code: s("ASLEEP"),
                }),
            ),
            (
                Some(V2_CAR_B),
                Err(OdometerError::SignalFailed {
                    error_type: None,
                    code: s("500"),
                }),
            ),
            (None, Ok((5_000, AGE_A, None))),
            (Some(V2_CAR_A), Err(OdometerError::MissingValue)),
            (
                Some(V2_CAR_B),
                Err(OdometerError::Distance(DistanceError::Negative)),
            ),
            (Some(V2_CAR_A), Ok((1_000, AGE_A, None))),
        ],
    );
    let e = parse_event(&body).expect("parses");
    assert_eq!(e.vehicles.len(), 8);
    assert_eq!(e.vehicles[6].odometer, None);
    // Not a list of vehicles at all: nothing, and no failure.
    for payload in [
        json!({"vehicles": {"vehicleId": V2_CAR_A}}),
        json!({"vehicles": [1, null]}),
        json!([]),
    ] {
        let body =
            json!({"version": "2.0", "eventName": "schedule", "payload": payload}).to_string();
        let e = parse_event(body.as_bytes()).expect("parses");
        assert!(e.vehicles.is_empty(), "{body}");
        assert!(
            e.odometer_readings(RECEIVED, DEFAULT_MAX_CLOCK_SKEW)
                .is_empty(),
            "{body}"
        );
    }
}

#[test]
fn odometer_readings_of_every_shape() {
    let imperial = delivery(Some("imperial"), Some("2019-10-24T00:43:46.000Z"));
    // v4: the one vehicle's reading; the request headers change nothing.
    check_v2(
        &payload("v4_vehicle_state.json"),
        &imperial,
        &[(Some(POLESTAR), Ok((42_506_300, 1_769_852_860_000, None)))],
    );
    let body = json!({"eventId": "e", "eventType": "VEHICLE_STATE", "data": {"vehicle": {"id": "v"},
        "signals": [odo(json!({"value": 10, "unit": "miles"}), json!({"oemUpdatedAt": RECEIVED.0 + 3_600_000, "retrievedAt": RECEIVED.0 - 1_000}))]}});
    check_v2(
        body.to_string().as_bytes(),
        &imperial,
        &[(
            Some("v"),
            Ok((16_093, RECEIVED.0 - 1_000, Some(TimeSource::Retrieved))),
        )],
    );
    // The seed's shortened form, dated at receipt.
    check_v2(
        &payload("seed_vehicle_state.json"),
        &DeliveryHeaders::default(),
        &[(Some("vehicle-id-here"), Ok((12_345_000, RECEIVED.0, None)))],
    );
    check_v2(
        &payload("minimal_event.json"),
        &DeliveryHeaders::default(),
        &[(None, Err(OdometerError::MissingUnit))],
    );
    // No odometer: nothing.
    for file in [
        "v4_vehicle_error.json",
        "v4_verify.json",
        "v2_verify.json",
        "utf8_event.json",
    ] {
        check_v2(&payload(file), &imperial, &[]);
        assert!(event(file).vehicles.is_empty(), "{file}");
    }
}

// --- refusals and leniency -----------------------------------------------------------------

fn holds_a_string(value: &Value) -> bool {
    match value {
        Value::String(_) => true,
        Value::Array(items) => items.iter().any(holds_a_string),
        Value::Object(map) => !map.is_empty(),
        _ => false,
    }
}

fn check_refused(body: &[u8], not_json: bool) {
    let shown = String::from_utf8_lossy(body);
    match parse_event(body) {
        Err(ParseError::NotJson(message)) => assert!(not_json && !message.is_empty(), "{shown}"),
        Err(ParseError::NotObject) => assert!(!not_json, "{shown}"),
        Err(ParseError::Refused(e)) => panic!("{shown} refused by the limits: {e}"),
        Ok(e) => panic!("{shown} parsed as {e:?}"),
    }
}

#[test]
fn refused_bodies() {
    check_refused(b"[]", false);
    check_refused(b"\"x\"", false);
    check_refused(b"1", false);
    check_refused(b"null", false);
    check_refused(b"true", false);
    check_refused(br#"[{"eventType":"VERIFY"}]"#, false);
    check_refused(b"", true);
    check_refused(b"{", true);
    check_refused(b"{\"eventType\":}", true);
    check_refused(b"{} {}", true);
    check_refused(b"eventType=VERIFY", true);
    check_refused(b"\xff\xfe{}", true);
    check_refused(b"{\"a\":\"\xff\"}", true);
    check_refused("[".repeat(10_000).as_bytes(), true);
    assert_eq!(
        ParseError::NotObject.to_string(),
        "body is not a JSON object"
    );
}

#[test]
fn wrong_types_are_skipped() {
    let body = json!({
        "eventId": ["x"], "eventType": {"v": 1}, "vehicleId": 7,
        "data": {"user": "u", "vehicle": {"id": 9}, "signals": {"code": ODOMETER_CODE}, "errors": "boom",
                 "triggers": {"type": "x"}},
        "triggers": "SIGNAL_UPDATED",
        "meta": {"version": 4, "deliveredAt": {"ms": 1}, "signalCount": "6", "mode": false},
    });
    let e = parse_event(body.to_string().as_bytes()).expect("lenient");
    assert!(e.id.from_body_hash);
    assert_eq!(e.event_type, EventType::Other("UNKNOWN".to_owned()));
    assert_eq!((e.vehicle_id, e.user_id), (None, None));
    assert!(e.signals.is_empty() && e.errors.is_empty() && e.triggers.is_empty());
    assert_eq!(
        (e.meta.version, e.meta.delivered_at, e.meta.mode),
        (None, None, None)
    );
    assert_eq!(e.meta.signal_count, Some(6));

    let e = parse_event(br#"{"eventType":"VEHICLE_STATE","data":[1,2],"meta":"x","payload":7}"#)
        .expect("lenient");
    assert!(e.signals.is_empty());
    let e = parse_event(br#"{"eventType":"VEHICLE_STATE","data":{"signals":[1,"x",null,{"code":"a"},{"name":"no code"}]}}"#)
        .expect("lenient");
    let codes: Vec<&str> = e.signals.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(codes, ["a"]);
    // Unknown fields anywhere are ignored.
    let e = parse_event(br#"{"eventId":"e","eventType":"VERIFY","future":{"x":1},"data":{"challenge":"c","extra":[1]}}"#)
        .expect("lenient");
    assert_eq!(e.challenge, s("c"));
}

// --- never panics --------------------------------------------------------------------------

/// Arbitrary JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9 _.:+-]{0,24}".prop_map(Value::String),
        Just(json!("2025-10-31T07:39:11.529Z")),
        Just(json!(ODOMETER_CODE)),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers to every value below the root of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        let path = format!("{at}/{key}");
        pointers(child, path.clone(), out);
        out.push(path);
    }
}

fn exercise(body: &[u8]) {
    if let Ok(e) = parse_event_with(
        body,
        &delivery(Some("imperial"), Some("2019-10-24T00:43:46Z")),
    ) {
        let _ = e.odometer_readings(NOW, DEFAULT_MAX_CLOCK_SKEW);
    }
    if let Ok(e) = parse_event(body) {
        let _ = e.odometer_reading(NOW);
        let _ = e.odometer_readings(NOW, DEFAULT_MAX_CLOCK_SKEW);
        for signal in &e.signals {
            let _ = (
                signal.kind(),
                signal.value(),
                signal.normalized_unit(),
                signal.location(),
            );
            let _ = signal.observed_at(NOW);
        }
    }
    let keys = keys(&["amt", "test-amt-123"]);
    let _ = keys.verify(Some(body), PIZZA);
    let _ = keys.verify(Some(body), body);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&body);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in prop::collection::vec(any::<u8>(), 0..80)) {
        let check = keys(&["amt"]).verify(Some(&header), PIZZA);
        // Missing exactly when there is nothing but whitespace, never Valid by accident.
        prop_assert_eq!(check == SignatureCheck::Missing, header.trim_ascii().is_empty());
        prop_assert_ne!(check, SignatureCheck::Valid);
    }

    #[test]
    fn byte_mutations_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut body = payload("v4_vehicle_state.json");
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if truncate {
            body.truncate(cut.index(body.len()));
        }
        exercise(&body);
    }

    #[test]
    fn replaced_values_still_parse(
        file in prop::sample::select(vec![
            "v4_vehicle_state.json", "v4_vehicle_error.json", "v4_verify.json", "v2_verify.json",
            "seed_vehicle_state.json", "seed_vehicle_error.json", "minimal_event.json",
            "v2 schedule",
        ]),
        target in any::<prop::sample::Index>(),
        replacement in any_json(),
    ) {
        let body = if file == "v2 schedule" { v2_schedule_sample() } else { payload(file) };
        let mut value: Value = serde_json::from_slice(&body).expect("payload is JSON");
        let mut paths = Vec::new();
        pointers(&value, String::new(), &mut paths);
        let path = &paths[target.index(paths.len())];
        let has_text = holds_a_string(&replacement);
        *value.pointer_mut(path).expect("path exists") = replacement;
        let body = serde_json::to_vec(&value).expect("serialisable");
        // Still an object at the root, so the wrong type inside must be tolerated; only a string
        // can break the limits (an id with a space or a control character, a name too long).
        match parse_event(&body) {
            Ok(_) => {}
            Err(ParseError::Refused(_)) => {
                prop_assert!(has_text, "{}", String::from_utf8_lossy(&body))
            }
            Err(e) => prop_assert!(false, "{e}: {}", String::from_utf8_lossy(&body)),
        }
        exercise(&body);
    }
}
