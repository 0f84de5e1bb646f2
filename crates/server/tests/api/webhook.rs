//! POST /api/smartcar/webhook, row by row of the answer table, on a real server.

use std::time::Duration;

use meterhook_smartcar::hash_challenge;
use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const T0: i64 = 1_769_852_860_000;
const MIN: i64 = 60_000;

#[test]
fn unsigned_verify_is_answered_with_the_challenge_hmac() {
    let app = spawn_app();
    for (file, challenge) in [
        ("v4_verify.json", None),
        ("seed_verify.json", None),
        ("v2_verify.json", None),
        ("", Some("nsQsLU7wY9WKt2IU")),
    ] {
        let body = if file.is_empty() {
            format!(
                r#"{{"eventType":"VERIFY","data":{{"challenge":"{}"}}}}"#,
                challenge.unwrap_or_default()
            )
            .into_bytes()
        } else {
            payload(file)
        };
        let event = meterhook_smartcar::parse_event(&body).expect("parses");
        let challenge = event.challenge.expect("has a challenge");
        let answer = app.post_raw(&body, None);
        assert_eq!(answer.status, 200, "{file}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.json()["challenge"],
            hash_challenge(TOKEN.as_bytes(), &challenge)
        );
    }
    // The vector from vectors.json, through the endpoint.
    let answer = app.post_raw(
        br#"{"eventType":"VERIFY","data":{"challenge":"nsQsLU7wY9WKt2IU"}}"#,
        None,
    );
    assert_eq!(
        answer.json()["challenge"],
        "eaee8adba92c5612b2a61c36bd7c7f36f1305aa93222d45f5d77d22f4571a1ab"
    );
    assert_eq!(app.event_count(), 0);
}

#[test]
fn verify_with_a_present_signature_must_be_valid() {
    let app = spawn_app();
    let body = payload("v4_verify.json");
    assert_eq!(app.post_raw(&body, Some(&"0".repeat(64))).status, 401);
    assert_eq!(app.post_raw(&body, Some("ab")).status, 401);
    // An empty header is no signature: answered like an unsigned handshake.
    assert_eq!(app.post_raw(&body, Some("")).status, 200);
    assert_eq!(app.post_raw(&body, Some("  ")).status, 200);
    assert_eq!(app.post_signed(&body).status, 200);
}

