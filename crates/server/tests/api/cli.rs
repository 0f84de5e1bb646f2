//! The `meterhook` binary, run for real.

use crate::helpers::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}{}",
        stdout(out),
        stderr(out)
    );
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn vehicles_entries_events_and_stats_commands() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let env = [("DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);

    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("migrations applied"));

    let out = run(&["vehicles", "add", "sc-1", "--vehicle-id", "car-1"]);
    assert!(
        stdout(&out).contains("registered Smartcar vehicle sc-1 for vehicle car-1"),
        "{}",
        stderr(&out)
    );
    run(&["vehicles", "add", "sc-2", "--vehicle-id", "car-2"]);
    run(&["vehicles", "deactivate", "sc-2"]);
    let list = json(&run(&["vehicles", "list", "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert_eq!(list[1]["smartcar_vehicle_id"], "sc-2");
    assert_eq!(list[1]["is_active"], false);
    run(&["vehicles", "activate", "sc-2"]);
    assert_eq!(
        json(&run(&["vehicles", "list", "--json"]))[1]["is_active"],
        true
    );
    let human = stdout(&run(&["vehicles", "list"]));
    assert!(human.contains("sc-1") && human.contains("car-1"), "{human}");

    let out = run(&["vehicles", "deactivate", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: no vehicle with Smartcar id nope"
    );

    assert_eq!(
        json(&run(&[
            "entries",
            "list",
            "--vehicle-id",
            "car-1",
            "--json"
        ])),
        serde_json::json!([])
    );
    assert_eq!(
        json(&run(&["events", "list", "--json"])),
        serde_json::json!([])
    );
    let stats = json(&run(&["stats", "--since", "7d", "--json"]));
    assert_eq!(stats["events_total"], 0);

    // A usage error: clap's exit code 2, naming the flag.
    let out = run(&["stats", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
}

#[test]
fn a_new_users_walk_through_send_test_event_then_entries_list() {
    let app = spawn_app();
    let dir = tempfile::tempdir().expect("tmp");
    let env = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    let url = app.webhook_url();

    assert!(
        run(&["vehicles", "add", "sc-walk", "--vehicle-id", "car-walk"])
            .status
            .success()
    );
    let out = run(&["send-test-event", "--url", &url, "--verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("verification handshake OK"));

    let out = run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-walk",
        "--odometer",
        "100",
        "--unit",
        "miles",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("\"outcome\":\"created\""),
        "{}",
        stdout(&out)
    );

    let entries = json(&run(&[
        "entries",
        "list",
        "--vehicle-id",
        "car-walk",
        "--json",
    ]));
    assert_eq!(entries[0]["value_km"], 160.934);
    assert_eq!(entries[0]["source_type"], "smartcar_webhook");
    let date = entries[0]["entry_date"].as_str().expect("date");
    assert!(chrono::DateTime::parse_from_rfc3339(date).is_ok(), "{date}");
    let event_id = entries[0]["event_id"]
        .as_str()
        .expect("event id")
        .to_owned();

    let events = json(&run(&["events", "list", "--limit", "5", "--json"]));
    assert_eq!(events[0]["event_id"], event_id.as_str());
    assert_eq!(events[0]["event_type"], "VEHICLE_STATE");
    assert_eq!(events[0]["processed"], true);
    assert_eq!(events[0]["outcome"], "created");

    let stats = json(&run(&["stats", "--json"]));
    assert_eq!(stats["events_total"], 1);
    assert_eq!(stats["processing_success_rate"], 1.0);
    assert!(stdout(&run(&["stats"])).contains("Processing success rate:  100.0%"));

    // A wrong token is caught by the handshake check and by the endpoint.
    let wrong = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", "not-the-token"),
    ];
    let out = meterhook(
        dir.path(),
        &wrong,
        &["send-test-event", "--url", &url, "--verify"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    let out = meterhook(
        dir.path(),
        &wrong,
        &[
            "send-test-event",
            "--url",
            &url,
            "--vehicle",
            "sc-walk",
            "--odometer",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("401"));
    assert!(!stdout(&out).contains("not-the-token") && !stderr(&out).contains("not-the-token"));
}

#[test]
fn bad_settings_stop_the_start_with_a_message_naming_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "SMARTCAR_MANAGEMENT_TOKEN"),
        (
            &[("SMARTCAR_MANAGEMENT_TOKEN", "")],
            "SMARTCAR_MANAGEMENT_TOKEN",
        ),
        (
            &[
                ("SMARTCAR_MANAGEMENT_TOKEN", "t0k3n-long-enough-123"),
                ("METERHOOK_MAX_SPEED_KMH", "fast"),
            ],
            "METERHOOK_MAX_SPEED_KMH",
        ),
        (
            &[
                ("SMARTCAR_MANAGEMENT_TOKEN", "t0k3n-long-enough-123"),
                ("METERHOOK_DUPLICATE_WINDOW", "soon"),
            ],
            "METERHOOK_DUPLICATE_WINDOW",
        ),
        (
            &[
                ("SMARTCAR_MANAGEMENT_TOKEN", "t0k3n-long-enough-123"),
                ("DATABASE_URL", "mysql://db/x"),
            ],
            "DATABASE_URL",
        ),
    ];
    for (env, named) in cases {
        let out = meterhook(dir.path(), env, &["serve"]);
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && err.contains(named),
            "{env:?}: {err}"
        );
        assert!(!err.contains("t0k3n-long-enough-123"), "{err}");
    }
    // A typo in the configuration file fails too.
    std::fs::write(
        dir.path().join("meterhook.toml"),
        "lisen = \"127.0.0.1:1\"\n",
    )
    .expect("write");
    let out = meterhook(dir.path(), &[], &["vehicles", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));
    // A named --config file must exist.
    let out = meterhook(
        dir.path(),
        &[],
        &["--config", "missing.toml", "vehicles", "list"],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn configuration_sources_take_precedence_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(
        dir.path().join("meterhook.toml"),
        format!("database_url = \"sqlite://{}\"\n", path("from-toml.db")),
    )
    .expect("write");
    let list = |env: &[(&str, &str)]| {
        meterhook(
            dir.path(),
            env,
            &["vehicles", "add", "sc", "--vehicle-id", "v"],
        )
    };
    assert!(list(&[]).status.success());
    assert!(dir.path().join("from-toml.db").exists());
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL=sqlite://{}\n", path("from-env-file.db")),
    )
    .expect("write");
    assert!(list(&[]).status.success());
    assert!(dir.path().join("from-env-file.db").exists());
    std::fs::write(
        dir.path().join(".env.local"),
        format!("DATABASE_URL=sqlite://{}\n", path("from-env-local.db")),
    )
    .expect("write");
    assert!(list(&[]).status.success());
    assert!(dir.path().join("from-env-local.db").exists());
    let from_env = format!("sqlite://{}", path("from-environment.db"));
    assert!(list(&[("DATABASE_URL", &from_env)]).status.success());
    assert!(dir.path().join("from-environment.db").exists());
}

#[test]
fn the_binary_serves_by_default_and_stops_on_sigterm() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)]);
    // No subcommand: serve. The default database was created in the working directory.
    assert!(server.dir.path().join("meterhook.db").exists());
    let url = server.url("/api/smartcar/webhook");
    let out = meterhook(
        server.dir.path(),
        &[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)],
        &["send-test-event", "--url", &url, "--verify"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (status, log) = server.stop();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    // Handshakes are logged in the periodic summary, the last one when the server stops.
    assert!(log.contains("Answered 1 VERIFY challenge"), "{log}");
    assert!(!log.contains(TOKEN), "the token reached the log");
}

/// Flags are checked by their parsers: a bad value is a usage error (exit 2) naming the flag,
/// never a panic or a query with a nonsense value.
#[test]
fn flag_values_are_validated() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let env = [("DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    for (args, flag) in [
        (&["events", "list", "--limit=-1"][..], "--limit"),
        (&["events", "list", "--limit", "0"][..], "--limit"),
        (&["stats", "--since", "1000000y"][..], "--since"),
        (&["prune", "--older-than", "1000000y"][..], "--older-than"),
        (
            &["prune", "--older-than", "30d", "--batch", "0"][..],
            "--batch",
        ),
        (
            &["events", "reprocess", "--outcome", "bogus"][..],
            "--outcome",
        ),
        (
            &[
                "signals",
                "history",
                "--vehicle-id",
                "v",
                "--code",
                "c",
                "--limit=-5",
            ][..],
            "--limit",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A possible value is listed for a bad outcome.
    let out = run(&["events", "reprocess", "--outcome", "bogus"]);
    assert!(stderr(&out).contains("dead"), "{}", stderr(&out));
}
