//! Nothing acknowledged is lost; nothing deliverable is dropped; processing is retried apart from
//! acknowledgement; concurrency keeps the rules; shutdown is graceful; old events are pruned.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use meterhook_store::testing::TestDatabase;
use meterhook_store::{Backend, PoolOptions};

use crate::helpers::*;

const T0: i64 = 1_769_852_860_000;

/// Runs SQL on the app's database directly.
fn exec(app: &TestApp, sql: &str) {
    let url = meterhook_store::DatabaseUrl::parse(app.db.url()).expect("url");
    let mut conn = meterhook_store::connect(&url, Duration::from_secs(5)).expect("connect");
    conn.batch_execute(sql).expect("sql");
}

/// Makes every meter entry insert fail, as a bug or a failing disk would.
fn break_entry_inserts(app: &TestApp) {
    exec(
        app,
        match app.db.backend() {
            Backend::Sqlite => {
                "CREATE TRIGGER test_fail BEFORE INSERT ON meter_entries \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            }
            Backend::Postgres => {
                "CREATE FUNCTION test_fail() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER test_fail BEFORE INSERT ON meter_entries \
                 FOR EACH ROW EXECUTE FUNCTION test_fail();"
            }
        },
    );
}

fn mend_entry_inserts(app: &TestApp) {
    exec(
        app,
        match app.db.backend() {
            Backend::Sqlite => "DROP TRIGGER test_fail",
            Backend::Postgres => "DROP TRIGGER test_fail ON meter_entries",
        },
    );
}

#[test]
fn failed_processing_is_retried_then_dead_then_reprocessed() {
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.max_attempts = 3;
            s.retry_backoff = Duration::from_millis(100);
        });
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        break_entry_inserts(&app);
        // The delivery still succeeds: the event is stored before processing.
        let answer = app.post_signed(odometer_event("r1", "sc-1", 10.0, "km", T0).as_bytes());
        assert_eq!(
            (answer.status, answer.json()["outcome"].as_str()),
            (200, Some("pending"))
        );
        wait_until(20, "the event to be dead", || app.outcome("r1") == "dead");
        let event = app.store.find_event("r1").expect("query").expect("kept");
        assert_eq!(event.attempts, 3);
        assert!(
            event
                .error
                .as_deref()
                .is_some_and(|e| e.contains("injected failure")),
            "{event:?}"
        );
        let stats = app
            .store
            .stats(meterhook_store::now() - chrono::TimeDelta::hours(1))
            .expect("stats");
        assert_eq!(stats.dead, 1);

        // Visible to the operator, and run again once the cause is fixed.
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];
        let listed = meterhook(&dir, &env, &["events", "list", "--json"]);
        assert!(
            stdout(&listed).contains("\"outcome\":\"dead\""),
            "{}",
            stdout(&listed)
        );
        mend_entry_inserts(&app);
        let out = meterhook(&dir, &env, &["events", "reprocess", "--outcome", "dead"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("r1: created"), "{}", stdout(&out));
        assert!(
            stdout(&out).contains("reprocessed 1 event: 1 created"),
            "{}",
            stdout(&out)
        );
        assert_eq!(stderr(&out), "", "progress drawn without a terminal");
        let out = meterhook(&dir, &env, &["events", "reprocess"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(
            app.store
                .list_entries("car-1", false)
                .expect("entries")
                .len(),
            1
        );
        // By id too; an event that made an entry is never processed twice.
        let out = meterhook(&dir, &env, &["events", "reprocess", "r1"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("has outcome created"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            app.store
                .list_entries("car-1", false)
                .expect("entries")
                .len(),
            1
        );
    }
}

#[test]
fn interrupted_processing_is_picked_up_by_the_retry_pass() {
    let app = spawn_app();
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    // As if the process died between storing and processing: stored long ago, never tried.
    let body = odometer_event("orphan", "sc-1", 77.0, "km", T0);
    let long_ago = meterhook_store::now() - chrono::TimeDelta::minutes(5);
    app.store
        .record_event(&meterhook_store::NewEvent::pending(
            "orphan",
            "VEHICLE_STATE",
            Some("sc-1"),
            &body,
            long_ago,
        ))
        .expect("record");
    wait_until(20, "the orphan to be processed", || {
        app.outcome("orphan") == "created"
    });
}

#[test]
fn events_of_an_unknown_vehicle_are_processed_when_it_is_registered() {
    let app = spawn_app();
    for (id, km, at) in [("w1", 100.0, T0), ("w2", 150.0, T0 + 3_600_000 * 2)] {
        let answer = app.post_signed(odometer_event(id, "sc-late", km, "km", at).as_bytes());
        assert_eq!(answer.json()["outcome"], "unknown_vehicle");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(
        &dir,
        &[("DATABASE_URL", app.db.url())],
        &["vehicles", "add", "sc-late", "--vehicle-id", "car-late"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("processed 2 events that waited for this vehicle (2 meter entries created)"),
        "{}",
        stdout(&out)
    );
    let values: Vec<i64> = app
        .store
        .list_entries("car-late", false)
        .expect("entries")
        .iter()
        .map(|e| e.value_m)
        .collect();
    assert_eq!(values, [100_000, 150_000]);
    assert_eq!(app.outcome("w1"), "created");
}

#[test]
fn a_postgres_outage_is_bridged_by_the_spool() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let pool = PoolOptions {
        connection_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    };
    let app = spawn_app_on(db, pool);
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let send = |id: &str, km: f64, minute: i64| {
        app.post_signed(odometer_event(id, "sc-1", km, "km", T0 + minute * 3_600_000).as_bytes())
    };
    assert_eq!(send("before", 100.0, 0).json()["outcome"], "created");

    let outage = Outage::start(&app);
    let mut spooled = Vec::new();
    for i in 1..=10 {
        let id = format!("during-{i}");
        let answer = send(&id, 100.0 + f64::from(i) * 10.0, i64::from(i));
        assert_eq!(
            (answer.status, answer.json()["status"].as_str()),
            (200, Some("spooled")),
            "{}",
            answer.body
        );
        spooled.push(id);
    }
    // A redelivery during the outage of an event already in PostgreSQL is spooled too…
    assert_eq!(send("before", 100.0, 0).json()["status"], "spooled");
    // Still ready: deliveries are acknowledged, so a load balancer must keep sending them.
    let ready = app.get("/readyz");
    assert_eq!(
        (ready.status, ready.body.contains("spool")),
        (200, true),
        "{}",
        ready.body
    );
    drop(outage);

    // …and the drain stores and processes every event exactly once.
    wait_until(30, "the spool to drain", || {
        spooled.iter().all(|id| {
            app.store
                .find_event(id)
                .ok()
                .flatten()
                .is_some_and(|e| e.processed)
        })
    });
    let entries = app.store.list_entries("car-1", false).expect("entries");
    assert_eq!(entries.len(), 11);
    for id in &spooled {
        assert_eq!(app.outcome(id), "created");
        assert_eq!(app.store.sync_logs_for_event(id).expect("logs").len(), 1);
    }
    assert_eq!(
        app.store.sync_logs_for_event("before").expect("logs").len(),
        1
    );
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn when_the_spool_fails_too_the_answer_is_503() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let pool = PoolOptions {
        connection_timeout: Duration::from_millis(300),
        ..PoolOptions::default()
    };
    let app = spawn_app_on(db, pool);
    let spool = meterhook_store::DatabaseUrl::parse(
        &app.spool_dir.path().join("spool.db").display().to_string(),
    )
    .expect("spool url");
    let mut locker = meterhook_store::connect(&spool, Duration::from_secs(1)).expect("open spool");
    locker
        .batch_execute("BEGIN EXCLUSIVE")
        .expect("lock the spool");
    let _outage = Outage::start(&app);
    let answer = app.post_signed(odometer_event("nowhere", "sc-1", 1.0, "km", T0).as_bytes());
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("5"));
    locker.batch_execute("ROLLBACK").expect("unlock");
}

#[test]
fn fifty_concurrent_deliveries_of_one_event_are_processed_once() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let body = odometer_event("same", "sc-1", 500.0, "km", T0);
        let answers = post_all_at_once(vec![(app.webhook_url(), body); 50]);
        assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
        assert_eq!(
            answers
                .iter()
                .filter(|(_, b)| b.contains("\"accepted\""))
                .count(),
            1
        );
        assert_eq!(
            app.store
                .list_entries("car-1", false)
                .expect("entries")
                .len(),
            1
        );
        assert_eq!(
            app.store.sync_logs_for_event("same").expect("logs").len(),
            1
        );
        assert_eq!(app.event_count(), 1);
    }
}

#[test]
fn two_hundred_concurrent_readings_in_shuffled_order_keep_the_sequence() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let n = 200usize;
        // Values scrambled against their times (every 10 minutes).
        let deliveries = (0..n)
            .map(|i| {
                let km = 1000.0 + ((i * 37 + 11) % n) as f64;
                let body =
                    odometer_event(&format!("c{i}"), "sc-1", km, "km", T0 + i as i64 * 600_000);
                (app.webhook_url(), body)
            })
            .collect();
        for (status, body) in post_all_at_once(deliveries) {
            assert_eq!(status, 200, "{body}");
        }
        assert_in_sequence(&app.store.list_entries("car-1", false).expect("entries"));
        assert_eq!(app.event_count(), n);
        assert_eq!(app.store.unprocessed_count().expect("count"), 0);
    }
}

