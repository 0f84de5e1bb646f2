//! Repository tests, run on SQLite always and on PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Barrier};
use std::thread;

use chrono::TimeDelta;
use meterhook_domain::{Distance, DistanceUnit, Millis, Outcome, Policy, Reading};
use meterhook_store::testing::TestDatabase;
use meterhook_store::{
    migration_names, now, revert_all_migrations, run_migrations, Arrival, Backend, Delivery,
    ErrorReport, NewEvent, NewSignal, Odometer, Processed, Receipt, Recorded, Reprocess, Store,
    StoreError, Work,
};

const H: i64 = Millis::HOUR;
const T0: i64 = 1_769_852_860_000;

fn each_backend(test: impl Fn(&Store)) {
    for db in TestDatabase::all() {
        let store = db.store();
        eprintln!("-- on {}", db.backend());
        test(&store);
    }
}

fn km(value: f64, at: i64) -> Reading {
    Reading::new(
        Distance::from_value(value, DistanceUnit::Kilometres).unwrap(),
        Millis(at),
    )
}

fn record(store: &Store, event_id: &str) -> Recorded {
    store
        .record_event(&NewEvent::pending(
            event_id,
            "VEHICLE_STATE",
            Some("sc-1"),
            "{}",
            now(),
        ))
        .unwrap()
}

/// Processes a stored event of `sc-1` with `work`, as a batch of one.
fn process_with(store: &Store, event_id: &str, work: Work, policy: &Policy) -> Receipt {
    process_of(store, "sc-1", event_id, work, policy)
}

/// Processes a stored event of `vehicle` with `work`, as a batch of one.
fn process_of(
    store: &Store,
    vehicle: &str,
    event_id: &str,
    work: Work,
    policy: &Policy,
) -> Receipt {
    let item = Delivery {
        event_id: event_id.to_owned(),
        event_type: "VEHICLE_STATE".to_owned(),
        smartcar_vehicle_id: Some(vehicle.to_owned()),
        arrival: Arrival::Stored { attempts: 0 },
        work,
    };
    store
        .write(|tx| tx.write_batch(&[item], policy))
        .unwrap()
        .remove(0)
}

/// The result of processing, which must have happened now.
fn processed(receipt: Receipt) -> Processed {
    match receipt {
        Receipt::Processed(result) => result,
        Receipt::AlreadyReceived => panic!("not processed"),
    }
}

/// Processes a stored odometer reading of `sc-1` with `policy`.
fn process_reading(store: &Store, event_id: &str, reading: Reading, policy: &Policy) -> Receipt {
    let work = Work::State {
        signals: Vec::new(),
        odometer: Odometer::Reading {
            reading,
            correction: None,
        },
        test: false,
    };
    process_with(store, event_id, work, policy)
}

/// Processes a stored VEHICLE_ERROR of `sc-1`.
fn process_errors(store: &Store, event_id: &str, reports: &[ErrorReport]) -> Processed {
    let data = serde_json::json!({"errors": []}).to_string();
    let work = Work::Errors {
        reports: reports.to_vec(),
        data,
    };
    processed(process_with(store, event_id, work, &Policy::default()))
}

/// Processes a stored state event of `sc-1` with these signals and no odometer.
fn process_signals(store: &Store, event_id: &str, signals: &[NewSignal]) {
    record(store, event_id);
    let work = Work::State {
        signals: signals.to_vec(),
        odometer: Odometer::Missing,
        test: false,
    };
    processed(process_with(store, event_id, work, &Policy::default()));
}

/// Records and processes one odometer reading for `sc-1`, returning the outcome.
fn ingest(store: &Store, event_id: &str, reading: Reading) -> Outcome {
    record(store, event_id);
    processed(process_reading(
        store,
        event_id,
        reading,
        &Policy::default(),
    ))
    .outcome
}

fn entry_values(store: &Store, vehicle_id: &str) -> Vec<i64> {
    store
        .list_entries(vehicle_id, false)
        .unwrap()
        .iter()
        .map(|e| e.value_m)
        .collect()
}

#[test]
fn migrations_run_up_down_up_and_folders_stay_in_step() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    let list = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!("{root}/{backend}"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(list("sqlite"), list("postgres"));
    // Each backend built in embeds every migration of its folder.
    for (backend, folder) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        let embedded = migration_names(backend);
        let built = match backend {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
        };
        if built {
            let versions: Vec<String> = list(folder);
            assert_eq!(embedded.len(), versions.len(), "{backend}");
        }
    }

    for db in TestDatabase::all() {
        let url = meterhook_store::DatabaseUrl::parse(db.url()).unwrap();
        let mut conn = meterhook_store::connect(&url, std::time::Duration::from_secs(5)).unwrap();
        let total = migration_names(db.backend()).len();
        assert_eq!(
            run_migrations(&mut conn).unwrap(),
            total,
            "{}",
            db.backend()
        );
        assert_eq!(run_migrations(&mut conn).unwrap(), 0);
        assert_eq!(revert_all_migrations(&mut conn).unwrap(), total);
        assert_eq!(run_migrations(&mut conn).unwrap(), total);
        drop(conn);
        // The schema works after the round trip.
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        assert_eq!(store.list_vehicles().unwrap().len(), 1);
    }
}

