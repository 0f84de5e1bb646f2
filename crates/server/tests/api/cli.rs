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
        "error: no vehicle with Smartcar id or app vehicle id nope"
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

    // The dashboard's kind of test delivery is kept apart: no entry.
    let out = run(&[
        "send-test-event",
        "--url",
        &url,
        "--vehicle",
        "sc-walk",
        "--odometer",
        "999999",
        "--mode",
        "test",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("\"outcome\":\"test_event\""),
        "{}",
        stdout(&out)
    );
    let listed = json(&run(&[
        "entries",
        "list",
        "--vehicle-id",
        "car-walk",
        "--json",
    ]));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

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
        assert_eq!(out.status.code(), Some(78), "{env:?}");
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
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));
    // A named --config file must exist.
    let out = meterhook(
        dir.path(),
        &[],
        &["--config", "missing.toml", "vehicles", "list"],
    );
    assert_eq!(out.status.code(), Some(78));
    // None of these left a database behind.
    assert!(!dir.path().join("meterhook.db").exists());
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
    let list = |env: &[(&str, &str)]| meterhook(dir.path(), env, &["migrate"]);
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
                "send-test-event",
                "--url",
                "http://127.0.0.1:1/",
                "--vehicle",
                "v",
                "--odometer",
                "NaN",
            ][..],
            "--odometer",
        ),
        (&["backup"][..], "<PATH>"),
        (&["completions", "powershell7"][..], "powershell7"),
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

/// Only `serve` and `migrate` create a database: every other command on a mistyped path fails
/// with one line naming it, and leaves nothing behind. `serve` checks the token first.
#[test]
fn only_serve_and_migrate_create_a_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let typo = dir.path().join("typo.db");
    let url = format!("sqlite://{}", typo.display());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SMARTCAR_MANAGEMENT_TOKEN", "t0k3n-long-enough-123"),
    ];
    let run = |args: &[&str]| meterhook(dir.path(), &env, args);
    for args in [
        &["vehicles", "list"][..],
        &["vehicles", "add", "sc-1", "--vehicle-id", "car-1"][..],
        &["entries", "list", "--vehicle-id", "car-1"][..],
        &["events", "list"][..],
        &["signals", "latest", "--vehicle-id", "car-1"][..],
        &["stats"][..],
        &["prune", "--older-than", "30d"][..],
        &["backup", "copy.db"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "error: database not found: no SQLite database at {}; check DATABASE_URL, or \
                 create it with `meterhook migrate`\n",
                typo.display()
            ),
            "{args:?}"
        );
        assert!(!typo.exists(), "{args:?} created the database");
    }
    assert!(!dir.path().join("copy.db").exists());

    // serve without a token stops before it opens the database.
    let out = meterhook(
        dir.path(),
        &[
            ("DATABASE_URL", url.as_str()),
            ("METERHOOK_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("SMARTCAR_MANAGEMENT_TOKEN"));
    assert!(!typo.exists(), "serve without a token created the database");

    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(typo.exists());
    assert_eq!(
        json(&run(&["vehicles", "list", "--json"])),
        serde_json::json!([])
    );
}

/// A database without this version's migrations is not migrated by a read command: it is an
/// error that says to run `meterhook migrate`, and nothing is created in it (both backends).
#[test]
fn read_commands_report_pending_migrations_and_change_nothing() {
    use diesel::connection::SimpleConnection;
    for db in meterhook_store::testing::TestDatabase::all() {
        if let Some(path) = db.url().strip_prefix("sqlite://") {
            std::fs::write(path, b"").expect("an empty database file");
        }
        let dir = tempfile::tempdir().expect("tmp");
        let out = meterhook(
            dir.path(),
            &[("DATABASE_URL", db.url())],
            &["vehicles", "list"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        let migrations = meterhook_store::migration_names(db.backend());
        assert!(
            err.starts_with(&format!(
                "error: the database schema is out of date: {} migration(s) pending, from {}",
                migrations.len(),
                migrations[0]
            )) && err.trim_end().ends_with("run `meterhook migrate`"),
            "{}: {err}",
            db.backend()
        );
        let url = meterhook_store::DatabaseUrl::parse(db.url()).expect("url");
        let mut conn =
            meterhook_store::connect(&url, std::time::Duration::from_secs(5)).expect("connect");
        assert!(
            conn.batch_execute("SELECT 1 FROM __diesel_schema_migrations")
                .is_err(),
            "{}: the migrations table was created",
            db.backend()
        );
        assert_eq!(
            meterhook_store::pending_migrations(&mut conn).expect("pending"),
            migrations
        );
        let out = meterhook(dir.path(), &[("DATABASE_URL", db.url())], &["doctor"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stdout(&out).contains("schema is out of date")
                && stdout(&out).contains("fix: run `meterhook migrate`"),
            "{}",
            stdout(&out)
        );
        assert!(conn
            .batch_execute("SELECT 1 FROM __diesel_schema_migrations")
            .is_err());
        // migrate applies them; then the same command works.
        assert!(
            meterhook(dir.path(), &[("DATABASE_URL", db.url())], &["migrate"])
                .status
                .success()
        );
        let out = meterhook(
            dir.path(),
            &[("DATABASE_URL", db.url())],
            &["vehicles", "list"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// libpq's messages span lines; errors stay one line.
#[test]
fn a_multi_line_libpq_error_is_printed_on_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(
        dir.path(),
        &[("DATABASE_URL", "postgres://meter@127.0.0.1:1/m")],
        &["vehicles", "list"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: database unavailable: cannot connect to PostgreSQL: ")
            && err.contains("127.0.0.1"),
        "{err}"
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().expect("tmp");
    for (shell, marker) in [
        ("bash", "_meterhook()"),
        ("zsh", "#compdef meterhook"),
        ("fish", "complete -c meterhook"),
    ] {
        let out = meterhook(dir.path(), &[], &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        // Subcommands and their flags are in it.
        assert!(
            script.contains("doctor") && script.contains("older-than"),
            "{shell}"
        );
    }
    let out = meterhook(dir.path(), &[], &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    // No settings are read, and no database is made, for completions.
    assert!(std::fs::read_dir(dir.path())
        .expect("list")
        .next()
        .is_none());
}

#[test]
fn tables_escape_control_characters_in_stored_ids() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let store =
        meterhook_store::Store::open(&db, &meterhook_store::PoolOptions::default()).expect("store");
    // A row stored before the id policy: a newline and a terminal escape in its ids.
    store
        .record_event(&meterhook_store::NewEvent::pending(
            "evil\nid",
            "VEHICLE_STATE",
            Some("sc-\u{1b}[2J"),
            "{}",
            meterhook_store::now(),
        ))
        .expect("stored");
    let out = meterhook(
        dir.path(),
        &[("DATABASE_URL", db.as_str())],
        &["events", "list"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "a header and one row: {text:?}");
    assert!(text.contains("evil\\nid"), "{text:?}");
    assert!(text.contains("sc-\\u{1b}[2J"), "{text:?}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}
