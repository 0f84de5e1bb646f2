//! The record of changes is written by the write path in the same transaction as each change:
//! entries written (active and void), voided and unvoided (by an operator and by self-healing),
//! error conditions opened and resolved, a vehicle needing its owner and answering again. A
//! transaction rolled back leaves no record, and positions have no gap. SQLite always,
//! PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use diesel::prelude::*;
use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::schema::changes;
use meterhook_store::testing::{received_state, TestDatabase};
use meterhook_store::{
    connect, now, Arrival, DatabaseUrl, Delivery, ErrorReport, Store, StoreError, Work,
};

const T0: i64 = 1_769_852_860_000;
const H: i64 = Millis::HOUR;

fn km(km: i64, at: i64) -> Reading {
    Reading::new(Distance::from_metres(km * 1_000).unwrap(), Millis(at))
}

fn reading(id: &str, value: Reading) -> Delivery {
    received_state(id, "sc-1", Some(value), Vec::new(), now())
}

fn error(id: &str, code: &str, resolved: bool) -> Delivery {
    Delivery {
        event_id: id.to_owned(),
        event_type: "VEHICLE_ERROR".to_owned(),
        smartcar_vehicle_id: Some("sc-1".to_owned()),
        arrival: Arrival::Received {
            payload: "{}".to_owned(),
            received_at: now(),
        },
        work: Work::Errors {
            reports: vec![ErrorReport {
                error_type: "CONNECTED_SERVICES_ACCOUNT".to_owned(),
                code: code.to_owned(),
                resolved,
                needs_owner: true,
                ..ErrorReport::default()
            }],
            data: "{}".to_owned(),
        },
    }
}

fn write(store: &Store, batch: &[Delivery]) {
    store
        .write(|tx| tx.write_batch(batch, &Policy::default()))
        .unwrap();
}

/// (position, type, app vehicle, the object's `void` when it is an entry) of every change.
fn recorded(db: &TestDatabase) -> Vec<(i64, String, Option<String>, Option<bool>)> {
    let url = DatabaseUrl::parse(db.url()).unwrap();
    let mut conn = connect(&url, std::time::Duration::from_secs(5)).unwrap();
    let rows: Vec<(i64, String, Option<String>, String)> = changes::table
        .order(changes::position.asc())
        .select((
            changes::position,
            changes::change_type,
            changes::vehicle_id,
            changes::data,
        ))
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(|(position, kind, vehicle, data)| {
            let data: serde_json::Value = serde_json::from_str(&data).unwrap();
            (position, kind, vehicle, data["void"].as_bool())
        })
        .collect()
}

fn types(db: &TestDatabase) -> Vec<String> {
    recorded(db).into_iter().map(|(_, t, _, _)| t).collect()
}

#[test]
fn every_change_of_the_write_path_is_recorded_in_order_without_gaps() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        let before = recorded(&db).len();
        // Accepted, then refused (lower), in one batch; then an owner-only error, then a state
        // that answers again.
        write(
            &store,
            &[reading("r1", km(100, T0)), reading("r2", km(50, T0 + H))],
        );
        write(&store, &[error("e1", "AUTHENTICATION_FAILED", false)]);
        write(&store, &[reading("r3", km(110, T0 + 2 * H))]);
        let all = recorded(&db);
        let ours = &all[before..];
        let got: Vec<(&str, Option<bool>)> =
            ours.iter().map(|(_, t, _, v)| (t.as_str(), *v)).collect();
        assert_eq!(
            got,
            [
                ("meter_entry.created", Some(false)),
                ("meter_entry.created", Some(true)),
                ("vehicle.error_opened", None),
                ("vehicle.needs_reconnection", None),
                ("vehicle.error_resolved", None),
                ("vehicle.reconnected", None),
                ("meter_entry.created", Some(false)),
            ],
            "{}",
            db.backend()
        );
        assert!(ours
            .iter()
            .all(|(_, _, v, _)| v.as_deref() == Some("car-1")));
        // Positions: 1, 2, 3, … with no gap.
        let positions: Vec<i64> = all.iter().map(|(p, _, _, _)| *p).collect();
        let expected: Vec<i64> = (1..=all.len() as i64).collect();
        assert_eq!(positions, expected);
    }
}

#[test]
fn a_rolled_back_change_leaves_no_record_and_no_gap() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        let before = recorded(&db).len();
        let failed = store.write(|tx| {
            tx.write_batch(&[reading("r1", km(100, T0))], &Policy::default())?;
            Err::<(), _>(StoreError::Invalid("rolled back".into()))
        });
        assert!(failed.is_err());
        assert_eq!(recorded(&db).len(), before, "{}", db.backend());
        assert!(store.list_entries("car-1", true).unwrap().is_empty());
        write(&store, &[reading("r1", km(100, T0))]);
        let positions: Vec<i64> = recorded(&db).iter().map(|(p, _, _, _)| *p).collect();
        let expected: Vec<i64> = (1..=positions.len() as i64).collect();
        assert_eq!(positions, expected, "{}", db.backend());
    }
}