#[test]
fn sqlite_runs_with_full_durability() {
    use diesel::prelude::*;
    let db = TestDatabase::sqlite();
    let url = meterhook_store::DatabaseUrl::parse(db.url()).unwrap();
    let mut conn = meterhook_store::connect(&url, std::time::Duration::from_secs(5)).unwrap();
    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let mut pragma = |name: &str, column: &str| {
        diesel::sql_query(format!(
            "SELECT CAST({column} AS TEXT) AS v FROM pragma_{name}"
        ))
        .get_result::<Pragma>(&mut conn)
        .unwrap()
        .v
    };
    assert_eq!(pragma("journal_mode", "journal_mode"), "wal");
    assert_eq!(pragma("synchronous", "synchronous"), "2"); // FULL
    assert_eq!(pragma("foreign_keys", "foreign_keys"), "1");
    assert_eq!(pragma("busy_timeout", "timeout"), "5000");
}

#[test]
fn vehicles_register_list_activate() {
    each_backend(|store| {
        let v = store.register_vehicle("sc-1", "car-1").unwrap();
        assert_eq!(
            (
                v.smartcar_vehicle_id.as_str(),
                v.vehicle_id.as_str(),
                v.is_active
            ),
            ("sc-1", "car-1", true)
        );
        store.register_vehicle("sc-2", "car-2").unwrap();
        assert!(!store.set_vehicle_active("sc-1", false).unwrap().is_active);
        assert!(!store.find_vehicle("sc-1").unwrap().unwrap().is_active);
        // Registering again re-points and re-activates; no second row.
        let again = store.register_vehicle("sc-1", "car-9").unwrap();
        assert_eq!(
            (again.vehicle_id.as_str(), again.is_active, again.id),
            ("car-9", true, v.id)
        );
        let all = store.list_vehicles().unwrap();
        assert_eq!(
            all.iter()
                .map(|v| v.smartcar_vehicle_id.as_str())
                .collect::<Vec<_>>(),
            ["sc-1", "sc-2"]
        );
        assert!(store.find_vehicle("nope").unwrap().is_none());
        assert!(store.set_vehicle_active("nope", true).is_err());
        assert!(store.register_vehicle("", "car").is_err());
    });
}

#[test]
fn events_are_recorded_once() {
    each_backend(|store| {
        assert_eq!(record(store, "ev-1"), Recorded::New);
        assert_eq!(record(store, "ev-1"), Recorded::AlreadyReceived);
        assert_eq!(record(store, "ev-2"), Recorded::New);
        let events = store.recent_events(10).unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["ev-2", "ev-1"]
        );
        assert!(events
            .iter()
            .all(|e| !e.processed && e.outcome == "pending"));
        let stored = store.find_event("ev-1").unwrap().unwrap();
        assert_eq!(stored.payload, "{}");
    });
}

#[test]
fn odometer_rules_on_stored_readings() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        assert_eq!(ingest(store, "e1", km(1000.0, T0)), Outcome::Created);
        // The same value within the hour: skipped.
        assert_eq!(
            ingest(store, "e2", km(1000.0, T0 + H / 2)),
            Outcome::Duplicate
        );
        // Lower than the reading before it: kept out.
        assert_eq!(
            ingest(store, "e3", km(990.0, T0 + H)),
            Outcome::OutOfSequence
        );
        // Later and higher: accepted.
        assert_eq!(
            ingest(store, "e4", km(1100.0, T0 + 2 * H)),
            Outcome::Created
        );
        // A late reading for an earlier time that fits between its neighbours: accepted.
        assert_eq!(ingest(store, "e5", km(1050.0, T0 + H)), Outcome::Created);
        // A late reading higher than the later one: kept out.
        assert_eq!(
            ingest(store, "e6", km(1200.0, T0 + H + H / 2)),
            Outcome::OutOfSequence
        );
        // An impossible jump: 5000 km in an hour.
        assert_eq!(
            ingest(store, "e7", km(6100.0, T0 + 3 * H)),
            Outcome::ImplausibleJump
        );
        assert_eq!(
            entry_values(store, "car-1"),
            [1_000_000, 1_050_000, 1_100_000]
        );

        let entries = store.list_entries("car-1", false).unwrap();
        assert_eq!(entries[0].source_type, "smartcar_webhook");
        assert_eq!(entries[0].event_id.as_deref(), Some("e1"));
        assert_eq!(
            entries[0].notes.as_deref(),
            Some("Smartcar webhook event e1")
        );
        assert_eq!(
            meterhook_store::to_millis(entries[0].entry_date),
            Millis(T0)
        );

        // The sync log names the entry made, and what a refused reading was compared with.
        let log = store.sync_logs_for_event("e1").unwrap();
        let data: serde_json::Value = serde_json::from_str(&log[0].data).unwrap();
        assert_eq!(data["meterEntryId"], entries[0].id);
        assert_eq!(
            (log[0].status.as_str(), log[0].outcome.as_str()),
            ("success", "created")
        );
        let log = store.sync_logs_for_event("e3").unwrap();
        let data: serde_json::Value = serde_json::from_str(&log[0].data).unwrap();
        assert_eq!(data["comparedWith"]["valueKm"], 1000.0);
        assert!(data.get("meterEntryId").is_none());
        assert_eq!(log[0].status, "rejected");

        let event = store.find_event("e3").unwrap().unwrap();
        assert!(event.processed);
        assert_eq!(event.outcome, "out_of_sequence");
        assert_eq!(event.attempts, 1);
    });
}

