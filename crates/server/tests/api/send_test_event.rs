//! `send-test-event` and `events resend`, the real binary against a real server.

use crate::helpers::*;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn entries(app: &TestApp, vehicle: &str) -> Vec<meterhook_store::MeterEntry> {
    app.store.list_entries(vehicle, true).expect("entries")
}

#[test]
fn readings_dated_in_the_past_let_km_then_miles_be_tried_without_a_jump() {
    let app = spawn_app();
    let dir = tempfile::tempdir().expect("tmp");
    let env = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    let url = app.webhook_url();
    ok(&run(&["vehicles", "add", "sc-t", "--vehicle-id", "car-t"]));

    // 1,000 km two hours ago, then 700 miles (1,126.5 km) one hour ago: 126.5 km in an hour.
    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-t",
        "--odometer",
        "1000",
        "--ago",
        "2h",
    ]));
    assert!(out.contains("\"outcome\":\"created\""), "{out}");
    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-t",
        "--odometer",
        "700",
        "--unit",
        "miles",
        "--ago",
        "1h",
    ]));
    assert!(out.contains("\"outcome\":\"created\""), "{out}");
    let now = chrono::Utc::now().naive_utc();
    let got = entries(&app, "car-t");
    assert_eq!(got.len(), 2, "{got:?}");
    for (entry, hours) in got.iter().zip([2, 1]) {
        let age = now - entry.entry_date;
        assert!(
            (age - chrono::TimeDelta::hours(hours)).num_seconds().abs() < 120,
            "entry dated {} for --ago {hours}h",
            entry.entry_date
        );
    }

    // --at takes an exact time.
    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-t",
        "--odometer",
        "1130",
        "--at",
        "2026-01-02T03:04:05Z",
    ]));
    assert!(out.contains("2026-01-02T03:04:05"), "{out}");
    assert!(entries(&app, "car-t").iter().any(|e| e.entry_date
        == chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("date")));

    // A usage error for a time that is not one.
    let out = run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-t",
        "--odometer",
        "1",
        "--at",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--at"), "{}", stderr(&out));
}

#[test]
fn signals_and_vehicle_errors_are_sent_as_smartcar_sends_them() {
    let app = spawn_app();
    let dir = tempfile::tempdir().expect("tmp");
    let env = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    let url = app.webhook_url();
    ok(&run(&["vehicles", "add", "sc-e", "--vehicle-id", "car-e"]));

    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--odometer",
        "10",
        "--signal",
        "tractionbattery-stateofcharge=80:percent",
        "--signal",
        "charge-ischarging=true",
    ]));
    assert!(out.contains("\"outcome\":\"created\""), "{out}");
    let latest: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "signals",
        "latest",
        "--vehicle-id",
        "car-e",
        "--json",
    ])))
    .expect("JSON");
    let value = |code: &str| {
        latest
            .as_array()
            .expect("array")
            .iter()
            .find(|s| s["code"] == code)
            .unwrap_or_else(|| panic!("no {code} in {latest}"))["value"]
            .clone()
    };
    assert_eq!(value("tractionbattery-stateofcharge"), 80.0);
    assert_eq!(value("charge-ischarging"), 1.0);

    // A signal alone, without an odometer: a VEHICLE_STATE the rules have nothing to judge in.
    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--signal",
        "tractionbattery-stateofcharge=75:percent",
    ]));
    assert!(out.contains("\"outcome\":\"no_odometer\""), "{out}");

    // A VEHICLE_ERROR that only the owner can fix, then its resolution.
    let out = ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--error",
        "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED",
    ]));
    assert!(
        out.contains("\"outcome\":\"vehicle_error_recorded\""),
        "{out}"
    );
    let errors = app.store.open_errors("sc-e").expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_type, "CONNECTED_SERVICES_ACCOUNT");
    assert_eq!(errors[0].code, "AUTHENTICATION_FAILED");
    assert!(
        app.store
            .find_vehicle("sc-e")
            .expect("vehicle")
            .expect("registered")
            .needs_reconnection
    );
    ok(&run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--error",
        "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED",
        "--resolved",
    ]));
    assert!(app.store.open_errors("sc-e").expect("errors").is_empty());

    // --error and an odometer are two kinds of event: a usage error.
    let out = run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--odometer",
        "1",
        "--error",
        "VEHICLE_STATE:ASLEEP",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-e",
        "--error",
        "ASLEEP",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("TYPE:CODE"), "{}", stderr(&out));
}