#[test]
fn void_unvoid_and_self_healing_are_recorded() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        write(&store, &[reading("r1", km(100, T0))]);
        let entry = store.list_entries("car-1", false).unwrap()[0].id;
        let start = types(&db).len();
        store.void_entry(entry, "typo").unwrap();
        // Voiding a void entry again only changes its reason: no second change.
        store.void_entry(entry, "typo, really").unwrap();
        store
            .unvoid_entry(entry, &Policy::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            types(&db)[start..],
            ["meter_entry.voided", "meter_entry.unvoided"],
            "{}",
            db.backend()
        );
        // An outlier accepted first (plausible on its own), then three later readings that agree
        // with each other but are lower: self-healing voids it and makes them active.
        write(&store, &[reading("x", km(5_000, T0 + 100 * H))]);
        let start = types(&db).len();
        write(
            &store,
            &[
                reading("a", km(120, T0 + 101 * H)),
                reading("b", km(130, T0 + 102 * H)),
                reading("c", km(140, T0 + 103 * H)),
            ],
        );
        let after: Vec<(String, Option<bool>)> = recorded(&db)[start..]
            .iter()
            .map(|(_, t, _, v)| (t.clone(), *v))
            .collect();
        let count = |kind: &str| after.iter().filter(|(t, _)| t == kind).count();
        assert_eq!(count("meter_entry.created"), 3, "{after:?}");
        assert_eq!(count("meter_entry.voided"), 1, "{after:?}");
        assert_eq!(count("meter_entry.unvoided"), 3, "{after:?}");
        assert!(after
            .iter()
            .filter(|(t, _)| t == "meter_entry.unvoided")
            .all(|(_, void)| *void == Some(false)));
    }
}

/// A void entry says why for people (a sentence with km and UTC date-times) and for programs
/// (the rule, the entry that refused it, the figures), in the object a change records.
#[test]
fn a_void_entry_says_why_for_people_and_for_programs() {
    for db in TestDatabase::all() {
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        write(&store, &[reading("r1", km(51_048, T0))]);
        // 229,000 km ten minutes later.
        write(&store, &[reading("r2", km(280_048, T0 + H / 6))]);
        let url = DatabaseUrl::parse(db.url()).unwrap();
        let mut conn = connect(&url, std::time::Duration::from_secs(5)).unwrap();
        let data: String = changes::table
            .order(changes::position.desc())
            .select(changes::data)
            .first(&mut conn)
            .unwrap();
        let entry: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(entry["void"], true, "{entry}");
        let reason = entry["void_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("implausible jump from 51048 km at 2026-01-31 ")
                && reason.ends_with(" UTC: 1373994 km/h beyond the jump tolerance"),
            "{reason}"
        );
        let detail = &entry["void_detail"];
        assert_eq!(detail["rule"], "implausible_jump", "{entry}");
        assert_eq!(detail["compared_with"]["value_km"], 51048.0, "{entry}");
        assert_eq!(detail["speed_kmh"], 1373994.0, "{entry}");
        let first = store.list_entries("car-1", false).unwrap()[0].id;
        assert_eq!(entry["refused_by"], first, "{entry}");
    }
}

/// `events reprocess` deletes the void entry of a reading it judges anew: the app is told
/// (`meter_entry.deleted`), then told of what the reading makes now. Erasing a vehicle keeps
/// its changes' places with their objects erased, and says so (`vehicle.deleted`).
#[test]
fn reprocessing_and_erasing_are_recorded() {
    for db in TestDatabase::all() {
        let backend = db.backend();
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        write(
            &store,
            &[reading("r1", km(100, T0)), reading("r2", km(50, T0 + H))],
        );
        let void = store.list_entries("car-1", true).unwrap();
        let void_id = void.iter().find(|e| e.void).unwrap().id;
        let start = recorded(&db).len();
        let records = store
            .reset_for_reprocess(meterhook_store::Reprocess::Event("r2"))
            .unwrap();
        assert_eq!(records.len(), 1, "{backend}");
        let after = recorded(&db);
        assert_eq!(after.len(), start + 1, "{backend}");
        assert_eq!(after[start].1, "meter_entry.deleted", "{backend}");
        let url = DatabaseUrl::parse(db.url()).unwrap();
        let mut conn = connect(&url, std::time::Duration::from_secs(5)).unwrap();
        let data: String = changes::table
            .filter(changes::position.eq(after[start].0))
            .select(changes::data)
            .first(&mut conn)
            .unwrap();
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["id"], void_id, "{backend}");
        assert_eq!(data["event_id"], "r2", "{backend}");

        // Erased: every earlier change about it keeps its place, its object gone.
        let positions_before: Vec<i64> = recorded(&db).iter().map(|c| c.0).collect();
        store.purge_vehicle("sc-1").unwrap();
        let rows: Vec<(i64, String, String)> = changes::table
            .order(changes::position.asc())
            .select((changes::position, changes::change_type, changes::data))
            .load(&mut conn)
            .unwrap();
        let (last, earlier) = rows.split_last().unwrap();
        assert_eq!(last.1, "vehicle.deleted", "{backend}");
        assert_eq!(
            earlier.iter().map(|r| r.0).collect::<Vec<_>>(),
            positions_before,
            "{backend}"
        );
        assert!(
            earlier.iter().all(|r| r.2 == r#"{"erased":true}"#),
            "{backend}: {earlier:?}"
        );
    }
}
