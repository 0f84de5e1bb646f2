//! The app registers its vehicles through the API: `PUT`, deactivate, activate, list.

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";
const T0: i64 = 1_767_000_000_000;

/// A request with the API token (or `token`), answered as (status, JSON or null).
fn call(app: &TestApp, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    call_with(app, method, path, body, Some(API_TOKEN))
}

fn call_with(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", app.address);
    let auth = token.map(|t| format!("Bearer {t}"));
    let agent = agent();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (m, body) => {
            if m == "DELETE" {
                let mut r = agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            } else {
                let mut r = match m {
                    "PUT" => agent.put(&url),
                    _ => agent.post(&url),
                }
                .content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or(""))
            }
        }
    }
    .expect("sent");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn api_app(db: TestDatabase) -> TestApp {
    spawn_app_with(db, PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
    })
}

#[test]
fn registering_through_the_api_processes_the_events_that_waited() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        // A reading for a car the app has not registered yet waits.
        let answer = app.post_signed(odometer_event("w1", "sc-new", 42.0, "km", T0).as_bytes());
        assert_eq!(answer.json()["outcome"], "unknown_vehicle");

        let (status, body) = call(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-new",
            Some(r#"{"vehicle_id":"car-new"}"#),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["vehicle"]["smartcar_vehicle_id"], "sc-new");
        assert_eq!(body["vehicle"]["vehicle_id"], "car-new");
        assert_eq!(body["vehicle"]["is_active"], true);
        assert_eq!(body["processed_events"], 1);
        assert_eq!(body["entries_created"], 1);
        assert_eq!(app.outcome("w1"), "created");
        assert_eq!(
            app.store
                .list_entries("car-new", false)
                .expect("entries")
                .len(),
            1
        );

        // Again: idempotent, nothing waits any more.
        let (status, body) = call(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-new",
            Some(r#"{"vehicle_id":"car-new"}"#),
        );
        assert_eq!((status, body["processed_events"].as_i64()), (200, Some(0)));

        let (status, body) = call(
            &app,
            "POST",
            "/api/smartcar-vehicles/sc-new/deactivate",
            None,
        );
        assert_eq!(
            (status, &body["is_active"]),
            (200, &serde_json::json!(false))
        );
        let answer =
            app.post_signed(odometer_event("w2", "sc-new", 50.0, "km", T0 + 3_600_000).as_bytes());
        assert_eq!(answer.json()["outcome"], "inactive_vehicle");
        let (status, body) = call(&app, "POST", "/api/smartcar-vehicles/sc-new/activate", None);
        assert_eq!(
            (status, &body["is_active"]),
            (200, &serde_json::json!(true))
        );

        // Refusals: unknown vehicle 404, bad bodies 400, no token 401; nothing registered.
        let (status, body) = call(&app, "POST", "/api/smartcar-vehicles/nope/activate", None);
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "no vehicle with Smartcar id nope");
        for bad in [
            "",
            "{}",
            r#"{"vehicle_id":" "}"#,
            r#"{"vehicle_id":1}"#,
            r#"{"vehicle_id":"a","x":1}"#,
        ] {
            let (status, body) = call(&app, "PUT", "/api/smartcar-vehicles/sc-bad", Some(bad));
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body["error"].is_string(), "{bad}: {body}");
        }
        let (status, _) = call_with(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-bad",
            Some(r#"{"vehicle_id":"car-bad"}"#),
            None,
        );
        assert_eq!(status, 401);
        assert!(app.store.find_vehicle("sc-bad").expect("query").is_none());
    }
}

#[test]
fn the_vehicle_list_pages_with_a_cursor_that_new_registrations_do_not_shift() {
    let app = api_app(TestDatabase::sqlite());
    for i in 0..5 {
        app.store
            .register_vehicle(&format!("sc-{i}"), &format!("car-{i}"))
            .expect("register");
    }
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["vehicles"]
            .as_array()
            .expect("vehicles")
            .iter()
            .map(|v| v["smartcar_vehicle_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (status, first) = call(&app, "GET", "/api/smartcar-vehicles?limit=2", None);
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), ["sc-0", "sc-1"]);
    let cursor = first["next_after"].as_str().expect("next page").to_owned();
    app.store
        .register_vehicle("sc-late", "car-late")
        .expect("register");
    let (_, second) = call(
        &app,
        "GET",
        &format!("/api/smartcar-vehicles?limit=2&after={cursor}"),
        None,
    );
    assert_eq!(ids(&second), ["sc-2", "sc-3"]);
    let cursor = second["next_after"].as_str().expect("next page").to_owned();
    let (_, third) = call(
        &app,
        "GET",
        &format!("/api/smartcar-vehicles?limit=2&after={cursor}"),
        None,
    );
    assert_eq!(ids(&third), ["sc-4", "sc-late"]);
    assert_eq!(third["next_after"], serde_json::Value::Null);
    for query in [
        "limit=0",
        "limit=-5",
        "limit=1001",
        "after=x",
        "after=",
        "offset=1",
    ] {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/smartcar-vehicles?{query}"),
            None,
        );
        assert_eq!(status, 400, "{query}: {body}");
    }
}