#[test]
fn sigterm_finishes_in_flight_requests_and_loses_nothing() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)]);
    let dir = server.dir.path().to_path_buf();
    let db = format!("sqlite://{}", dir.join("meterhook.db").display());
    let address = server.address.clone();
    let url = format!("http://{address}/api/smartcar/webhook");
    let setup = meterhook(
        &dir,
        &[("DATABASE_URL", &db)],
        &["vehicles", "add", "sc-1", "--vehicle-id", "car-1"],
    );
    assert!(setup.status.success());

    // Senders post until the server goes away; each notes the ids answered 2xx.
    let barrier = Arc::new(Barrier::new(9));
    let senders: Vec<_> = (0..8)
        .map(|t| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                let mut acked = Vec::new();
                let mut server_errors = 0;
                barrier.wait();
                for i in 0.. {
                    let id = format!("t{t}-{i}");
                    let body =
                        odometer_event(&id, "sc-1", 1000.0 + i as f64, "km", T0 + i * 60_000);
                    let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
                    match agent()
                        .post(&url)
                        .header("SC-Signature", &sig)
                        .send(body.as_bytes())
                    {
                        Ok(r) if r.status().is_success() => acked.push(id),
                        Ok(r) if r.status().is_server_error() => server_errors += 1,
                        Ok(_) => {}
                        Err(_) => break, // connection refused: the server has stopped listening
                    }
                }
                (acked, server_errors)
            })
        })
        .collect();
    barrier.wait();
    // Let some traffic through before the signal: wait for the first stored events.
    wait_until(30, "traffic", || {
        let out = meterhook(
            &dir,
            &[("DATABASE_URL", &db)],
            &["events", "list", "--limit", "20", "--json"],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
            >= 20
    });
    let (status, log) = server.stop();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let mut acked = HashSet::new();
    for s in senders {
        let (ids, server_errors) = s.join().expect("sender");
        assert_eq!(server_errors, 0);
        acked.extend(ids);
    }
    assert!(log.contains("meterhook stopped"), "{log}");

    let out = meterhook(
        &dir,
        &[("DATABASE_URL", &db)],
        &["events", "list", "--limit", "1000000", "--json"],
    );
    let stored: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("events json");
    let stored_ids: HashSet<String> = stored
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect();
    assert!(acked.len() >= 20);
    let missing: Vec<_> = acked.difference(&stored_ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        stored.iter().all(|e| e["processed"] == true),
        "every stored event processed before exit"
    );
}