#[test]
fn unknown_and_inactive_vehicles_are_kept_with_their_outcome() {
    each_backend(|store| {
        assert_eq!(ingest(store, "e1", km(10.0, T0)), Outcome::UnknownVehicle);
        store.register_vehicle("sc-1", "car-1").unwrap();
        store.set_vehicle_active("sc-1", false).unwrap();
        assert_eq!(ingest(store, "e2", km(11.0, T0)), Outcome::InactiveVehicle);
        assert!(entry_values(store, "car-1").is_empty());
        assert_eq!(
            store.find_event("e1").unwrap().unwrap().outcome,
            "unknown_vehicle"
        );
    });
}

#[test]
fn an_event_is_processed_once() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        record(store, "e1");
        let first = processed(process_reading(
            store,
            "e1",
            km(5.0, T0),
            &Policy::default(),
        ));
        let second = process_reading(store, "e1", km(5.0, T0), &Policy::default());
        assert_eq!(first.outcome, Outcome::Created);
        assert_eq!(second, Receipt::AlreadyReceived);
        assert_eq!(store.find_event("e1").unwrap().unwrap().outcome, "created");
        assert_eq!(entry_values(store, "car-1"), [5_000]);
    });
}

#[test]
fn concurrent_deliveries_of_one_event_are_processed_once() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        let threads = 16;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let recorded = record(&store, "same");
                    let item = Delivery {
                        event_id: "same".to_owned(),
                        event_type: "VEHICLE_STATE".to_owned(),
                        smartcar_vehicle_id: Some("sc-1".to_owned()),
                        arrival: Arrival::Stored { attempts: 0 },
                        work: Work::State {
                            signals: Vec::new(),
                            odometer: Odometer::Reading {
                                reading: km(42.0, T0),
                                correction: None,
                            },
                            test: false,
                        },
                    };
                    // A conflict: another writer processed it meanwhile, and this one wrote
                    // nothing.
                    let processed_now =
                        match store.write(|tx| tx.write_batch(&[item], &Policy::default())) {
                            Ok(written) => written[0] != Receipt::AlreadyReceived,
                            Err(StoreError::Conflict(_)) => false,
                            Err(e) => panic!("{e}"),
                        };
                    (recorded, processed_now)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|(r, _)| *r == Recorded::New).count(),
            1,
            "{}",
            db.backend()
        );
        assert_eq!(
            results.iter().filter(|(_, now)| *now).count(),
            1,
            "{}",
            db.backend()
        );
        assert_eq!(entry_values(&store, "car-1"), [42_000]);
        assert_eq!(store.sync_logs_for_event("same").unwrap().len(), 1);
    }
}

#[test]
fn concurrent_readings_of_one_vehicle_keep_the_sequence() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        // Readings every 10 minutes whose values are scrambled against their times, arriving at
        // once: any reading judged against stale neighbours breaks the order of the entries.
        let n = 64;
        let no_speed_limit = Policy {
            max_speed_kmh: 0,
            ..Policy::default()
        };
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                thread::spawn(move || {
                    let value = 1000.0 + 5.0 * ((i * 37 + 11) % n) as f64;
                    let id = format!("e{i}");
                    barrier.wait();
                    record(&store, &id);
                    processed(process_reading(
                        &store,
                        &id,
                        km(value, T0 + i as i64 * 600_000),
                        &no_speed_limit,
                    ))
                    .outcome
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let entries = store.list_entries("car-1", false).unwrap();
        assert!(!entries.is_empty());
        for pair in entries.windows(2) {
            assert!(pair[0].entry_date <= pair[1].entry_date);
            assert!(
                pair[0].value_m <= pair[1].value_m,
                "{} on {}: {:?}",
                db.backend(),
                pair[0].value_m,
                pair[1].value_m
            );
        }
        let events = store.recent_events(1000).unwrap();
        assert_eq!(events.len(), n);
        assert!(events.iter().all(|e| e.processed));
    }
}