#[test]
fn verify_is_not_a_signing_oracle() {
    let app = spawn_app();
    let forged = odometer_event("forged", "sc-1", 1.0, "km", T0);
    let attack =
        serde_json::json!({"eventType": "VERIFY", "data": {"challenge": forged}}).to_string();
    let answer = app.post_raw(attack.as_bytes(), None);
    assert_eq!(answer.status, 400);
    assert!(!answer.body.contains(&meterhook_smartcar::sign(
        TOKEN.as_bytes(),
        forged.as_bytes()
    )));
    for challenge in ["", "has space", "é", &"a".repeat(129)] {
        let body = serde_json::json!({"eventType": "VERIFY", "data": {"challenge": challenge}})
            .to_string();
        assert_eq!(
            app.post_raw(body.as_bytes(), None).status,
            400,
            "{challenge:?}"
        );
    }
    assert_eq!(
        app.post_raw(br#"{"eventType":"VERIFY","data":{}}"#, None)
            .status,
        400
    );
    assert_eq!(app.event_count(), 0);
}

#[test]
fn a_verify_answer_never_signs_a_body_that_is_stored() {
    let app = spawn_app();
    for challenge in ["abc", "123", "null", "true", "-1", "nsQsLU7wY9WKt2IU"] {
        // Both handshake shapes answer with the same HMAC.
        for verify in [
            serde_json::json!({"eventType": "VERIFY", "data": {"challenge": challenge}}),
            serde_json::json!({"eventName": "verify", "payload": {"challenge": challenge}}),
        ] {
            let answer = app.post_raw(verify.to_string().as_bytes(), None);
            assert_eq!(answer.status, 200, "{verify}: {}", answer.body);
            let oracle = answer.json()["challenge"]
                .as_str()
                .expect("an answer")
                .to_owned();
            for (body, signature) in [
                (challenge.to_owned(), oracle.clone()),
                (challenge.to_owned(), oracle.to_uppercase()),
                (format!(" {challenge}\n"), oracle.clone()),
            ] {
                let refused = app.post_raw(body.as_bytes(), Some(&signature));
                assert_eq!(refused.status, 401, "{body:?}: {}", refused.body);
            }
        }
    }
    assert_eq!(app.event_count(), 0, "a key-less write was stored");
}

#[test]
fn unsigned_or_badly_signed_events_are_refused_and_not_stored() {
    let app = spawn_app();
    let body = payload("v4_vehicle_state.json");
    let good = meterhook_smartcar::sign(TOKEN.as_bytes(), &body);
    let other_body = meterhook_smartcar::sign(TOKEN.as_bytes(), b"{}");
    let wrong_key = meterhook_smartcar::sign(b"another-token", &body);
    for sig in [
        None,
        Some(""),
        Some("zz"),
        Some(&good[..63]),
        Some(&good[..32]),
        Some(other_body.as_str()),
        Some(wrong_key.as_str()),
    ] {
        let answer = app.post_raw(&body, sig);
        assert_eq!(answer.status, 401, "{sig:?}");
        assert_eq!(answer.json()["error"], "missing or invalid SC-Signature");
    }
    // Unsigned garbage is refused as unsigned, not parsed into a 400.
    assert_eq!(app.post_raw(b"not json", None).status, 401);
    assert_eq!(app.event_count(), 0);
    assert_eq!(app.post_raw(&body, Some(&good)).status, 200);
    assert_eq!(app.event_count(), 1);
}

#[test]
fn oversized_bodies_get_413() {
    let app = spawn_app();
    let mut body = odometer_event("big", "sc-1", 1.0, "km", T0).into_bytes();
    body.pop();
    body.extend(format!(r#","padding":"{}"}}"#, "x".repeat(64 * 1024)).bytes());
    let answer = app.post_signed(&body);
    assert_eq!(answer.status, 413);
    assert_eq!(app.event_count(), 0);
    // Just under the limit is fine.
    let mut body = odometer_event("fits", "sc-1", 1.0, "km", T0).into_bytes();
    body.pop();
    let pad = 64 * 1024 - body.len() - 16;
    body.extend(format!(r#","padding":"{}"}}"#, "x".repeat(pad)).bytes());
    assert!(body.len() <= 64 * 1024);
    assert_eq!(app.post_signed(&body).status, 200);
}

#[test]
fn signed_bodies_that_are_not_json_objects_are_kept_as_malformed() {
    let app = spawn_app();
    for body in [
        &b"not json at all"[..],
        b"[1,2,3]",
        b"\"text\"",
        b"{\"truncated\":",
        b"\xff\xfe\x00garbage",
    ] {
        let answer = app.post_signed(body);
        assert_eq!(answer.status, 400, "{body:?}");
        let id = meterhook_smartcar::EventId::from_body(body).value;
        let stored = app.store.find_event(&id).expect("query").expect("kept");
        assert_eq!(
            (stored.outcome.as_str(), stored.processed),
            ("malformed", true)
        );
        assert!(stored.error.is_some());
        match std::str::from_utf8(body) {
            Ok(text) => assert_eq!(stored.payload, text),
            Err(_) => assert_eq!(
                stored.payload,
                format!("hex:{}", base16ct::lower::encode_string(body))
            ),
        }
    }
    // The same malformed body again: still 400, still one row.
    assert_eq!(app.post_signed(b"[1,2,3]").status, 400);
    assert_eq!(app.event_count(), 5);
}

#[test]
fn every_official_payload_is_accepted() {
    let app = spawn_app();
    app.store
        .register_vehicle("b3014ded-85db-4f12-8923-7a231354d8d0", "polestar")
        .expect("register");
    let mut files: Vec<_> = std::fs::read_dir(payloads_dir())
        .expect("payloads")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 9);
    for file in &files {
        let body = payload(file);
        let answer = app.post_signed(&body);
        assert_eq!(answer.status, 200, "{file}: {}", answer.body);
        let event = meterhook_smartcar::parse_event(&body).expect("parses");
        if file.contains("verify") {
            assert!(answer.json()["challenge"].is_string(), "{file}");
        } else {
            assert_eq!(answer.json()["status"], "accepted", "{file}");
            let stored = app
                .store
                .find_event(&event.id.value)
                .expect("query")
                .expect("stored");
            assert_eq!(
                stored.payload.as_bytes(),
                &body[..],
                "{file}: raw body kept byte for byte"
            );
            assert!(stored.processed, "{file}");
        }
    }
    // The Polestar reading became an entry: 42506.3 km, read at oemUpdatedAt.
    let entries = app.store.list_entries("polestar", false).expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].value_m, 42_506_300);
    assert_eq!(
        meterhook_store::to_millis(entries[0].entry_date).0,
        1_769_852_860_000
    );
}

#[test]
fn the_seed_odometer_flow() {
    for app in spawn_apps() {
        let backend = app.db.backend();
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let send = |id: &str, value: f64, unit: &str, at: i64| {
            let answer = app.post_signed(odometer_event(id, "sc-1", value, unit, at).as_bytes());
            assert_eq!(answer.status, 200, "{backend} {id}: {}", answer.body);
            answer.json()
        };
        // Miles are converted to km.
        assert_eq!(send("e1", 10_000.0, "miles", T0)["outcome"], "created");
        // The same reading within the hour: skipped.
        assert_eq!(
            send("e2", 10_000.0, "mi", T0 + 30 * MIN)["outcome"],
            "duplicate"
        );
        // Lower than the latest: rejected.
        assert_eq!(
            send("e3", 16_000.0, "km", T0 + 60 * MIN)["outcome"],
            "out_of_sequence"
        );
        // Higher, later: created.
        assert_eq!(
            send("e4", 16_200.0, "kilometers", T0 + 120 * MIN)["outcome"],
            "created"
        );
        // A redelivery of e4: 2xx, not processed again.
        let again = send("e4", 16_200.0, "kilometers", T0 + 120 * MIN);
        assert_eq!(
            (again["status"].as_str(), again["outcome"].as_str()),
            (Some("duplicate"), Some("already_received"))
        );
        assert_eq!(app.store.sync_logs_for_event("e4").expect("logs").len(), 1);

        let entries = app.store.list_entries("car-1", false).expect("entries");
        let values: Vec<i64> = entries.iter().map(|e| e.value_m).collect();
        assert_eq!(values, [16_093_440, 16_200_000], "{backend}");
        assert_eq!(entries[0].source_type, "smartcar_webhook");
        assert!(entries[0]
            .notes
            .as_deref()
            .is_some_and(|n| n.contains("e1")));
        assert_eq!(app.outcome("e3"), "out_of_sequence");
    }
}

#[test]
fn unknown_inactive_error_and_other_events() {
    for app in spawn_apps() {
        let answer = app.post_signed(odometer_event("u1", "sc-unknown", 5.0, "km", T0).as_bytes());
        assert_eq!(
            (answer.status, answer.json()["outcome"].as_str()),
            (200, Some("unknown_vehicle"))
        );
        app.store
            .register_vehicle("sc-2", "car-2")
            .expect("register");
        app.store
            .set_vehicle_active("sc-2", false)
            .expect("deactivate");
        let answer = app.post_signed(odometer_event("i1", "sc-2", 5.0, "km", T0).as_bytes());
        assert_eq!(answer.json()["outcome"], "inactive_vehicle");
        app.store
            .set_vehicle_active("sc-2", true)
            .expect("activate");

        // VEHICLE_ERROR is recorded against the vehicle.
        let error = serde_json::json!({
            "eventId": "err-1", "eventType": "VEHICLE_ERROR",
            "data": {"vehicle": {"id": "sc-2"}, "errors": [{"type": "VEHICLE_STATE", "code": "ASLEEP", "state": "ERROR"}]},
            "meta": {"version": "4.0"}
        })
        .to_string();
        assert_eq!(
            app.post_signed(error.as_bytes()).json()["outcome"],
            "vehicle_error_recorded"
        );
        let vehicle = app
            .store
            .find_vehicle("sc-2")
            .expect("query")
            .expect("exists");
        assert_eq!(vehicle.last_error.as_deref(), Some("VEHICLE_STATE:ASLEEP"));
        let logs = app.store.sync_logs_for_event("err-1").expect("logs");
        assert_eq!(logs[0].sync_type, "vehicle_error");

        // An unknown event type is kept, answered 2xx, and left alone.
        let other = br#"{"eventId":"o1","eventType":"VEHICLE_SOMETHING_NEW","data":{"x":1}}"#;
        assert_eq!(app.post_signed(other).json()["outcome"], "ignored");
        assert_eq!(
            app.store
                .find_event("o1")
                .expect("query")
                .expect("kept")
                .event_type,
            "VEHICLE_SOMETHING_NEW"
        );

        // Missing data never crashes anything.
        let no_vehicle = br#"{"eventId":"n1","eventType":"VEHICLE_STATE","data":{"signals":[]}}"#;
        assert_eq!(
            app.post_signed(no_vehicle).json()["outcome"],
            "invalid_reading"
        );
        let no_odometer = br#"{"eventId":"n2","eventType":"VEHICLE_STATE","vehicleId":"sc-2","data":{"signals":[]}}"#;
        assert_eq!(
            app.post_signed(no_odometer).json()["outcome"],
            "no_odometer"
        );
        let bad_unit = odometer_event("n3", "sc-2", 5.0, "furlongs", T0);
        assert_eq!(
            app.post_signed(bad_unit.as_bytes()).json()["outcome"],
            "invalid_reading"
        );
        let negative = odometer_event("n4", "sc-2", -5.0, "km", T0);
        assert_eq!(
            app.post_signed(negative.as_bytes()).json()["outcome"],
            "invalid_reading"
        );
        let far_future = odometer_event("n5", "sc-2", 5.0, "km", i64::MAX / 2);
        assert_eq!(app.post_signed(far_future.as_bytes()).status, 200);
        assert_eq!(app.get("/healthz").status, 200);
    }
}

#[test]
fn events_without_an_id_are_deduplicated_on_their_body() {
    let app = spawn_app();
    app.store
        .register_vehicle("sc-seed", "car-seed")
        .expect("register");
    let body = br#"{"eventType":"VEHICLE_STATE","vehicleId":"sc-seed","data":{"odometer":{"distance":12345,"unit":"kilometers"}}}"#;
    let first = app.post_signed(body);
    assert_eq!(first.json()["outcome"], "created");
    let second = app.post_signed(body);
    assert_eq!(second.json()["status"], "duplicate");
    assert_eq!(
        app.store
            .list_entries("car-seed", false)
            .expect("entries")
            .len(),
        1
    );
    assert!(first.json()["eventId"]
        .as_str()
        .is_some_and(|id| id.starts_with("sha256:")));
}

#[test]
fn health_and_readiness() {
    let app = spawn_app();
    assert_eq!(app.get("/healthz").status, 200);
    assert_eq!(app.get("/readyz").status, 200);
    assert_eq!(app.get("/nope").status, 404);
}

#[test]
fn a_locked_sqlite_database_answers_503_with_retry_after() {
    use diesel::connection::SimpleConnection;
    let db = TestDatabase::sqlite();
    let pool = PoolOptions {
        busy_timeout: Duration::from_millis(200),
        ..PoolOptions::default()
    };
    let app = spawn_app_on(db, pool);
    let url = meterhook_store::DatabaseUrl::parse(app.db.url()).expect("url");
    let mut locker = meterhook_store::connect(&url, Duration::from_secs(1)).expect("connect");
    locker.batch_execute("BEGIN EXCLUSIVE").expect("lock");
    let answer = app.post_signed(odometer_event("locked", "sc-1", 1.0, "km", T0).as_bytes());
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("5"));
    locker.batch_execute("COMMIT").expect("unlock");
    // Smartcar's retry then succeeds, and the event is stored once.
    let answer = app.post_signed(odometer_event("locked", "sc-1", 1.0, "km", T0).as_bytes());
    assert_eq!(answer.status, 200);
    assert_eq!(app.event_count(), 1);
}

#[test]
fn an_unreachable_postgres_without_spool_answers_503_and_not_ready() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let pool = PoolOptions {
        connection_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    };
    let app = spawn_app_with(db, pool, |s| s.spool_path.clear());
    let outage = Outage::start(&app);
    let answer = app.post_signed(odometer_event("cut", "sc-1", 1.0, "km", T0).as_bytes());
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert_eq!(app.get("/readyz").status, 503);
    assert_eq!(app.get("/healthz").status, 200);
    drop(outage);
    let answer = app.post_signed(odometer_event("cut", "sc-1", 1.0, "km", T0).as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn signed_events_breaking_the_string_limits_are_kept_as_malformed() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let long_id = "e".repeat(3_000);
        let mut bodies = vec![
            // PostgreSQL refuses U+0000 in TEXT; SQLite took it.
            serde_json::json!({"eventId": "nul\u{0}id", "eventType": "VEHICLE_STATE",
                "vehicleId": "sc-1"})
            .to_string(),
            // Over PostgreSQL's index entry size.
            odometer_event(&long_id, "sc-1", 1.0, "km", T0),
            // A line break or an escape sequence in an id would forge log lines or CLI rows.
            odometer_event("newline", "sc-1\n[INFO] forged line", 1.0, "km", T0),
            odometer_event("escape", "sc-\u{1b}[2J", 1.0, "km", T0),
            serde_json::json!({"eventId": "err-nul", "eventType": "VEHICLE_ERROR",
                "vehicleId": "sc-1", "data": {"errors": [{"code": "X",
                "description": "a\u{0}b"}]}})
            .to_string(),
        ];
        bodies.push(serde_json::json!({"eventId": "k", "data": {"na\u{0}me": 1}}).to_string());
        for body in &bodies {
            let answer = app.post_signed(body.as_bytes());
            assert_eq!(answer.status, 400, "{body:?}: {}", answer.body);
            assert!(!answer.body.contains("forged"), "{}", answer.body);
            let id = meterhook_smartcar::EventId::from_body(body.as_bytes()).value;
            let stored = app.store.find_event(&id).expect("query").expect("kept");
            assert_eq!(
                (stored.outcome.as_str(), stored.processed),
                ("malformed", true),
                "{body:?}"
            );
            // Kept as received: the escapes are JSON text, not the characters.
            assert_eq!(&stored.payload, body);
            // Smartcar's retry is the same malformed event, not a second row.
            assert_eq!(app.post_signed(body.as_bytes()).status, 400);
        }
        // A raw NUL byte outside any string: not JSON, kept as hex.
        let raw = b"{\"eventId\":\"raw\"}\0";
        assert_eq!(app.post_signed(raw).status, 400);
        let stored = app
            .store
            .find_event(&meterhook_smartcar::EventId::from_body(raw).value)
            .expect("query")
            .expect("kept");
        assert_eq!(
            stored.payload,
            format!("hex:{}", base16ct::lower::encode_string(raw))
        );
        assert_eq!(app.event_count(), bodies.len() + 1);
        // Nothing else was written for them, and ordinary events still go through.
        assert!(app
            .store
            .list_entries("car-1", true)
            .expect("entries")
            .is_empty());
        let answer = app.post_signed(odometer_event("fine", "sc-1", 1.0, "km", T0).as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}
