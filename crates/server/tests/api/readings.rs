//! Readings as Smartcar really sends them: test deliveries, car clocks ahead, failed odometer
//! signals, and signals of many values. Realistic v4 bodies, on every backend.

use meterhook_domain::Outcome;
use serde_json::{json, Value};

use crate::helpers::*;

/// Now, in epoch ms: the server dates readings against its own clock.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const HOUR: i64 = 3_600_000;

/// A v4 VEHICLE_STATE of `vehicle` with an odometer and a battery signal, in `mode`.
fn state(event_id: &str, vehicle: &str, km: f64, at_ms: i64, mode: &str) -> String {
    json!({
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": {
            "vehicle": {"id": vehicle, "make": "POLESTAR", "model": "2", "year": 2024},
            "user": {"id": "u-1"},
            "signals": [
                {"code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer",
                 "body": {"value": km, "unit": "km"},
                 "meta": {"oemUpdatedAt": at_ms, "retrievedAt": at_ms + 400},
                 "status": {"value": "SUCCESS"}},
                {"code": "tractionbattery-stateofcharge", "name": "StateOfCharge", "group": "TractionBattery",
                 "body": {"value": 0.75},
                 "meta": {"oemUpdatedAt": at_ms, "retrievedAt": at_ms + 400},
                 "status": {"value": "SUCCESS"}}
            ]
        },
        "triggers": [{"type": "SIGNAL_UPDATED", "signal": {"name": "TraveledDistance", "code": "odometer-traveleddistance", "group": "Odometer"}}],
        "meta": {"version": "4.0", "deliveryId": format!("d-{event_id}"), "deliveredAt": at_ms + 900,
                 "webhookId": "wh-1", "webhookName": "fleet", "mode": mode, "signalCount": 2}
    })
    .to_string()
}

fn entries(app: &TestApp, vehicle_id: &str) -> Vec<meterhook_store::MeterEntry> {
    app.store.list_entries(vehicle_id, true).expect("entries")
}

#[test]
fn test_deliveries_keep_their_signals_and_make_no_entry() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let t = now_ms() - HOUR;
        // The dashboard's test payload comes first, with a made-up odometer.
        let test = app.post_signed(state("t-1", "sc-1", 99_999.0, t, "TEST").as_bytes());
        assert_eq!(test.status, 200);
        assert_eq!(test.json()["outcome"], "test_event");
        assert_eq!(app.outcome("t-1"), "test_event");
        assert!(
            entries(&app, "car-1").is_empty(),
            "no entry from a test event"
        );
        assert!(app
            .store
            .sync_logs_for_event("t-1")
            .expect("logs")
            .is_empty());

        // Its signals are kept, marked as test, and never the vehicle's latest.
        let history = app
            .store
            .signal_history("car-1", "odometer-traveleddistance", 10)
            .expect("history");
        assert_eq!(history.len(), 1);
        assert!(history[0].test);
        assert!(app
            .store
            .latest_signals("car-1")
            .expect("latest")
            .is_empty());

        // The real readings that follow are not vetoed by the made-up one.
        let live = app.post_signed(state("l-1", "sc-1", 1_200.0, t + 60_000, "LIVE").as_bytes());
        assert_eq!(live.json()["outcome"], "created");
        let active: Vec<_> = entries(&app, "car-1");
        assert_eq!(active.len(), 1);
        assert!(!active[0].void);
        let latest = app.store.latest_signals("car-1").expect("latest");
        assert!(latest.iter().all(|s| !s.test));
        assert!(latest
            .iter()
            .any(|s| s.code == "odometer-traveleddistance" && s.value == Some(1_200.0)));

        // A test VEHICLE_ERROR opens no condition on the vehicle.
        let error = json!({"eventId": "t-err", "eventType": "VEHICLE_ERROR",
            "data": {"vehicle": {"id": "sc-1"}, "errors": [{"type": "CONNECTED_SERVICES_ACCOUNT",
                "code": "SUBSCRIPTION", "state": "ERROR", "description": "test"}]},
            "meta": {"version": "4.0", "mode": "TEST"}});
        assert_eq!(app.post_signed(error.to_string().as_bytes()).status, 200);
        assert_eq!(app.outcome("t-err"), "test_event");
        assert!(app.store.open_errors("sc-1").expect("errors").is_empty());
    }
}