fn report(error_type: &str, code: &str, resolved: bool) -> ErrorReport {
    ErrorReport {
        error_type: error_type.into(),
        code: code.into(),
        resolved,
        suggested_user_message: Some("Open the car's app".into()),
        ..ErrorReport::default()
    }
}

#[test]
fn vehicle_errors_open_and_resolve() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        let data = serde_json::json!({"errors": []});
        record(store, "err-1");
        let result = process_errors(
            store,
            "err-1",
            &[
                report("VEHICLE_STATE", "ASLEEP", false),
                report("PERMISSION", "X", false),
            ],
        );
        assert_eq!(result.outcome, Outcome::VehicleErrorRecorded);
        let v = store.find_vehicle("sc-1").unwrap().unwrap();
        assert_eq!(
            v.last_error.as_deref(),
            Some("VEHICLE_STATE:ASLEEP; PERMISSION:X")
        );
        assert!(v.last_error_at.is_some());
        let log = store.sync_logs_for_event("err-1").unwrap();
        assert_eq!(
            (log[0].sync_type.as_str(), log[0].status.as_str()),
            ("vehicle_error", "success")
        );

        // The same condition again refreshes it; a RESOLVED closes only its own type and code.
        record(store, "err-2");
        process_errors(store, "err-2", &[report("VEHICLE_STATE", "ASLEEP", false)]);
        assert_eq!(store.open_errors("sc-1").unwrap().len(), 2);
        record(store, "err-3");
        process_errors(store, "err-3", &[report("VEHICLE_STATE", "ASLEEP", true)]);
        let open = store.open_errors("sc-1").unwrap();
        assert_eq!(
            open.iter().map(|e| e.label()).collect::<Vec<_>>(),
            ["PERMISSION:X"]
        );
        assert_eq!(
            open[0].suggested_user_message.as_deref(),
            Some("Open the car's app")
        );
        assert_eq!(
            store
                .find_vehicle("sc-1")
                .unwrap()
                .unwrap()
                .last_error
                .as_deref(),
            Some("PERMISSION:X")
        );
        record(store, "err-4");
        process_errors(store, "err-4", &[report("PERMISSION", "X", true)]);
        assert!(store.open_errors_for_vehicle("car-1").unwrap().is_empty());
        assert_eq!(
            store.find_vehicle("sc-1").unwrap().unwrap().last_error,
            None
        );

        record(store, "err-5");
        let reports = [report("A", "B", false)];
        let data = data.to_string();
        let work = Work::Errors {
            reports: reports.to_vec(),
            data: data.clone(),
        };
        let unknown = processed(process_of(
            store,
            "sc-404",
            "err-5",
            work,
            &Policy::default(),
        ));
        assert_eq!(unknown.outcome, Outcome::UnknownVehicle);
    });
}

fn signal(code: &str, value: Option<f64>, unit: Option<&str>, at: i64) -> NewSignal {
    NewSignal {
        code: code.into(),
        value,
        unit: unit.map(str::to_owned),
        raw: format!(r#"{{"code":"{code}"}}"#),
        observed_at: Millis(at),
    }
}

#[test]
fn signals_are_kept_once_with_latest_and_history() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        let first = [
            signal(
                "tractionbattery-stateofcharge",
                Some(80.0),
                Some("percent"),
                T0,
            ),
            signal("location-preciselocation", None, None, T0),
        ];
        process_signals(store, "e1", &first);
        // The same observations again (Smartcar sends every subscribed signal each time).
        process_signals(store, "e2", &first);
        let later = [signal(
            "tractionbattery-stateofcharge",
            Some(75.5),
            Some("percent"),
            T0 + H,
        )];
        process_signals(store, "e3", &later);
        let latest = store.latest_signals("car-1").unwrap();
        assert_eq!(latest.len(), 2);
        let soc = latest
            .iter()
            .find(|s| s.code == "tractionbattery-stateofcharge")
            .unwrap();
        assert_eq!(
            (soc.value, soc.unit.as_deref(), soc.event_id.as_str()),
            (Some(75.5), Some("percent"), "e3")
        );
        let history = store
            .signal_history("car-1", "tractionbattery-stateofcharge", 10)
            .unwrap();
        assert_eq!(
            history
                .iter()
                .map(|s| (s.value, s.event_id.as_str()))
                .collect::<Vec<_>>(),
            [(Some(75.5), "e3"), (Some(80.0), "e1")]
        );
        assert!(store.latest_signals("car-unknown").unwrap().is_empty());
    });
}

