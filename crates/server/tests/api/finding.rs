//! Finding things from the CLI: event filters, void reasons, either kind of vehicle id, refused
//! odometer values, and `prune`'s dry run and floors. The real binary, on both backends.

use base64::Engine as _;
use chrono::TimeDelta;
use meterhook_domain::Outcome;
use meterhook_store::testing::TestDatabase;
use meterhook_store::{EventFilter, NewEvent, PoolOptions};

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";
const UI_PASSWORD: &str = "ui-password-0123456789";

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn ms_ago(hours: i64) -> i64 {
    (chrono::Utc::now() - TimeDelta::hours(hours)).timestamp_millis()
}

fn ids(listed: &serde_json::Value) -> Vec<String> {
    listed
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn events_list_filters_and_either_kind_of_vehicle_id() {
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.api_token = Some(meterhook::Secret::new(API_TOKEN));
        });
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        let run = |args: &[&str]| meterhook(dir.path(), &env, args);
        ok(&run(&["vehicles", "add", "sc-a", "--vehicle-id", "car-a"]));
        for (id, vehicle, km, hours) in [
            ("e1", "sc-a", 1000.0, 5),
            ("e2", "sc-a", 900.0, 4), // lower, later: void
            ("e3", "sc-b", 10.0, 3),  // not registered
        ] {
            let body = odometer_event(id, vehicle, km, "km", ms_ago(hours));
            assert_eq!(app.post_signed(body.as_bytes()).status, 200);
        }
        assert_eq!(app.outcome("e2"), "out_of_sequence");

        let list = |extra: &[&str]| {
            let mut args = vec!["events", "list", "--json"];
            args.extend_from_slice(extra);
            ids(&json(&run(&args)))
        };
        assert_eq!(list(&[]), ["e3", "e2", "e1"]);
        assert_eq!(list(&["--outcome", "out_of_sequence"]), ["e2"]);
        // A Smartcar id, an app id, and an unregistered Smartcar id.
        assert_eq!(list(&["--vehicle", "sc-a"]), ["e2", "e1"]);
        assert_eq!(list(&["--vehicle", "car-a"]), ["e2", "e1"]);
        assert_eq!(list(&["--vehicle", "sc-b"]), ["e3"]);
        assert_eq!(
            list(&["--vehicle", "car-a", "--outcome", "created"]),
            ["e1"]
        );
        // Received in the last hour: all three (received now, whatever their readings' dates).
        assert_eq!(list(&["--since", "1h"]).len(), 3);
        assert!(list(&["--vehicle", "nobody"]).is_empty());
        let table = ok(&run(&["events", "list"]));
        assert!(
            table.lines().next().expect("header").ends_with("ERROR"),
            "{table}"
        );

        // The void reason in the entries table, by either id.
        for id in ["car-a", "sc-a"] {
            let table = ok(&run(&["entries", "list", "--vehicle-id", id, "--all"]));
            let void_line = table
                .lines()
                .find(|l| l.contains("e2"))
                .unwrap_or_else(|| panic!("{table}"));
            assert!(void_line.contains("void: lower than"), "{table}");
            assert!(
                table.lines().any(|l| l.contains("e1") && l.ends_with(" -")),
                "{table}"
            );
        }

        // signals latest marks the refused odometer value; the accepted one is not marked.
        let table = ok(&run(&["signals", "latest", "--vehicle", "sc-a"]));
        let odometer = table
            .lines()
            .find(|l| l.starts_with("odometer-traveleddistance"))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(odometer.contains("REFUSED by the rules"), "{table}");
        let latest = json(&run(&[
            "signals",
            "latest",
            "--vehicle-id",
            "car-a",
            "--json",
        ]));
        assert!(
            latest[0]["refused"]
                .as_str()
                .is_some_and(|r| r.contains("lower than")),
            "{latest}"
        );
        let history = json(&run(&[
            "signals",
            "history",
            "--vehicle-id",
            "car-a",
            "--code",
            "odometer-traveleddistance",
            "--json",
        ]));
        assert_eq!(history[0]["event_id"], "e2");
        assert!(
            history[0]["refused"].is_string() && history[1].get("refused").is_none(),
            "{history}"
        );

        // vehicles show, deactivate and activate take either id.
        let shown = json(&run(&["vehicles", "show", "car-a", "--json"]));
        assert_eq!(shown["smartcar_vehicle_id"], "sc-a", "{shown}");
        ok(&run(&["vehicles", "deactivate", "car-a"]));
        assert!(
            !app.store
                .find_vehicle("sc-a")
                .expect("q")
                .expect("v")
                .is_active
        );
        ok(&run(&["vehicles", "activate", "sc-a"]));

        // A second Smartcar vehicle for car-a: allowed, and said, by the CLI and the API.
        let out = ok(&run(&["vehicles", "add", "sc-a2", "--vehicle-id", "car-a"]));
        assert!(
            out.contains("note: vehicle car-a also has Smartcar vehicle sc-a (active)"),
            "{out}"
        );
        let mut r = agent()
            .put(format!("{}/api/smartcar-vehicles/sc-a3", app.address))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .content_type("application/json")
            .send(r#"{"vehicle_id":"car-a"}"#)
            .expect("sent");
        assert_eq!(r.status().as_u16(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
        let others: Vec<&str> = body["other_smartcar_vehicles"]
            .as_array()
            .expect("others")
            .iter()
            .map(|v| v["smartcar_vehicle_id"].as_str().expect("id"))
            .collect();
        assert_eq!(others, ["sc-a", "sc-a2"], "{body}");
        // Now car-a names three: a command on one registration asks which.
        let out = run(&["vehicles", "show", "car-a"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("app vehicle car-a has 3 Smartcar vehicles (sc-a, sc-a2, sc-a3)"),
            "{}",
            stderr(&out)
        );
        let out = run(&["vehicles", "show", "nope"]);
        assert_eq!(
            stderr(&out).trim(),
            "error: no vehicle with Smartcar id or app vehicle id nope"
        );
    }
}

#[test]
fn events_are_listed_newest_first_by_the_time_received() {
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.ui_password = Some(meterhook::Secret::new(UI_PASSWORD));
        });
        let now = chrono::Utc::now().naive_utc();
        // Stored in the order late, early, middle: ids do not follow the time received (as for
        // events drained from the spool).
        for (id, minutes) in [("late", 1), ("early", 30), ("middle", 10)] {
            app.store
                .record_event(&NewEvent::pending(
                    id,
                    "VEHICLE_STATE",
                    Some("sc-x"),
                    "{}",
                    now - TimeDelta::minutes(minutes),
                ))
                .expect("record");
        }
        let listed: Vec<String> = app
            .store
            .list_events(&EventFilter::default(), 10)
            .expect("list")
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(listed, ["late", "middle", "early"]);
        let since = app
            .store
            .list_events(
                &EventFilter {
                    since: Some(now - TimeDelta::minutes(15)),
                    outcome: Some(Outcome::Pending),
                    smartcar_vehicle_ids: Some(vec!["sc-x".into()]),
                },
                10,
            )
            .expect("list");
        assert_eq!(since.len(), 2);

        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        let listed = ids(&json(&meterhook(
            dir.path(),
            &env,
            &["events", "list", "--json"],
        )));
        assert_eq!(listed, ["late", "middle", "early"]);
        // The status page too.
        let mut r = agent()
            .get(format!("{}/ui/events", app.address))
            .header(
                "Authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("x:{UI_PASSWORD}"))
                ),
            )
            .call()
            .expect("sent");
        assert_eq!(r.status().as_u16(), 200);
        let body = r.body_mut().read_to_string().expect("page");
        let at = |id: &str| {
            body.find(&format!(">{id}<"))
                .unwrap_or_else(|| panic!("{id} not on the page"))
        };
        assert!(at("late") < at("middle") && at("middle") < at("early"));
    }
}