#[test]
fn v2_test_modes_are_test_events_too() {
    let app = spawn_app();
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    for (id, mode) in [("v2-t", "test"), ("v2-s", "simulated")] {
        let body = json!({"eventId": id, "eventType": "VEHICLE_STATE", "mode": mode,
            "data": {"vehicle": {"id": "sc-1"}, "odometer": {"distance": 5.0, "unit": "km"}}});
        assert_eq!(app.post_signed(body.to_string().as_bytes()).status, 200);
        assert_eq!(app.outcome(id), "test_event", "{mode}");
    }
    assert!(entries(&app, "car-1").is_empty());
}

#[test]
fn test_deliveries_can_be_processed_as_live() {
    let db = meterhook_store::testing::TestDatabase::sqlite();
    let app = spawn_app_with(db, meterhook_store::PoolOptions::default(), |s| {
        s.process_test_events = true
    });
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let answer = app.post_signed(state("t-1", "sc-1", 500.0, now_ms() - HOUR, "TEST").as_bytes());
    assert_eq!(answer.json()["outcome"], "created");
    assert_eq!(entries(&app, "car-1").len(), 1);
}

#[test]
fn a_car_clock_in_the_future_is_not_trusted() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let now = now_ms();
        let two_years = 2 * 365 * 24 * HOUR;
        // oemUpdatedAt two years ahead, retrievedAt sane: the retrieval time dates the reading.
        let mut ahead: Value =
            serde_json::from_str(&state("c-1", "sc-1", 1_000.0, now, "LIVE")).expect("json");
        ahead["data"]["signals"][0]["meta"] =
            json!({"oemUpdatedAt": now + two_years, "retrievedAt": now - HOUR});
        assert_eq!(
            app.post_signed(ahead.to_string().as_bytes()).json()["outcome"],
            "created"
        );
        let entry = &entries(&app, "car-1")[0];
        let dated = entry.entry_date.and_utc().timestamp_millis();
        assert_eq!(dated, now - HOUR, "dated by retrievedAt");
        let log = &app.store.sync_logs_for_event("c-1").expect("logs")[0];
        let data: Value = serde_json::from_str(&log.data).expect("sync data");
        assert_eq!(data["clockCorrection"]["source"], "retrieved");
        let reported = chrono::DateTime::from_timestamp_millis(now + two_years).expect("time");
        assert_eq!(data["clockCorrection"]["reportedAt"], reported.to_rfc3339());

        // Both times ahead: the time of receipt. The later real reading is then in sequence.
        let mut both: Value =
            serde_json::from_str(&state("c-2", "sc-1", 1_010.0, now, "LIVE")).expect("json");
        both["data"]["signals"][0]["meta"] =
            json!({"oemUpdatedAt": now + two_years, "retrievedAt": now + two_years});
        assert_eq!(
            app.post_signed(both.to_string().as_bytes()).json()["outcome"],
            "created"
        );
        let log = &app.store.sync_logs_for_event("c-2").expect("logs")[0];
        let data: Value = serde_json::from_str(&log.data).expect("sync data");
        assert_eq!(data["clockCorrection"]["source"], "received");
        let next =
            app.post_signed(state("c-3", "sc-1", 1_010.5, now_ms() + 1_000, "LIVE").as_bytes());
        assert_eq!(
            next.json()["outcome"],
            "created",
            "a real reading after is not out of sequence"
        );
        // A clock a little ahead (within the tolerance) is trusted, and nothing is recorded.
        let log = &app.store.sync_logs_for_event("c-3").expect("logs")[0];
        let data: Value = serde_json::from_str(&log.data).expect("sync data");
        assert!(data.get("clockCorrection").is_none());
    }
}

#[test]
fn the_clock_tolerance_is_a_setting() {
    let db = meterhook_store::testing::TestDatabase::sqlite();
    let app = spawn_app_with(db, meterhook_store::PoolOptions::default(), |s| {
        s.max_clock_skew = std::time::Duration::from_secs(3 * 3600)
    });
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let two_hours_ahead = now_ms() + 2 * HOUR;
    let answer = app.post_signed(state("c-1", "sc-1", 10.0, two_hours_ahead, "LIVE").as_bytes());
    assert_eq!(answer.json()["outcome"], "created");
    let entry = &entries(&app, "car-1")[0];
    assert_eq!(
        entry.entry_date.and_utc().timestamp_millis(),
        two_hours_ahead,
        "trusted"
    );
}