#[test]
fn refused_readings_are_kept_void_and_can_be_unvoided() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        ingest(store, "e1", km(1000.0, T0));
        assert_eq!(
            ingest(store, "e2", km(900.0, T0 + H)),
            Outcome::OutOfSequence
        );
        assert_eq!(ingest(store, "e3", km(1000.0, T0 + 1)), Outcome::Duplicate);
        let all = store.list_entries("car-1", true).unwrap();
        assert_eq!(all.len(), 2, "duplicates are not kept again");
        let void = all.iter().find(|e| e.void).unwrap();
        assert_eq!(void.value_m, 900_000);
        assert!(void
            .void_reason
            .as_deref()
            .unwrap()
            .contains("lower than the earlier reading"));
        let log: serde_json::Value =
            serde_json::from_str(&store.sync_logs_for_event("e2").unwrap()[0].data).unwrap();
        assert_eq!(log["voidEntryId"], void.id);
        assert!(log.get("meterEntryId").is_none());

        // Unvoid re-checks the rules and says why it refuses.
        let refused = store
            .unvoid_entry(void.id, &Policy::default())
            .unwrap()
            .unwrap_err();
        assert!(matches!(refused, meterhook_store::UnvoidRefusal::Rules(_)));
        // Void the reading it contradicts; now it fits.
        let first = all.iter().find(|e| !e.void).unwrap();
        assert!(
            store
                .void_entry(first.id, "odometer replaced")
                .unwrap()
                .void
        );
        let back = store
            .unvoid_entry(void.id, &Policy::default())
            .unwrap()
            .unwrap();
        assert!(!back.void && back.void_reason.is_none());
        assert_eq!(entry_values(store, "car-1"), [900_000]);
        assert_eq!(
            store
                .unvoid_entry(void.id, &Policy::default())
                .unwrap()
                .unwrap_err(),
            meterhook_store::UnvoidRefusal::NotVoid
        );
        assert!(store.void_entry(999_999, "x").is_err());
        assert!(store.void_entry(first.id, " ").is_err());

        // Pages, newest first.
        ingest(store, "e4", km(950.0, T0 + 2 * H));
        let page = store.entries_page("car-1", false, 1, None).unwrap();
        assert_eq!(page[0].value_m, 950_000);
        let next = store
            .entries_page("car-1", false, 1, Some(page[0].cursor()))
            .unwrap();
        assert_eq!(next[0].value_m, 900_000);
        assert!(store
            .entries_page("car-1", false, 1, Some(next[0].cursor()))
            .unwrap()
            .is_empty());
        assert_eq!(
            store.entries_page("car-1", true, 10, None).unwrap().len(),
            3
        );
        // A newer reading that arrives meanwhile does not shift the next page.
        ingest(store, "e5", km(990.0, T0 + 3 * H));
        assert_eq!(
            store
                .entries_page("car-1", false, 1, Some(page[0].cursor()))
                .unwrap(),
            next
        );
    });
}

