//! Beyond the odometer: signals, void entries, vehicle health, metrics, exports, the read API.

use std::time::Duration;

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const POLESTAR: &str = "b3014ded-85db-4f12-8923-7a231354d8d0";
const TESLA: &str = "123e4567-e89b-12d3-a456-426614174000";
const T0: i64 = 1_769_852_860_000;
const H: i64 = 3_600_000;

fn cli_json(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(dir.path(), &[("DATABASE_URL", app.db.url())], args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tmp");
    meterhook(dir.path(), &[("DATABASE_URL", app.db.url())], args)
}

fn soc_event(id: &str, percent: f64, at: i64) -> String {
    serde_json::json!({
        "eventId": id, "eventType": "VEHICLE_STATE",
        "data": {"vehicle": {"id": POLESTAR}, "signals": [
            {"code": "tractionbattery-stateofcharge", "body": {"value": percent, "unit": "percent"},
             "meta": {"oemUpdatedAt": at, "retrievedAt": at + 1}, "status": {"value": "SUCCESS"}},
            {"code": "wheel-tires", "body": {"values": [{"row": 0, "column": 0, "tirePressure": 258}], "unit": "bar"},
             "meta": {"oemUpdatedAt": at}, "status": {"value": "SUCCESS"}}
        ]}
    })
    .to_string()
}

#[test]
fn every_signal_is_kept_with_latest_and_history() {
    for app in spawn_apps() {
        app.store
            .register_vehicle(POLESTAR, "polestar")
            .expect("register");
        assert_eq!(
            app.post_signed(&payload("v4_vehicle_state.json")).status,
            200
        );
        // The same event's signals again under another id: kept once.
        let mut again: serde_json::Value =
            serde_json::from_slice(&payload("v4_vehicle_state.json")).expect("json");
        again["eventId"] = "redelivered-with-new-id".into();
        assert_eq!(app.post_signed(again.to_string().as_bytes()).status, 200);

        let latest = cli_json(
            &app,
            &["signals", "latest", "--vehicle-id", "polestar", "--json"],
        );
        let by_code = |code: &str| {
            latest
                .as_array()
                .expect("array")
                .iter()
                .find(|s| s["code"] == code)
                .cloned()
        };
        assert_eq!(
            by_code("odometer-traveleddistance").expect("odometer")["value"],
            42506.3
        );
        let soc = by_code("tractionbattery-stateofcharge").expect("soc");
        assert_eq!(
            (soc["value"].as_f64(), soc["unit"].as_str()),
            (Some(89.0), Some("%"))
        );
        assert_eq!(soc["observed_at"], "2026-02-01T09:25:33.000Z");
        assert_eq!(
            by_code("tractionbattery-range").expect("range")["unit"],
            "km"
        );
        assert_eq!(
            by_code("charge-ischarging").expect("charging")["value"],
            1.0
        );
        let location = by_code("location-preciselocation").expect("location");
        assert_eq!(location["raw"]["body"]["latitude"], 61.111111);
        // The failed fuel signal has no value to keep.
        assert!(by_code("internalcombustionengine-fuellevel").is_none());
        assert_eq!(latest.as_array().map(Vec::len), Some(5));

        for (id, percent, at) in [("s1", 70.0, T0 + 100 * H), ("s2", 65.5, T0 + 101 * H)] {
            assert_eq!(
                app.post_signed(soc_event(id, percent, at).as_bytes())
                    .status,
                200
            );
        }
        let history = cli_json(
            &app,
            &[
                "signals",
                "history",
                "--vehicle-id",
                "polestar",
                "--code",
                "tractionbattery-stateofcharge",
                "--json",
            ],
        );
        let values: Vec<f64> = history
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|s| s["value"].as_f64())
            .collect();
        assert_eq!(values, [65.5, 70.0, 89.0]);
        let tire = cli_json(
            &app,
            &[
                "signals",
                "history",
                "--vehicle-id",
                "polestar",
                "--code",
                "wheel-tires/0/0",
                "--json",
            ],
        );
        assert_eq!(
            (tire[0]["value"].as_f64(), tire[0]["unit"].as_str()),
            (Some(258.0), Some("kPa"))
        );
        // Events of an unregistered vehicle keep their signals too.
        let human = cli(&app, &["signals", "latest", "--vehicle-id", "polestar"]);
        assert!(stdout(&human).contains("tractionbattery-stateofcharge"));
    }
}