#[test]
fn a_failed_odometer_signal_is_unavailable_not_an_error() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let mut body: Value =
            serde_json::from_str(&state("f-1", "sc-1", 0.0, now_ms(), "LIVE")).expect("json");
        body["data"]["signals"][0] = json!({"code": "odometer-traveleddistance", "name": "TraveledDistance",
            "group": "Odometer", "status": {"value": "ERROR", "error": {"type": "PERMISSION", "code": null}},
            "meta": {"retrievedAt": now_ms()}});
        let answer = app.post_signed(body.to_string().as_bytes());
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["outcome"], "odometer_unavailable");
        let event = app.store.find_event("f-1").expect("find").expect("stored");
        assert!(event
            .error
            .as_deref()
            .is_some_and(|e| e.contains("PERMISSION")));
        let logs = app.store.sync_logs_for_event("f-1").expect("logs");
        assert_eq!(logs[0].status, "skipped");
        // The other signals of the delivery are kept.
        let latest = app.store.latest_signals("car-1").expect("latest");
        assert!(latest
            .iter()
            .any(|s| s.code == "tractionbattery-stateofcharge" && s.value == Some(75.0)));

        // A real failure still counts: an unknown unit.
        let bad = odometer_event("f-2", "sc-1", 10.0, "parsecs", now_ms());
        assert_eq!(
            app.post_signed(bad.as_bytes()).json()["outcome"],
            "invalid_reading"
        );
        let since = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(1);
        let stats = app.store.stats(since).expect("stats");
        assert_eq!(stats.events_total, 2);
        assert!(
            (stats.error_rate - 0.5).abs() < 1e-9,
            "{}",
            stats.error_rate
        );
        assert!(!Outcome::OdometerUnavailable.is_error());
    }
}

#[test]
fn signals_of_many_values_are_stored_within_a_multiple_of_the_body() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let at = now_ms();
        let tires: Vec<Value> = (0..1_500)
            .map(|i| json!({"row": i / 2, "column": i % 2, "tirePressure": 250 + i % 10}))
            .collect();
        let body = json!({"eventId": "tires", "eventType": "VEHICLE_STATE",
            "data": {"vehicle": {"id": "sc-1"}, "signals": [
                {"code": "wheel-tires", "name": "Tires", "group": "Wheel",
                 "body": {"values": tires, "unit": "kPa"},
                 "meta": {"oemUpdatedAt": at}, "status": {"value": "SUCCESS"}}]},
            "meta": {"version": "4.0", "mode": "LIVE"}})
        .to_string();
        assert!(body.len() > 40_000);
        assert_eq!(app.post_signed(body.as_bytes()).status, 200);
        let rows = app.store.latest_signals("car-1").expect("latest");
        let tire_rows: Vec<_> = rows
            .iter()
            .filter(|s| s.code.starts_with("wheel-tires/"))
            .collect();
        assert_eq!(tire_rows.len(), meterhook_smartcar::MAX_VALUES_PER_SIGNAL);
        let stored: usize = tire_rows.iter().map(|s| s.raw.len()).sum();
        assert!(
            stored < body.len(),
            "{stored} bytes of signals for a {} byte body",
            body.len()
        );
        // Each row keeps its own wheel as sent.
        let first: Value = serde_json::from_str(&tire_rows[0].raw).expect("raw json");
        assert_eq!(first["body"]["values"].as_array().map(Vec::len), Some(1));
        assert_eq!(first["body"]["unit"], "kPa");
    }
}

#[test]
fn a_lower_case_signature_header_is_the_same_header() {
    let app = spawn_app();
    let body = odometer_event("lc-1", "sc-9", 1.0, "km", now_ms());
    let signature = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
    let answer = agent()
        .post(app.webhook_url())
        .content_type("application/json")
        .header("sc-signature", &signature)
        .send(body.as_bytes())
        .expect("request sent");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(app.outcome("lc-1"), "unknown_vehicle");
}