#[test]
fn monitoring_figures() {
    each_backend(|store| {
        let since = now() - TimeDelta::hours(1);
        store.register_vehicle("sc-1", "car-1").unwrap();
        ingest(store, "e1", km(100.0, T0));
        ingest(store, "e2", km(100.0, T0 + 1));
        ingest(store, "e3", km(200.0, T0 + 2 * H));
        ingest(store, "e4", km(150.0, T0 + 3 * H));
        record(store, "e5");
        store
            .record_event(&NewEvent::pending(
                "e6",
                "VEHICLE_ERROR",
                Some("sc-1"),
                "{}",
                now(),
            ))
            .unwrap();
        let work = Work::Complete {
            outcome: Outcome::InvalidReading,
            error: Some("bad unit".to_owned()),
        };
        processed(process_with(store, "e6", work, &Policy::default()));
        let stats = store.stats(since).unwrap();
        assert_eq!(stats.events_total, 6);
        assert_eq!(stats.pending, 1);
        // 5 processed, one of them an error.
        assert!(
            (stats.processing_success_rate - 0.8).abs() < 1e-9,
            "{stats:?}"
        );
        // 4 odometer syncs, one duplicate.
        assert!((stats.duplicate_rate - 0.25).abs() < 1e-9, "{stats:?}");
        assert!((stats.error_rate - 1.0 / 6.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.syncs_total, 4);
        assert_eq!(stats.syncs_success, 2);
        let state: Vec<_> = stats
            .events_by_type
            .iter()
            .map(|t| (t.event_type.as_str(), t.processed, t.count))
            .collect();
        assert_eq!(
            state,
            [
                ("VEHICLE_ERROR", true, 1),
                ("VEHICLE_STATE", false, 1),
                ("VEHICLE_STATE", true, 4)
            ]
        );
        // Nothing in a window that starts later.
        assert_eq!(
            store
                .stats(now() + TimeDelta::hours(1))
                .unwrap()
                .events_total,
            0
        );
    });
}

#[test]
fn status_page_reads() {
    each_backend(|store| {
        // Deliveries by hour: received at chosen times, counted in their UTC hour.
        let hour = |h: u32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
                .and_then(|d| d.and_hms_opt(h, m, 7))
                .unwrap()
        };
        for (id, at) in [
            ("h1", hour(9, 0)),
            ("h2", hour(9, 59)),
            ("h3", hour(10, 30)),
            ("h4", hour(8, 59)),
        ] {
            store
                .record_event(&NewEvent::pending(id, "VEHICLE_STATE", None, "{}", at))
                .unwrap();
        }
        let counts: Vec<_> = store
            .hourly_outcomes(hour(9, 0) - TimeDelta::seconds(7))
            .unwrap()
            .into_iter()
            .map(|c| (c.hour, c.outcome, c.count))
            .collect();
        let at_hour = |h: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .unwrap()
        };
        assert_eq!(
            counts,
            [
                (at_hour(9), "pending".to_owned(), 2),
                (at_hour(10), "pending".to_owned(), 1)
            ]
        );

        // The backlog: never tried, retrying after a failure, dead after the last attempt.
        let retry_at = now() + TimeDelta::hours(1);
        store
            .record_processing_failure("h2", "boom", retry_at, 3)
            .unwrap();
        store
            .record_processing_failure("h3", "boom", retry_at, 1)
            .unwrap();
        let backlog = store.backlog().unwrap();
        assert_eq!((backlog.pending, backlog.retrying, backlog.dead), (2, 1, 1));
        assert_eq!(backlog.unprocessed(), 3);

        // The newest events of one outcome.
        let ids = |events: Vec<meterhook_store::EventSummary>| {
            events.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.recent_events_with(Some(Outcome::Pending), 2).unwrap()),
            ["h4", "h2"]
        );
        assert_eq!(
            ids(store.recent_events_with(Some(Outcome::Dead), 10).unwrap()),
            ["h3"]
        );
        assert!(store
            .recent_events_with(Some(Outcome::Created), 10)
            .unwrap()
            .is_empty());
        assert_eq!(store.recent_events_with(None, 10).unwrap().len(), 4);

        // A vehicle's entries in a window, void ones too; each app vehicle's last active reading.
        store.register_vehicle("sc-1", "car-1").unwrap();
        store.register_vehicle("sc-2", "car-1").unwrap();
        store.register_vehicle("sc-3", "car-3").unwrap();
        ingest(store, "r1", km(100.0, T0));
        ingest(store, "r2", km(200.0, T0 + 2 * H));
        assert_eq!(
            ingest(store, "r3", km(50.0, T0 + 3 * H)),
            Outcome::OutOfSequence
        );
        let since = meterhook_store::to_timestamp(Millis(T0 + H)).unwrap();
        let window = store.entries_since("car-1", since, 10).unwrap();
        let seen: Vec<_> = window.iter().map(|e| (e.value_m, e.void)).collect();
        assert_eq!(seen, [(50_000, true), (200_000, false)]);
        assert_eq!(store.entries_since("car-1", since, 1).unwrap().len(), 1);
        let last: Vec<_> = store
            .last_readings(10)
            .unwrap()
            .into_iter()
            .map(|r| (r.vehicle_id, r.at))
            .collect();
        assert_eq!(
            last,
            [
                (
                    "car-1".to_owned(),
                    meterhook_store::to_timestamp(Millis(T0 + 2 * H))
                ),
                ("car-3".to_owned(), None)
            ]
        );
        assert_eq!(store.last_readings(1).unwrap().len(), 1);

        // Open errors across the fleet.
        record(store, "err-1");
        let owner_only = ErrorReport {
            needs_owner: true,
            ..report("PERMISSION", "", false)
        };
        process_errors(store, "err-1", &[owner_only]);
        let open = store.all_open_errors(10).unwrap();
        assert_eq!(open.len(), 1);
        assert!(open[0].needs_owner);
        assert!(
            store
                .find_vehicle("sc-1")
                .unwrap()
                .unwrap()
                .needs_reconnection
        );
        record(store, "err-2");
        process_errors(store, "err-2", &[report("PERMISSION", "", true)]);
        assert!(store.all_open_errors(10).unwrap().is_empty());
    });
}

#[test]
fn completing_an_event_twice_is_refused() {
    each_backend(|store| {
        record(store, "v1");
        let ignored = || Work::Complete {
            outcome: Outcome::Ignored,
            error: None,
        };
        assert_eq!(
            processed(process_with(store, "v1", ignored(), &Policy::default())).outcome,
            Outcome::Ignored
        );
        assert_eq!(
            process_with(store, "v1", ignored(), &Policy::default()),
            Receipt::AlreadyReceived
        );
        assert_eq!(store.find_event("v1").unwrap().unwrap().outcome, "ignored");
    });
}