#[test]
fn ids_follow_the_webhooks_rule_wherever_they_enter() {
    // Long, but within the body limit.
    let long = "c".repeat(10_000);
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.api_token = Some(meterhook::Secret::new(API_TOKEN));
            s.ui_password = Some(meterhook::Secret::new("ui-password-0123456789"));
        });
        // In the body: 400 naming the rule, nothing stored.
        for vehicle_id in [
            "car\nforged line",
            "car\u{1b}[2J",
            "car\u{0}x",
            "car 1",
            &long,
        ] {
            let body = serde_json::json!({ "vehicle_id": vehicle_id }).to_string();
            let (status, answer) = call(&app, "PUT", "/api/smartcar-vehicles/sc-ok", Some(&body));
            assert_eq!(status, 400, "{:.40?}: {answer}", vehicle_id);
            let error = answer["error"].as_str().expect("message");
            assert!(error.starts_with("vehicle_id "), "{error}");
        }
        // In the path: 400 for the registration routes and the reads, never 500.
        for path in [
            "/api/smartcar-vehicles/sc%00x",
            "/api/smartcar-vehicles/sc%0Ax",
            "/api/smartcar-vehicles/sc%1B%5B2J",
        ] {
            let (status, answer) = call(&app, "PUT", path, Some(r#"{"vehicle_id":"car-ok"}"#));
            assert_eq!(status, 400, "{path}: {answer}");
            assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("smartcar_vehicle_id ")),
                "{answer}"
            );
            for action in ["activate", "deactivate"] {
                let (status, answer) = call(&app, "POST", &format!("{path}/{action}"), None);
                assert_eq!(status, 400, "{path}/{action}: {answer}");
            }
        }
        assert!(app.store.list_vehicles().expect("list").is_empty());
        for read in ["meter-entries", "signals/latest", "health"] {
            let (status, answer) =
                call(&app, "GET", &format!("/api/vehicles/car%00x/{read}"), None);
            assert_eq!(status, 400, "{read}: {answer}");
        }
        let page = answer(
            agent()
                .get(format!("{}/ui/vehicles/car%00x", app.address))
                .header(
                    "Authorization",
                    &format!("Basic {}", base64_of("admin:ui-password-0123456789")),
                )
                .call()
                .expect("sent"),
        );
        assert_eq!(page.status, 400, "{}", page.body);
        // A good id still registers.
        let (status, _) = call(
            &app,
            "PUT",
            "/api/smartcar-vehicles/sc-ok",
            Some(r#"{"vehicle_id":"car-ok"}"#),
        );
        assert_eq!(status, 200);

        // `vehicles add`: the same rule, one line on stderr, exit 1, nothing stored.
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        for (smartcar_id, vehicle_id, field) in [
            ("sc-cli", "car\nforged", "vehicle_id"),
            ("sc-cli", long.as_str(), "vehicle_id"),
            ("sc\u{1b}[2J", "car-cli", "smartcar_vehicle_id"),
        ] {
            let out = meterhook(
                dir.path(),
                &env,
                &["vehicles", "add", smartcar_id, "--vehicle-id", vehicle_id],
            );
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(&format!("{field} ")), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
        assert_eq!(app.store.list_vehicles().expect("list").len(), 1);
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A vehicle `sc-1` for `car-1` with a reading, and `sc-2` for `car-2` with one.
fn two_vehicles(app: &TestApp) {
    for (sc, car) in [("sc-1", "car-1"), ("sc-2", "car-2")] {
        app.store.register_vehicle(sc, car).expect("register");
        let answer =
            app.post_signed(odometer_event(&format!("e-{sc}"), sc, 10.0, "km", T0).as_bytes());
        assert_eq!(answer.json()["outcome"], "created", "{}", answer.body);
    }
}

#[test]
fn the_api_purges_a_vehicle_only_when_told_to() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        two_vehicles(&app);
        let (status, _) = call_with(
            &app,
            "DELETE",
            "/api/smartcar-vehicles/sc-1?purge=true",
            None,
            None,
        );
        assert_eq!(status, 401);
        for path in [
            "/api/smartcar-vehicles/sc-1",
            "/api/smartcar-vehicles/sc-1?purge=false",
            "/api/smartcar-vehicles/sc-1?purge=yes",
        ] {
            let (status, body) = call(&app, "DELETE", path, None);
            assert_eq!(status, 400, "{path}: {body}");
        }
        assert!(app.store.find_vehicle("sc-1").expect("query").is_some());
        let (status, body) = call(
            &app,
            "DELETE",
            "/api/smartcar-vehicles/sc-1?purge=true",
            None,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["vehicle"]["vehicle_id"], "car-1");
        assert_eq!(body["erased"]["meter_entries"], 1);
        assert_eq!(body["erased"]["events"], 1);
        assert!(app.store.find_vehicle("sc-1").expect("query").is_none());
        assert!(app.store.find_event("e-sc-1").expect("query").is_none());
        assert!(app
            .store
            .list_entries("car-1", true)
            .expect("entries")
            .is_empty());
        assert_eq!(
            app.store
                .list_entries("car-2", true)
                .expect("entries")
                .len(),
            1
        );
        let (status, _) = call(
            &app,
            "DELETE",
            "/api/smartcar-vehicles/sc-1?purge=true",
            None,
        );
        assert_eq!(status, 404);
        let (status, _) = call(
            &app,
            "DELETE",
            "/api/smartcar-vehicles/sc%00?purge=true",
            None,
        );
        assert_eq!(status, 400);
    }
}