fn vehicle_error(
    event_id: &str,
    vehicle: &str,
    error_type: &str,
    code: &str,
    state: &str,
) -> String {
    json!({"eventId": event_id, "eventType": "VEHICLE_ERROR",
        "data": {"user": {"id": "u-1"}, "vehicle": {"id": vehicle, "make": "VOLKSWAGEN"},
            "errors": [{"type": error_type, "code": code, "state": state,
                "description": "The owner must act.", "suggestedUserMessage": "Reconnect your car.",
                "docURL": "https://smartcar.com/docs/errors", "resolution": {"type": "CONTACT_SUPPORT"},
                "signals": [{"code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer"}]}]},
        "meta": {"version": "4.0", "mode": "LIVE"}})
    .to_string()
}

fn vehicles_json(app: &TestApp) -> Value {
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(
        dir.path(),
        &[("DATABASE_URL", app.db.url())],
        &["vehicles", "list", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("json")
}

fn gauge(app: &TestApp) -> String {
    app.get("/metrics")
        .body
        .lines()
        .find(|l| l.starts_with("meterhook_vehicles_needing_reconnection "))
        .expect("gauge")
        .to_owned()
}

/// Waits until the gauge, refreshed in the background, says `expected`.
fn gauge_becomes(app: &TestApp, expected: &str) {
    wait_until(10, expected, || gauge(app) == expected);
}

#[test]
fn a_vehicle_that_needs_its_owner_is_shown_until_it_answers_again() {
    let apps = meterhook_store::testing::TestDatabase::all()
        .into_iter()
        .map(|db| {
            spawn_app_with(db, meterhook_store::PoolOptions::default(), |s| {
                s.metrics_interval = std::time::Duration::from_millis(100)
            })
        });
    for app in apps {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        app.store
            .register_vehicle("sc-2", "car-2")
            .expect("register");
        // A car that is asleep clears by itself; an expired account needs the owner.
        let asleep = vehicle_error("e-1", "sc-2", "VEHICLE_STATE", "ASLEEP", "ERROR");
        assert_eq!(app.post_signed(asleep.as_bytes()).status, 200);
        let account = vehicle_error(
            "e-2",
            "sc-1",
            "CONNECTED_SERVICES_ACCOUNT",
            "SUBSCRIPTION",
            "ERROR",
        );
        assert_eq!(app.post_signed(account.as_bytes()).status, 200);
        let vehicles = vehicles_json(&app);
        let needs = |id: &str| {
            vehicles
                .as_array()
                .expect("array")
                .iter()
                .find(|v| v["smartcar_vehicle_id"] == id)
                .expect("vehicle")["needs_reconnection"]
                .clone()
        };
        assert_eq!(needs("sc-1"), true);
        assert_eq!(needs("sc-2"), false);
        gauge_becomes(&app, "meterhook_vehicles_needing_reconnection 1");
        let dir = tempfile::tempdir().expect("tmp");
        let shown = meterhook(
            dir.path(),
            &[("DATABASE_URL", app.db.url())],
            &["vehicles", "show", "sc-1"],
        );
        assert!(
            stdout(&shown).contains("Needs reconnection"),
            "{}",
            stdout(&shown)
        );

        // A test delivery is not the car answering.
        let test = state("t-1", "sc-1", 100.0, now_ms(), "TEST");
        assert_eq!(app.post_signed(test.as_bytes()).status, 200);
        assert_eq!(app.store.vehicles_needing_reconnection().expect("count"), 1);

        // A successful live state: the car answers again.
        let live = state("s-1", "sc-1", 100.0, now_ms(), "LIVE");
        assert_eq!(
            app.post_signed(live.as_bytes()).json()["outcome"],
            "created"
        );
        let vehicles = vehicles_json(&app);
        let sc1 = vehicles
            .as_array()
            .expect("array")
            .iter()
            .find(|v| v["smartcar_vehicle_id"] == "sc-1")
            .expect("vehicle")
            .clone();
        assert_eq!(sc1["needs_reconnection"], false);
        assert_eq!(sc1["last_error"], Value::Null);
        assert!(app.store.open_errors("sc-1").expect("errors").is_empty());
        gauge_becomes(&app, "meterhook_vehicles_needing_reconnection 0");
        // The asleep car's condition is untouched by another car's state.
        assert_eq!(app.store.open_errors("sc-2").expect("errors").len(), 1);
    }
}

#[test]
fn owner_fixable_conditions() {
    for (error_type, code, resolution, expected) in [
        ("CONNECTED_SERVICES_ACCOUNT", "SUBSCRIPTION", None, true),
        ("PERMISSION", "INSUFFICIENT_PERMISSIONS", None, true),
        ("permission", "x", None, true),
        ("AUTHENTICATION", "", None, true),
        ("VEHICLE_STATE", "UNREACHABLE", Some("RETRY_LATER"), false),
        ("VEHICLE_STATE", "ASLEEP", None, false),
        ("COMPATIBILITY", "MAKE_NOT_COMPATIBLE", None, false),
        ("VEHICLE_STATE", "X", Some("REAUTHENTICATE"), true),
    ] {
        let mut body: Value =
            serde_json::from_str(&vehicle_error("e", "v", error_type, code, "ERROR"))
                .expect("json");
        body["data"]["errors"][0]["resolution"] = json!({ "type": resolution });
        let event = meterhook_smartcar::parse_event(body.to_string().as_bytes()).expect("parses");
        assert_eq!(
            event.errors[0].needs_owner(),
            expected,
            "{error_type} {code} {resolution:?}"
        );
    }
}

#[test]
fn one_bad_first_reading_does_not_block_the_vehicle() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let t = now_ms() - 10 * HOUR;
        // The car's first reading is a glitch: 0 km.
        let glitch = state("g-0", "sc-1", 0.0, t, "LIVE");
        assert_eq!(
            app.post_signed(glitch.as_bytes()).json()["outcome"],
            "created"
        );
        // Its true odometer, three times: each refused because of the glitch...
        let outcomes: Vec<Value> = (1..=3)
            .map(|i| {
                let body = state(
                    &format!("r-{i}"),
                    "sc-1",
                    48_200.0 + 15.0 * i as f64,
                    t + i * HOUR,
                    "LIVE",
                );
                app.post_signed(body.as_bytes()).json()["outcome"].clone()
            })
            .collect();
        assert_eq!(outcomes, ["implausible_jump"; 3]);
        // ...until they outvote it: the glitch is void, they are the vehicle's entries.
        let all = entries(&app, "car-1");
        let glitch = all
            .iter()
            .find(|e| e.value_m == 0)
            .expect("glitch entry kept");
        assert!(glitch.void);
        assert!(glitch
            .void_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("superseded")));
        let active: Vec<i64> = all.iter().filter(|e| !e.void).map(|e| e.value_m).collect();
        assert_eq!(active, [48_215_000, 48_230_000, 48_245_000]);
        let logs = app.store.sync_logs_for_event("r-3").expect("logs");
        assert!(logs.iter().any(|l| l.outcome == "superseded"));
        // The next true reading is accepted at once.
        let next = state("r-4", "sc-1", 48_260.0, t + 4 * HOUR, "LIVE");
        assert_eq!(
            app.post_signed(next.as_bytes()).json()["outcome"],
            "created"
        );
    }
}