#[test]
fn listings_merge_active_and_void_entries_in_order() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        // Active and void entries interleaved in time; two share a reading time.
        let readings = [
            ("a1", 1000.0, T0),
            ("v1", 900.0, T0 + H),
            ("a2", 1100.0, T0 + 2 * H),
            ("v2", 1050.0, T0 + 3 * H),
            ("v3", 1040.0, T0 + 3 * H),
            ("a3", 1200.0, T0 + 4 * H),
            ("v4", 1150.0, T0 + 5 * H),
        ];
        for (id, km_value, at) in readings {
            ingest(store, id, km(km_value, at));
        }
        let all = store.list_entries("car-1", true).unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all.iter().filter(|e| e.void).count(), 4);
        let key = |e: &meterhook_store::MeterEntry| (e.entry_date, e.id);
        assert!(
            all.windows(2).all(|w| key(&w[0]) < key(&w[1])),
            "oldest first"
        );
        assert_eq!(
            store.list_entries("car-1", false).unwrap(),
            all.iter().filter(|e| !e.void).cloned().collect::<Vec<_>>()
        );

        // Pages of two through both kinds: every entry once, newest first.
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store.entries_page("car-1", true, 2, after).unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.cursor());
            paged.extend(page);
        }
        let mut newest_first = all.clone();
        newest_first.reverse();
        assert_eq!(paged, newest_first);

        // Since a time, limited: the newest of both kinds.
        let since = store.entries_since("car-1", all[2].entry_date, 3).unwrap();
        assert_eq!(since, newest_first[..3].to_vec());
        let since = store.entries_since("car-1", all[5].entry_date, 10).unwrap();
        assert_eq!(since, newest_first[..2].to_vec());
    });
}