#[test]
fn vehicles_delete_purges_after_confirmation_and_writes_one_audit_line() {
    for db in TestDatabase::all() {
        let app = api_app(db);
        two_vehicles(&app);
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        // Without --purge, and without --yes when nobody can be asked: refused, nothing erased.
        for args in [
            &["vehicles", "delete", "sc-1"][..],
            &["vehicles", "delete", "sc-1", "--purge"][..],
        ] {
            let out = meterhook(dir.path(), &env, args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        }
        assert!(app.store.find_vehicle("sc-1").expect("query").is_some());
        // On a terminal, the id typed again confirms; anything else does not.
        let on_terminal = |typed: &str| {
            let command = format!(
                "{} vehicles delete sc-1 --purge",
                env!("CARGO_BIN_EXE_meterhook")
            );
            let mut child = std::process::Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .current_dir(dir.path())
                .env_clear()
                .env("DATABASE_URL", app.db.url())
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("script");
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin.write_all(typed.as_bytes()).expect("typed");
            }
            child.wait_with_output().expect("ran")
        };
        let out = on_terminal("sc-2\n");
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(shown.contains("Type the Smartcar id to confirm"), "{shown}");
        assert!(shown.contains("not confirmed"), "{shown}");
        assert!(app.store.find_vehicle("sc-1").expect("query").is_some());
        let out = on_terminal("sc-1\n");
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(shown.contains("erased Smartcar vehicle sc-1"), "{shown}");
        assert!(app.store.find_vehicle("sc-1").expect("query").is_none());

        // For scripts: --yes, one audit line on stderr.
        let out = meterhook(
            dir.path(),
            &env,
            &["vehicles", "delete", "sc-2", "--purge", "--yes"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("erased Smartcar vehicle sc-2 (vehicle car-2): 1 meter entries"),
            "{}",
            stdout(&out)
        );
        let audit: Vec<String> = stderr(&out)
            .lines()
            .filter(|l| l.contains("meterhook::audit"))
            .map(str::to_owned)
            .collect();
        assert_eq!(audit.len(), 1, "{}", stderr(&out));
        assert!(
            audit[0].contains("purged Smartcar vehicle sc-2 (vehicle car-2) by the CLI"),
            "{audit:?}"
        );
        assert!(app.store.list_vehicles().expect("list").is_empty());
        let out = meterhook(
            dir.path(),
            &env,
            &["vehicles", "delete", "sc-2", "--purge", "--yes"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
}