#[test]
fn legacy_v2_data_becomes_readings_one_per_vehicle() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("v2-a", "car-a")
            .expect("register");
        app.store
            .register_vehicle("v2-b", "car-b")
            .expect("register");
        let odometer = |distance: f64, headers: Option<Value>| {
            let mut entry =
                json!({"path": "/odometer", "code": 200, "body": {"distance": distance}});
            if let Some(h) = headers {
                entry["headers"] = h;
            }
            entry
        };
        let body = json!({
            "version": "2.0", "webhookId": "865ca68d-a9b6-4d74-856e-605db0209eca",
            "eventName": "schedule", "mode": "live",
            "payload": {"vehicles": [
                {"vehicleId": "v2-a", "requestId": "r-1", "data": [
                    odometer(1000.0, Some(json!({"sc-unit-system": "imperial", "sc-data-age": "2026-11-30T10:00:00.000Z"}))),
                    {"path": "/battery", "code": 200, "body": {"percentRemaining": 0.5}}]},
                {"vehicleId": "v2-b", "requestId": "r-2", "data": [odometer(2000.0, None)]}
            ]}
        })
        .to_string();
        // The second vehicle's unit system and data age come from the request's headers.
        let signature = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
        let post = || {
            let response = agent()
                .post(app.webhook_url())
                .content_type("application/json")
                .header("SC-Signature", &signature)
                .header("SC-Unit-System", "metric")
                .header("SC-Data-Age", "2026-11-30T11:00:00.000Z")
                .send(body.as_bytes())
                .expect("request sent");
            let status = response.status().as_u16();
            let text = response.into_body().read_to_string().expect("body");
            (status, serde_json::from_str::<Value>(&text).expect("json"))
        };
        let (status, answer) = post();
        assert_eq!(status, 200, "{answer}");
        let vehicles = answer["vehicles"]
            .as_array()
            .expect("one answer per vehicle");
        assert_eq!(vehicles.len(), 2);
        assert!(
            vehicles.iter().all(|v| v["outcome"] == "created"),
            "{answer}"
        );

        let a = entries(&app, "car-a");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].value_m, 1_609_344, "1000 miles in metres");
        assert_eq!(a[0].entry_date.to_string(), "2026-11-30 10:00:00");
        let b = entries(&app, "car-b");
        assert_eq!(b[0].value_m, 2_000_000);
        assert_eq!(b[0].entry_date.to_string(), "2026-11-30 11:00:00");

        // Delivered again: both already received, nothing new.
        let (status, again) = post();
        assert_eq!(status, 200);
        assert!(again["vehicles"]
            .as_array()
            .expect("vehicles")
            .iter()
            .all(|v| v["outcome"] == "already_received"));
        assert_eq!(app.event_count(), 2);
    }
}