#[test]
fn the_url_defaults_to_the_listen_address_and_failures_say_what_happened() {
    let app = spawn_app();
    let dir = tempfile::tempdir().expect("tmp");
    let listen = app.address.trim_start_matches("http://").to_owned();
    let env = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_LISTEN", listen.as_str()),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);

    // No --url: the configured listen address.
    let out = ok(&run(&["send-test-event", "--verify"]));
    assert!(out.contains(&app.webhook_url()), "{out}");
    let out = ok(&run(&[
        "send-test-event",
        "--vehicle",
        "sc-unknown",
        "--odometer",
        "5",
    ]));
    assert!(out.contains("\"outcome\":\"unknown_vehicle\""), "{out}");

    // A wrong path is a 404, said as such, for a reading and for the handshake.
    let wrong = format!("{}/webhook", app.address);
    for args in [
        vec![
            "send-test-event",
            "--url",
            &wrong,
            "--vehicle",
            "v",
            "--odometer",
            "5",
        ],
        vec!["send-test-event", "--url", &wrong, "--verify"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("HTTP 404") && err.contains("/api/smartcar/webhook"),
            "{err}"
        );
        assert!(!err.contains("does not match"), "{err}");
    }

    // Another token: a 401 with the hint.
    let other = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", "another-token-entirely"),
        ("METERHOOK_LISTEN", listen.as_str()),
    ];
    let out = meterhook(
        dir.path(),
        &other,
        &["send-test-event", "--vehicle", "v", "--odometer", "5"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 401")
            && err.contains("another token than this SMARTCAR_MANAGEMENT_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains("another-token-entirely") && !stdout(&out).contains("another-token-entirely")
    );
    let out = meterhook(dir.path(), &other, &["send-test-event", "--verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another SMARTCAR_MANAGEMENT_TOKEN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn resend_replays_a_stored_delivery_against_another_instance() {
    let first = spawn_app();
    let second = spawn_app();
    let dir = tempfile::tempdir().expect("tmp");
    let env = [
        ("DATABASE_URL", first.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    let body = payload("v4_vehicle_state.json");
    assert_eq!(first.post_signed(&body).status, 200);
    let stored = first.store.recent_events(1).expect("events");
    let id = stored[0].event_id.clone();

    second
        .store
        .register_vehicle(
            stored[0].smartcar_vehicle_id.as_deref().expect("vehicle"),
            "car-r",
        )
        .expect("register");
    let out = ok(&run(&[
        "events",
        "resend",
        &id,
        "--url",
        &second.webhook_url(),
    ]));
    assert!(out.contains(&id) && out.contains("-> 200"), "{out}");
    let copy = second
        .store
        .find_event(&id)
        .expect("query")
        .expect("resent");
    // Byte for byte: the body stored is the one received first.
    assert_eq!(copy.payload.as_bytes(), &body[..]);
    assert_eq!(copy.outcome, "created");
    assert_eq!(
        second
            .store
            .list_entries("car-r", false)
            .expect("entries")
            .len(),
        1
    );

    // Again: the other instance already has it.
    let out = ok(&run(&[
        "events",
        "resend",
        &id,
        "--url",
        &second.webhook_url(),
    ]));
    assert!(out.contains("already_received"), "{out}");

    let out = run(&[
        "events",
        "resend",
        "no-such-event",
        "--url",
        &second.webhook_url(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "error: no event no-such-event");
}