#[test]
fn background_checkpoints_copy_the_wal_while_the_store_is_open() {
    // The database file grows only when a checkpoint copies pages from the WAL into it.
    fn file_grows(background_checkpoints: bool) -> bool {
        let db = TestDatabase::sqlite();
        let options = meterhook_store::PoolOptions {
            background_checkpoints,
            ..Default::default()
        };
        let store = Store::open(db.url(), &options).unwrap();
        let path = db.url().trim_start_matches("sqlite://").to_owned();
        let size = || std::fs::metadata(&path).unwrap().len();
        // Copy what the migrations wrote, so that only the readings are left in the WAL.
        store.checkpoint().unwrap();
        let before = size();
        store.register_vehicle("sc-1", "car-1").unwrap();
        for i in 0..200 {
            ingest(
                &store,
                &format!("e{i}"),
                km(1000.0 + f64::from(i), T0 + i64::from(i) * H),
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if size() > before {
                return true;
            }
            thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
    assert!(file_grows(true), "the background thread checkpoints");
    assert!(
        !file_grows(false),
        "commits alone checkpoint at 10,000 pages"
    );
}

#[test]
fn under_constant_writes_the_wal_starts_over_instead_of_growing() {
    // 200 MiB of events, one per transaction, with no pause: the background checkpoints and the
    // writer's last copy must let the WAL start over at about RESTART_FRAMES (64 MiB), its file
    // reused, rather than grow by every commit.
    let db = TestDatabase::sqlite();
    let options = meterhook_store::PoolOptions {
        background_checkpoints: true,
        ..Default::default()
    };
    let store = Store::open(db.url(), &options).unwrap();
    let wal = format!("{}-wal", db.url().trim_start_matches("sqlite://"));
    let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(256 * 1024));
    for i in 0..800 {
        let id = format!("big-{i}");
        store
            .record_event(&NewEvent::pending(
                &id,
                "VEHICLE_STATE",
                Some("sc-1"),
                &payload,
                now(),
            ))
            .unwrap();
    }
    let restart = meterhook_store::RESTART_FRAMES as u64 * 4096;
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(
        size < restart * 5 / 2,
        "the WAL grew to {size} bytes for {} written",
        800 * payload.len()
    );
    assert_eq!(
        store
            .stats(now() - TimeDelta::days(1))
            .unwrap()
            .events_total,
        800
    );
}

#[test]
fn reprocessing_by_outcome_removes_the_void_entries_of_those_events_only() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        ingest(store, "e1", km(1000.0, T0));
        for (i, id) in ["low-1", "low-2", "low-3"].iter().enumerate() {
            let at = T0 + (i as i64 + 1) * H;
            assert_eq!(
                ingest(store, id, km(900.0 - i as f64, at)),
                Outcome::OutOfSequence
            );
        }
        assert_eq!(
            ingest(store, "jump", km(9000.0, T0 + 4 * H)),
            Outcome::ImplausibleJump
        );
        let void_events = |store: &Store| -> Vec<String> {
            let mut ids: Vec<String> = store
                .list_entries("car-1", true)
                .unwrap()
                .into_iter()
                .filter(|e| e.void)
                .filter_map(|e| e.event_id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(void_events(store), ["jump", "low-1", "low-2", "low-3"]);

        let reset = store
            .reset_for_reprocess(Reprocess::Outcome(Outcome::OutOfSequence))
            .unwrap();
        let mut ids: Vec<&str> = reset.iter().map(|e| e.event_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["low-1", "low-2", "low-3"]);
        // Their void entries go (they are judged anew); the other refusal's stays.
        assert_eq!(void_events(store), ["jump"]);
        assert_eq!(
            store.find_event("low-2").unwrap().unwrap().outcome,
            "pending"
        );
    });
}

#[test]
fn purging_a_vehicle_erases_what_it_sent_and_nothing_else() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        store.register_vehicle("sc-2", "car-2").unwrap();
        for (i, value) in [100.0, 110.0, 90.0].into_iter().enumerate() {
            ingest(store, &format!("r{i}"), km(value, T0 + i as i64 * H));
        }
        process_signals(
            store,
            "s1",
            &[signal("location-preciselocation", None, None, T0)],
        );
        record(store, "err-1");
        process_errors(store, "err-1", &[report("PERMISSION", "X", false)]);
        // Another car's reading, and an event of sc-1 that waits unprocessed.
        store
            .record_event(&NewEvent::pending(
                "other",
                "VEHICLE_STATE",
                Some("sc-2"),
                "{}",
                now(),
            ))
            .unwrap();
        processed(process_of(
            store,
            "sc-2",
            "other",
            Work::State {
                signals: vec![signal("location-preciselocation", None, None, T0)],
                odometer: Odometer::Reading {
                    reading: km(5.0, T0),
                    correction: None,
                },
                test: false,
            },
            &Policy::default(),
        ));
        record(store, "waiting");
        assert_eq!(store.list_entries("car-1", true).unwrap().len(), 3);

        let purged = store.purge_vehicle("sc-1").unwrap();
        assert_eq!(purged.vehicle.vehicle_id, "car-1");
        assert_eq!(
            (purged.entries, purged.signals, purged.errors, purged.events),
            (3, 1, 1, 6)
        );
        assert!(purged.sync_logs >= 4, "{purged:?}");
        assert!(store.find_vehicle("sc-1").unwrap().is_none());
        assert!(store.list_entries("car-1", true).unwrap().is_empty());
        assert!(store.latest_signals("car-1").unwrap().is_empty());
        assert!(store.open_errors("sc-1").unwrap().is_empty());
        for id in ["r0", "r1", "r2", "s1", "err-1", "waiting"] {
            assert!(store.find_event(id).unwrap().is_none(), "{id}");
            assert!(store.sync_logs_for_event(id).unwrap().is_empty(), "{id}");
        }
        // The other car keeps everything.
        assert!(store.find_vehicle("sc-2").unwrap().is_some());
        assert_eq!(entry_values(store, "car-2"), [5_000]);
        assert_eq!(store.latest_signals("car-2").unwrap().len(), 1);
        assert!(store.find_event("other").unwrap().is_some());
        assert!(!store.sync_logs_for_event("other").unwrap().is_empty());
        // Once gone, it is not found.
        assert!(matches!(
            store.purge_vehicle("sc-1"),
            Err(StoreError::NotFound(_))
        ));

        // Two Smartcar vehicles feeding one app vehicle: only the purged one's entries go.
        store.register_vehicle("sc-a", "car-x").unwrap();
        store.register_vehicle("sc-b", "car-x").unwrap();
        for (event, vehicle, value, at) in [("xa", "sc-a", 10.0, T0), ("xb", "sc-b", 20.0, T0 + H)]
        {
            store
                .record_event(&NewEvent::pending(
                    event,
                    "VEHICLE_STATE",
                    Some(vehicle),
                    "{}",
                    now(),
                ))
                .unwrap();
            processed(process_of(
                store,
                vehicle,
                event,
                Work::State {
                    signals: Vec::new(),
                    odometer: Odometer::Reading {
                        reading: km(value, at),
                        correction: None,
                    },
                    test: false,
                },
                &Policy::default(),
            ));
        }
        assert_eq!(entry_values(store, "car-x"), [10_000, 20_000]);
        let purged = store.purge_vehicle("sc-a").unwrap();
        assert_eq!((purged.entries, purged.events), (1, 1));
        assert_eq!(entry_values(store, "car-x"), [20_000]);
        assert!(store.find_vehicle("sc-b").unwrap().is_some());
    });
}