#[test]
fn refused_readings_become_void_entries_that_can_be_unvoided() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let send = |id: &str, km: f64, at: i64| {
            app.post_signed(odometer_event(id, "sc-1", km, "km", at).as_bytes())
                .json()
        };
        assert_eq!(send("a", 1000.0, T0)["outcome"], "created");
        // A typo on the car's side: far too high, then normal readings go on.
        assert_eq!(send("b", 9000.0, T0 + H)["outcome"], "implausible_jump");
        assert_eq!(send("c", 1050.0, T0 + 2 * H)["outcome"], "created");
        assert_eq!(send("d", 1010.0, T0 + 3 * H)["outcome"], "out_of_sequence");

        let all = cli_json(
            &app,
            &[
                "entries",
                "list",
                "--vehicle-id",
                "car-1",
                "--all",
                "--json",
            ],
        );
        let void: Vec<_> = all
            .as_array()
            .expect("array")
            .iter()
            .filter(|e| e["void"] == true)
            .collect();
        assert_eq!(void.len(), 2);
        assert!(
            void[0]["void_reason"]
                .as_str()
                .is_some_and(|r| r.contains("implausible jump")),
            "{void:?}"
        );
        let active = cli_json(
            &app,
            &["entries", "list", "--vehicle-id", "car-1", "--json"],
        );
        assert_eq!(active.as_array().map(Vec::len), Some(2));

        // Unvoid refuses with the rules' reason…
        let d_id = void[1]["id"].to_string();
        let out = cli(&app, &["entries", "unvoid", &d_id]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("stays void") && stderr(&out).contains("out_of_sequence"),
            "{}",
            stderr(&out)
        );
        // …until the entry it contradicts is voided by hand.
        let c_id = active[1]["id"].to_string();
        let out = cli(
            &app,
            &[
                "entries",
                "void",
                &c_id,
                "--reason",
                "odometer replaced at service",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = cli(&app, &["entries", "unvoid", &d_id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("active again"));
        let values: Vec<i64> = app
            .store
            .list_entries("car-1", false)
            .expect("entries")
            .iter()
            .map(|e| e.value_m)
            .collect();
        assert_eq!(values, [1_000_000, 1_010_000]);
        // Void entries are out of the rules: a later 1020 km is judged against 1010, not the void 1050.
        assert_eq!(send("e", 1020.0, T0 + 4 * H)["outcome"], "created");
        assert_eq!(
            cli(&app, &["entries", "void", "424242", "--reason", "x"])
                .status
                .code(),
            Some(1)
        );
        // Reprocessing judges a reading anew and keeps one entry for it, not one per judgement.
        let out = cli(&app, &["events", "reprocess", "b"]);
        assert!(
            stdout(&out).contains("b: out_of_sequence"),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let for_b = app
            .store
            .list_entries("car-1", true)
            .expect("entries")
            .into_iter()
            .filter(|e| e.event_id.as_deref() == Some("b"))
            .count();
        assert_eq!(for_b, 1);
    }
}

#[test]
fn vehicle_health_from_vehicle_errors() {
    for app in spawn_apps() {
        app.store
            .register_vehicle(TESLA, "tesla")
            .expect("register");
        assert_eq!(
            app.post_signed(&payload("v4_vehicle_error.json")).json()["outcome"],
            "vehicle_error_recorded"
        );
        let shown = cli_json(&app, &["vehicles", "show", TESLA, "--json"]);
        let open = &shown["open_errors"];
        assert_eq!(open.as_array().map(Vec::len), Some(1));
        assert_eq!(open[0]["type"], "VEHICLE_STATE");
        assert_eq!(open[0]["code"], "UNREACHABLE");
        assert_eq!(open[0]["state"], "ERROR");
        assert_eq!(
            open[0]["suggested_user_message"],
            "Your car is currently unreachable."
        );
        assert_eq!(open[0]["resolution"], "RETRY_LATER");
        assert_eq!(shown["last_error"], "VEHICLE_STATE:UNREACHABLE");
        let human = stdout(&cli(&app, &["vehicles", "show", TESLA]));
        assert!(
            human.contains("VEHICLE_STATE:UNREACHABLE")
                && human.contains("Your car is currently unreachable."),
            "{human}"
        );

        let resolved = serde_json::json!({
            "eventId": "resolved-1", "eventType": "VEHICLE_ERROR", "vehicleId": TESLA,
            "data": {"errors": [{"type": "VEHICLE_STATE", "code": "UNREACHABLE", "state": "RESOLVED"}]}
        })
        .to_string();
        assert_eq!(app.post_signed(resolved.as_bytes()).status, 200);
        let shown = cli_json(&app, &["vehicles", "show", TESLA, "--json"]);
        assert_eq!(shown["open_errors"], serde_json::json!([]));
        assert_eq!(shown["last_error"], serde_json::Value::Null);
        assert!(stdout(&cli(&app, &["vehicles", "show", TESLA])).contains("no open errors"));
        assert_eq!(
            cli(&app, &["vehicles", "show", "nope"]).status.code(),
            Some(1)
        );
    }
}

#[test]
fn metrics_in_prometheus_text() {
    for db in TestDatabase::all() {
        // The database gauges are refreshed in the background; often, for the test.
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.metrics_interval = Duration::from_millis(100);
        });
        app.store
            .register_vehicle("sc-secret-vehicle", "car-1")
            .expect("register");
        app.post_signed(odometer_event("m1", "sc-secret-vehicle", 10.0, "km", T0).as_bytes());
        app.post_signed(odometer_event("m1", "sc-secret-vehicle", 10.0, "km", T0).as_bytes());
        app.post_raw(b"{}", Some("00"));
        app.post_signed(b"[]");
        app.post_raw(&payload("v4_verify.json"), None);
        // A scrape reads memory only: the age appears once a refresh has seen the events.
        wait_until(10, "the gauges to be refreshed", || {
            !app.get("/metrics")
                .body
                .contains("meterhook_newest_event_age_seconds -1")
        });
        let answer = app.get("/metrics");
        assert_eq!(answer.status, 200);
        assert!(answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")));
        let text = answer.body;
        for line in [
            r#"meterhook_events_received_total{event_type="VEHICLE_STATE",outcome="created"} 1"#,
            r#"meterhook_events_received_total{event_type="VEHICLE_STATE",outcome="already_received"} 1"#,
            r#"meterhook_events_received_total{event_type="VERIFY",outcome="challenge_answered"} 1"#,
            r#"meterhook_events_received_total{event_type="other",outcome="malformed"} 1"#,
            "meterhook_signature_failures_total 1",
            "meterhook_ingest_duration_seconds_count 2",
            "meterhook_backlog_unprocessed 0",
            "meterhook_backlog_dead 0",
            "meterhook_backlog_spooled 0",
            "meterhook_queue_depth 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("meterhook_newest_event_age_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("age gauge");
        assert!((0.0..60.0).contains(&age), "{age}");
        assert!(
            !text.contains("sc-secret-vehicle") && !text.contains("car-1") && !text.contains(TOKEN)
        );
    }
}

#[test]
fn entries_export_as_csv_and_json() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        app.post_signed(odometer_event("x1", "sc-1", 100.5, "km", T0).as_bytes());
        app.post_signed(odometer_event("x2", "sc-1", 50.0, "km", T0 + H).as_bytes());
        let out = cli(
            &app,
            &[
                "entries",
                "export",
                "--vehicle-id",
                "car-1",
                "--format",
                "csv",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
        let headers = reader.headers().expect("headers").clone();
        assert_eq!(&headers[2], "value_km");
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (&rows[0][2], &rows[0][3], &rows[0][5], &rows[0][6]),
            ("100.500", "2026-01-31T09:47:40.000Z", "x1", "false")
        );
        assert_eq!(&rows[1][6], "true");
        assert!(rows[1][7].contains("lower than the earlier reading"));
        let json = cli_json(
            &app,
            &[
                "entries",
                "export",
                "--vehicle-id",
                "car-1",
                "--format",
                "json",
            ],
        );
        assert_eq!(json.as_array().map(Vec::len), Some(2));
        assert_eq!(json[0]["value_km"], 100.5);
    }
}

#[test]
fn the_read_api_is_off_without_a_token() {
    let app = spawn_app();
    assert_eq!(app.get("/api/vehicles/car-1/meter-entries").status, 404);
}

#[test]
fn the_read_api_behind_a_bearer_token() {
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.api_token = Some(meterhook::Secret::new("api-token-0123456789"));
        });
        app.store
            .register_vehicle(POLESTAR, "polestar")
            .expect("register");
        for (i, km) in [100.0, 110.0, 120.0].into_iter().enumerate() {
            let id = format!("p{i}");
            app.post_signed(odometer_event(&id, POLESTAR, km, "km", T0 + i as i64 * H).as_bytes());
        }
        app.post_signed(soc_event("soc", 77.0, T0).as_bytes());
        let get = |path: &str, token: Option<&str>| {
            let mut req = agent().get(format!("{}{path}", app.address));
            if let Some(t) = token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let mut r = req.call().expect("sent");
            let status = r.status().as_u16();
            let www = r
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            (
                status,
                www,
                r.body_mut().read_to_string().unwrap_or_default(),
            )
        };
        let entries = "/api/vehicles/polestar/meter-entries";
        for token in [
            None,
            Some("wrong"),
            Some("api-token-012345678"),
            Some("api-token-0123456789x"),
        ] {
            let (status, www, body) = get(entries, token);
            assert_eq!((status, www.as_deref()), (401, Some("Bearer")), "{token:?}");
            assert!(!body.contains("api-token"));
        }
        let (status, _, body) = get(&format!("{entries}?limit=2"), Some("api-token-0123456789"));
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).expect("json");
        let values: Vec<f64> = page["entries"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|e| e["value_km"].as_f64())
            .collect();
        assert_eq!(values, [120.0, 110.0]);
        let cursor = page["next_after"].as_str().expect("a next page").to_owned();
        // A newer reading arriving between the pages does not shift the next one.
        app.post_signed(odometer_event("p-new", POLESTAR, 130.0, "km", T0 + 5 * H).as_bytes());
        let (_, _, body) = get(
            &format!("{entries}?limit=2&after={cursor}"),
            Some("api-token-0123456789"),
        );
        let page: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(page["entries"].as_array().map(Vec::len), Some(1), "{page}");
        assert_eq!(page["entries"][0]["value_km"], 100.0);
        assert_eq!(page["next_after"], serde_json::Value::Null);
        // Every numeric and cursor value is checked: 400 with a JSON message, never a panic.
        for query in [
            "limit=0",
            "limit=-1",
            "limit=1001",
            "limit=9223372036854775807",
            "limit=99999999999999999999",
            "after=abc",
            "after=1_x",
            "after=9223372036854775807_1",
            // Within chrono's range, outside PostgreSQL's (it got 500 there): years -93,000 and
            // 2 BC, and year 10,000.
            "after=-3000000000000000000_1",
            "after=-62200000000000000_1",
            "after=253402300800000000_1",
            "offset=2",
            "include_void=yes",
        ] {
            let (status, _, body) =
                get(&format!("{entries}?{query}"), Some("api-token-0123456789"));
            assert_eq!(status, 400, "{query}: {body}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["error"].is_string()),
                "{query}: {body}"
            );
        }
        assert_eq!(
            get(&format!("{entries}?limit=abc"), None).0,
            401,
            "the token is checked first"
        );
        assert_eq!(
            get(
                &format!("{entries}?limit=abc"),
                Some("api-token-0123456789")
            )
            .0,
            400
        );

        let (status, _, body) = get(
            "/api/vehicles/polestar/signals/latest",
            Some("api-token-0123456789"),
        );
        assert_eq!(status, 200);
        let signals: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert!(signals["signals"]
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["code"] == "tractionbattery-stateofcharge" && s["value"] == 77.0));

        let (status, _, body) = get(
            "/api/vehicles/polestar/health",
            Some("api-token-0123456789"),
        );
        assert_eq!(status, 200);
        let health: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(health["healthy"], true);
        assert_eq!(health["latest_entry"]["value_km"], 130.0);
        assert_eq!(
            get("/api/vehicles/nobody/health", Some("api-token-0123456789")).0,
            404
        );
    }
}
