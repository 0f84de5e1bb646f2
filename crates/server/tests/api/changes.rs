//! The app follows every change: `GET /api/changes` (paging, filters, long polling, 410 past
//! pruning) and the entries' `updated_since`.

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;
use serde_json::Value;

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";
const T0: i64 = 1_767_000_000_000;

fn api_app(db: TestDatabase) -> TestApp {
    spawn_app_with(db, PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
    })
}

fn send(app: &TestApp, method: &str, path: &str, body: &str) -> Answer {
    let url = format!("{}{path}", app.address);
    let auth = format!("Bearer {API_TOKEN}");
    let agent = agent();
    let request = match method {
        "PUT" => agent.put(&url),
        _ => agent.post(&url),
    };
    answer(
        request
            .header("Authorization", &auth)
            .content_type("application/json")
            .send(body)
            .expect("sent"),
    )
}

fn get(app: &TestApp, path: &str) -> Answer {
    let auth = format!("Bearer {API_TOKEN}");
    answer(
        agent()
            .get(format!("{}{path}", app.address))
            .header("Authorization", &auth)
            .call()
            .expect("sent"),
    )
}

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["type"].as_str().expect("type").to_owned())
        .collect()
}

#[test]
fn the_app_follows_registrations_and_entries_through_the_cursor() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        let empty = get(&app, "/api/changes");
        assert_eq!(empty.status, 200, "{}", empty.body);
        assert_eq!(
            empty.json(),
            serde_json::json!({"data": [], "next_cursor": "0", "has_more": false})
        );

        let put = send(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-1",
            r#"{"vehicle_id":"car-1"}"#,
        );
        assert_eq!(put.status, 200, "{}", put.body);
        send(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-2",
            r#"{"vehicle_id":"car-2"}"#,
        );
        send(&app, "POST", "/api/smartcar-vehicles/sc-2/deactivate", "");
        send(&app, "POST", "/api/smartcar-vehicles/sc-2/activate", "");

        let first = get(&app, "/api/changes?limit=3").json();
        assert_eq!(
            types(&first),
            [
                "vehicle.registered",
                "vehicle.registered",
                "vehicle.deactivated"
            ]
        );
        assert_eq!(first["has_more"], true);
        let change = &first["data"][0];
        assert_eq!(change["id"], "chg_1");
        assert_eq!(change["position"], 1);
        assert_eq!(change["vehicle_id"], "car-1");
        assert_eq!(change["smartcar_vehicle_id"], "sc-1");
        assert_eq!(change["data"]["is_active"], true);
        let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
        assert_eq!(cursor, "3");
        let rest = get(&app, &format!("/api/changes?after={cursor}")).json();
        assert_eq!(types(&rest), ["vehicle.activated"]);
        assert_eq!(rest["has_more"], false);
        assert_eq!(rest["next_cursor"], "4");

        let car2 = get(
            &app,
            "/api/changes?vehicle_id=car-2&types=vehicle.activated",
        )
        .json();
        assert_eq!(types(&car2), ["vehicle.activated"]);
        assert_eq!(car2["data"][0]["position"], 4);

        for (query, message) in [
            ("after=abc", "after is not a cursor"),
            ("after=-1", "after is not a cursor"),
            ("after=99", "beyond the last recorded change"),
            ("types=meter_entry.made", "unknown change type"),
            ("wait=2m", "wait must be at most 1m"),
            ("limit=0", "limit must be 1 to 1000"),
            ("since=3", "unknown field"),
        ] {
            let bad = get(&app, &format!("/api/changes?{query}"));
            assert_eq!(bad.status, 400, "{query}: {}", bad.body);
            let error = bad.json()["error"].as_str().expect("error").to_owned();
            assert!(error.contains(message), "{query}: {error}");
        }

        // Pruned past a reader's cursor: 410, never a silent skip; a fresh start still works.
        let pruned = app
            .store
            .prune_changes(
                meterhook_store::now() + chrono::TimeDelta::hours(1),
                100,
                |_| {},
            )
            .expect("prune");
        assert_eq!(pruned, 4);
        let gone = get(&app, "/api/changes?after=2");
        assert_eq!(gone.status, 410, "{}", gone.body);
        assert!(gone.json()["error"]
            .as_str()
            .expect("error")
            .contains("pruned"));
        let fresh = get(&app, "/api/changes").json();
        assert_eq!(fresh["next_cursor"], "4");
        assert_eq!(get(&app, "/api/changes?after=4").status, 200);
    }
}