#[test]
fn prune_dry_run_counts_and_every_window_has_a_floor() {
    for db in TestDatabase::all() {
        let app = spawn_app_on(db, PoolOptions::default());
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        let run = |args: &[&str]| meterhook(dir.path(), &env, args);
        ok(&run(&["vehicles", "add", "sc-p", "--vehicle-id", "car-p"]));
        for (id, km, hours) in [("p1", 100.0, 3), ("p2", 150.0, 2)] {
            let body = odometer_event(id, "sc-p", km, "km", ms_ago(hours));
            assert_eq!(app.post_signed(body.as_bytes()).status, 200);
        }

        // Below a floor: refused, naming the flag and --force; nothing deleted.
        for args in [
            &["prune", "--sync-logs-older-than", "1s"][..],
            &["prune", "--signals-older-than", "1h"][..],
        ] {
            let out = run(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(args[1]) && stderr(&out).contains("--force"),
                "{}",
                stderr(&out)
            );
        }
        // A floor from the settings names the setting.
        let low = [
            ("DATABASE_URL", app.db.url()),
            ("METERHOOK_SIGNAL_RETENTION", "1h"),
        ];
        let out = meterhook(dir.path(), &low, &["prune"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("METERHOOK_SIGNAL_RETENTION"),
            "{}",
            stderr(&out)
        );

        // The dry run counts, deletes nothing; the same windows then delete what it counted.
        let window = [
            "--sync-logs-older-than",
            "0s",
            "--signals-older-than",
            "0s",
            "--force",
            "--json",
        ];
        // 0s: everything written before now. A second's margin is not needed: `before` is now.
        let mut dry = vec!["prune", "--dry-run"];
        dry.extend_from_slice(&window);
        let counted = json(&run(&dry));
        assert_eq!(counted["dry_run"], true);
        let logs = counted["sync_logs"]["deleted"].as_u64().expect("count");
        let signals = counted["signal_values"]["deleted"].as_u64().expect("count");
        assert_eq!(logs, 2, "{counted}");
        assert_eq!(signals, 2, "{counted}");
        // Events younger than 7 days are never pruned, and the dry run says so.
        assert_eq!(counted["events"], serde_json::Value::Null);
        let counted = json(&run(&[
            "prune",
            "--dry-run",
            "--older-than",
            "7d",
            "--json",
        ]));
        assert_eq!(counted["events"]["deleted"], 0, "{counted}");
        assert_eq!(app.event_count(), 2);

        let mut real = vec!["prune"];
        real.extend_from_slice(&window);
        let pruned = json(&run(&real));
        assert_eq!(pruned["dry_run"], false);
        assert_eq!(pruned["sync_logs"]["deleted"].as_u64(), Some(logs));
        assert_eq!(pruned["signal_values"]["deleted"].as_u64(), Some(signals));
        let again = json(&run(&dry));
        assert_eq!(again["sync_logs"]["deleted"], 0);
        // The human summary says what a dry run would do.
        let text = ok(&run(&["prune", "--dry-run"]));
        assert!(text.contains("would prune 0 signal values"), "{text}");
    }
}