#[test]
fn nested_tires_are_kept_like_the_doors_of_the_same_shape() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let at = now_ms() - HOUR;
        // The shape of the dashboard's test delivery: `values` nested beside the counts.
        let grid = |values: Value| json!({"rowCount": 2, "columnCount": 2, "values": values});
        let delivery = |id: &str, tires: Value, at: i64| {
            json!({"eventId": id, "eventType": "VEHICLE_STATE",
                "data": {"vehicle": {"id": "sc-1"}, "signals": [
                    {"code": "wheel-tires", "name": "Tires", "group": "Wheel",
                     "body": {"values": tires, "unit": "kPa"},
                     "meta": {"oemUpdatedAt": at}, "status": {"value": "SUCCESS"}},
                    {"code": "closure-doors", "name": "Doors", "group": "Closure",
                     "body": {"values": grid(json!([{"row": 0, "column": 0, "isOpen": false}]))},
                     "meta": {"oemUpdatedAt": at}, "status": {"value": "SUCCESS"}}]},
                "meta": {"version": "4.0", "mode": "LIVE"}})
            .to_string()
        };
        let wheels = grid(json!([
            {"row": 0, "column": 0, "tirePressure": 230},
            {"row": 0, "column": 1, "tirePressure": 231},
            {"row": 1, "column": 0, "tirePressure": 232},
            {"row": 1, "column": 1, "tirePressure": 233}
        ]));
        let answer = app.post_signed(delivery("nested", wheels, at).as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
        let latest = app.store.latest_signals("car-1").expect("latest");
        let mut codes: Vec<(&str, Option<f64>)> =
            latest.iter().map(|s| (s.code.as_str(), s.value)).collect();
        codes.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            codes,
            [
                ("closure-doors", None),
                ("wheel-tires/0/0", Some(230.0)),
                ("wheel-tires/0/1", Some(231.0)),
                ("wheel-tires/1/0", Some(232.0)),
                ("wheel-tires/1/1", Some(233.0)),
            ]
        );
        // No wheel can be read: the signal is kept whole under its own code, as the doors are.
        let unreadable = grid(json!([{"front": "ok"}]));
        let answer = app.post_signed(delivery("unreadable", unreadable, at + HOUR).as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
        let history = app
            .store
            .signal_history("car-1", "wheel-tires", 10)
            .expect("history");
        assert_eq!(history.len(), 1, "{history:?}");
        let raw: Value = serde_json::from_str(&history[0].raw).expect("raw json");
        assert_eq!(raw["body"]["values"]["values"][0]["front"], "ok");
    }
}