#[test]
fn a_waiting_reader_is_answered_when_a_change_arrives_or_empty_at_the_timeout() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        // Nothing comes: an empty answer once the wait is over.
        let idle = get(&app, "/api/changes?after=0&wait=300ms");
        assert_eq!(idle.status, 200, "{}", idle.body);
        assert_eq!(idle.json()["data"], serde_json::json!([]));

        // A registration while it waits: answered with it, well before the 25 s (the agent gives
        // up at 30 s, so an answer that waited it out would be empty and fail here).
        let address = app.address.clone();
        let waiting = std::thread::spawn(move || {
            answer(
                agent()
                    .get(format!("{address}/api/changes?after=0&wait=25s"))
                    .header("Authorization", &format!("Bearer {API_TOKEN}"))
                    .call()
                    .expect("sent"),
            )
        });
        send(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-1",
            r#"{"vehicle_id":"car-1"}"#,
        );
        let answered = waiting.join().expect("waited");
        assert_eq!(answered.status, 200, "{}", answered.body);
        assert_eq!(types(&answered.json()), ["vehicle.registered"]);
    }
}

#[test]
fn entries_updated_since_leaves_out_what_did_not_change_since() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        for (i, km) in [10.0, 20.0].into_iter().enumerate() {
            let at = T0 + i64::try_from(i).expect("small") * 3_600_000;
            let event = odometer_event(&format!("o{i}"), "sc-1", km, "km", at);
            assert_eq!(app.post_signed(event.as_bytes()).status, 200);
        }
        let all = get(
            &app,
            "/api/vehicles/car-1/meter-entries?updated_since=2020-01-01T00:00:00Z",
        );
        assert_eq!(all.status, 200, "{}", all.body);
        assert_eq!(all.json()["entries"].as_array().map(Vec::len), Some(2));
        let later =
            meterhook_store::views::rfc3339(meterhook_store::now() + chrono::TimeDelta::minutes(1));
        let none = get(
            &app,
            &format!("/api/vehicles/car-1/meter-entries?updated_since={later}"),
        );
        assert_eq!(none.json()["entries"], serde_json::json!([]));
        let bad = get(
            &app,
            "/api/vehicles/car-1/meter-entries?updated_since=yesterday",
        );
        assert_eq!(bad.status, 400, "{}", bad.body);
    }
}

#[test]
fn the_changes_command_prints_a_line_each_and_follows_new_ones() {
    let db = TestDatabase::sqlite();
    let store = db.store();
    let dir = tempfile::tempdir().expect("dir");
    let env = [("DATABASE_URL", db.url())];
    store.register_vehicle("sc-1", "car-1").expect("register");
    store.set_vehicle_active("sc-1", false).expect("deactivate");

    let out = meterhook(dir.path(), &env, &["changes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("vehicle.registered"), "{text}");
    assert!(lines[0].contains("car-1 (sc-1)"), "{text}");
    assert!(lines[1].contains("vehicle.deactivated") && lines[1].contains("inactive"));
    assert!(stderr(&out).contains("next cursor: 2"), "{}", stderr(&out));

    let out = meterhook(dir.path(), &env, &["changes", "--after", "1", "--json"]);
    let text = stdout(&out);
    let change: Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(change["id"], "chg_2");
    assert_eq!(change["type"], "vehicle.deactivated");

    let out = meterhook(dir.path(), &env, &["changes", "--after", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = meterhook(dir.path(), &env, &["changes", "--types", "vehicle.sold"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // --follow: each change as it is committed, after the cursor.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meterhook"))
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", db.url())
        .args(["changes", "--follow", "--after", "2", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let child_out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(child_out).lines() {
            if tx.send(line.expect("line")).is_err() {
                return;
            }
        }
    });
    let next = |expected: &str| {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a line within 30 s");
        let change: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(change["type"], expected, "{line}");
        change["position"].as_i64().expect("position")
    };
    store.set_vehicle_active("sc-1", true).expect("activate");
    assert_eq!(next("vehicle.activated"), 3);
    // Printed once it was read: the next one comes after it, as it is committed.
    store.register_vehicle("sc-2", "car-2").expect("register");
    assert_eq!(next("vehicle.registered"), 4);
    child.kill().expect("kill");
    let _ = child.wait();
}