#[test]
fn prune_keeps_young_unprocessed_and_dead_events() {
    for db in TestDatabase::all() {
        let store = db.store();
        let now = meterhook_store::now();
        let days = |d: i64| now - chrono::TimeDelta::days(d);
        for (id, age, outcome, processed) in [
            ("old-done", 40, "created", true),
            ("old-dup", 31, "duplicate", true),
            ("old-dead", 40, "dead", true),
            ("old-pending", 40, "pending", false),
            ("young-done", 20, "created", true),
            ("week-done", 6, "created", true),
        ] {
            let event = meterhook_store::NewEvent {
                processed,
                outcome,
                ..meterhook_store::NewEvent::pending(id, "VEHICLE_STATE", None, "{}", days(age))
            };
            store.record_event(&event).expect("record");
        }
        assert_eq!(store.prune_events(days(30), 1).expect("prune"), 2);
        let left: HashSet<String> = store
            .recent_events(100)
            .expect("list")
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(
            left,
            ["old-dead", "old-pending", "young-done", "week-done"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        // Asking for less than the redelivery window still keeps the last 7 days.
        assert_eq!(store.prune_events(now, 100).expect("prune"), 1);
        assert!(store.find_event("week-done").expect("query").is_some());
    }
}

#[test]
fn prune_command_refuses_windows_under_seven_days() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    assert!(meterhook(&dir, &[("DATABASE_URL", &db)], &["migrate"])
        .status
        .success());
    let out = meterhook(
        &dir,
        &[("DATABASE_URL", &db)],
        &["prune", "--older-than", "3d"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at least 7d"), "{}", stderr(&out));
    let out = meterhook(
        &dir,
        &[("DATABASE_URL", &db)],
        &["prune", "--older-than", "30d"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("pruned 0 processed events"));
    let out = meterhook(
        &dir,
        &[("DATABASE_URL", &db), ("METERHOOK_RETENTION", "1d")],
        &["vehicles", "list"],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("METERHOOK_RETENTION"));
}

#[test]
fn two_instances_on_one_postgres_process_each_event_once_and_keep_the_sequence() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let shared = db.share();
    let first = spawn_app_on(db, PoolOptions::default());
    let second = spawn_app_on(shared, PoolOptions::default());
    first
        .store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let n = 120usize;
    let urls = [first.webhook_url(), second.webhook_url()];
    let deliveries = (0..n)
        .map(|i| {
            // Every fourth delivery repeats the one before it, byte for byte, to the other
            // instance at the same moment.
            let k = if i % 4 == 1 { i - 1 } else { i };
            let km = 1000.0 + ((k * 37 + 11) % n) as f64;
            let body = odometer_event(&format!("c{k}"), "sc-1", km, "km", T0 + k as i64 * 600_000);
            (urls[i % 2].clone(), body)
        })
        .collect();
    for (status, body) in post_all_at_once(deliveries) {
        assert_eq!(status, 200, "{body}");
        // Straight into PostgreSQL: no deadlock sent a batch to the spool.
        assert!(!body.contains("spooled"), "{body}");
    }
    let events = first.store.recent_events(10_000).expect("events");
    assert_eq!(events.len(), n - n / 4);
    for e in &events {
        assert!(e.processed, "{e:?}");
        // One decision per event; a reading that completed a supersession has its log too.
        let decisions = first
            .store
            .sync_logs_for_event(&e.event_id)
            .expect("logs")
            .into_iter()
            .filter(|log| log.outcome != "superseded")
            .count();
        assert_eq!(decisions, 1, "{}", e.event_id);
    }
    assert_in_sequence(&first.store.list_entries("car-1", false).expect("entries"));
}

/// Deliveries that take the batch path and deliveries that go one by one (vehicle errors, an
/// unusable reading, an event naming no vehicle), all arriving together so that they share
/// batches: each gets its own right answer and its own stored outcome.
#[test]
fn a_concurrent_mix_of_event_kinds_is_answered_and_stored_each_as_alone() {
    for app in spawn_apps() {
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let url = app.webhook_url();
        let mut deliveries = Vec::new();
        let mut expected = Vec::new();
        for i in 0..20 {
            let id = format!("mix-reading-{i}");
            deliveries.push((
                url.clone(),
                odometer_event(&id, "sc-1", 1000.0 + i as f64, "km", T0 + i * 600_000),
            ));
            expected.push((id, "created"));
        }
        for i in 0..5 {
            let id = format!("mix-error-{i}");
            let body = serde_json::json!({
                "eventId": id, "eventType": "VEHICLE_ERROR",
                "data": {"vehicle": {"id": "sc-1"},
                         "errors": [{"type": "VEHICLE_STATE", "code": format!("C{i}"), "state": "ERROR"}]},
                "meta": {"version": "4.0"}
            });
            deliveries.push((url.clone(), body.to_string()));
            expected.push((id, "vehicle_error_recorded"));
        }
        let bad_unit = odometer_event("mix-bad-unit", "sc-1", -5.0, "km", T0);
        deliveries.push((url.clone(), bad_unit));
        expected.push(("mix-bad-unit".into(), "invalid_reading"));
        let stranger = odometer_event("mix-stranger", "sc-unknown", 5.0, "km", T0);
        deliveries.push((url.clone(), stranger));
        expected.push(("mix-stranger".into(), "unknown_vehicle"));
        // A redelivery of a reading, in the same burst.
        deliveries.push((url.clone(), deliveries[0].1.clone()));

        let answers = post_all_at_once(deliveries);
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
        }
        let duplicates = answers
            .iter()
            .filter(|(_, body)| body.contains("\"status\":\"duplicate\""))
            .count();
        assert_eq!(duplicates, 1, "{answers:?}");
        for (id, outcome) in &expected {
            assert_eq!(app.outcome(id), *outcome, "event {id}");
        }
        assert_eq!(app.event_count(), expected.len());
        assert_eq!(
            app.store
                .list_entries("car-1", false)
                .expect("entries")
                .len(),
            20
        );
        assert_eq!(app.store.open_errors("sc-1").expect("errors").len(), 5);
        assert_eq!(app.store.unprocessed_count().expect("count"), 0);
    }
}

/// Signal values and sync logs have their own windows; the summary is JSON on request, and no
/// progress is drawn when stderr is not a terminal.
#[test]
fn prune_deletes_old_signal_values_and_sync_logs_by_their_own_windows() {
    for db in TestDatabase::all() {
        let app = spawn_app_on(db, PoolOptions::default());
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        for (id, km, at) in [
            ("old", 10.0, 1_767_000_000_000),
            ("new", 20.0, 1_767_003_600_000),
        ] {
            let answer = app.post_signed(odometer_event(id, "sc-1", km, "km", at).as_bytes());
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
        // Rows of "old" as if written years ago.
        let url = meterhook_store::DatabaseUrl::parse(app.db.url()).expect("url");
        let mut conn = meterhook_store::connect(&url, Duration::from_secs(5)).expect("connect");
        conn.batch_execute(
            "UPDATE vehicle_signals SET created_at = '2020-01-01 00:00:00' WHERE event_id = 'old'; \
             UPDATE smartcar_sync_logs SET created_at = '2020-01-01 00:00:00' WHERE event_id = 'old'; \
             UPDATE changes SET created_at = '2020-01-01 00:00:00' WHERE position = 1;",
        )
        .expect("age the rows");
        let dir = tempfile::tempdir().expect("tmp");
        let env = [("DATABASE_URL", app.db.url())];

        let out = meterhook(&dir, &env, &["prune", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "progress drawn without a terminal");
        let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        assert_eq!(summary["events"], serde_json::Value::Null, "{summary}");
        assert_eq!(summary["signal_values"]["deleted"], 1, "{summary}");
        assert_eq!(summary["sync_logs"]["deleted"], 1, "{summary}");
        // The registration's change, by the default window (30 days).
        assert_eq!(summary["changes"]["deleted"], 1, "{summary}");
        assert!(app
            .store
            .sync_logs_for_event("old")
            .expect("logs")
            .is_empty());
        assert_eq!(app.store.sync_logs_for_event("new").expect("logs").len(), 1);
        let latest = app.store.latest_signals("car-1").expect("signals");
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].event_id, "new");

        // Windows from the flags; each table kept when its setting is off.
        let out = meterhook(
            &dir,
            &[
                ("DATABASE_URL", app.db.url()),
                ("METERHOOK_SIGNAL_RETENTION", "off"),
                ("METERHOOK_SYNC_LOG_RETENTION", "off"),
            ],
            &["prune", "--older-than", "30d"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).lines().skip(1).take(2).collect::<Vec<_>>(),
            [
                "signal values kept (METERHOOK_SIGNAL_RETENTION is off)",
                "sync logs kept (METERHOOK_SYNC_LOG_RETENTION is off)"
            ]
        );
        let out = meterhook(&dir, &env, &["prune", "--signals-older-than", "1000000y"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(app.store.sync_logs_for_event("new").expect("logs").len(), 1);
    }
}
