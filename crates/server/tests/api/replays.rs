//! Replays (issue: hardening round 3, point 9): a signed delivery captured long ago and replayed
//! after its event was pruned is refused as `replayed`, and an error report older than its
//! condition's last change changes nothing. SQLite, and PostgreSQL when it is set up.

use std::time::Duration;

use meterhook_store::PoolOptions;
use serde_json::{json, Value};

use crate::helpers::{payload, spawn_app_with};

const VEHICLE: &str = "123e4567-e89b-12d3-a456-426614174000";
const DAY_MS: i64 = 86_400_000;

/// Smartcar's VEHICLE_ERROR fixture as `event_id`, sent `ago_ms` before now, in `state`.
fn error_report(event_id: &str, ago_ms: i64, state: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&payload("v4_vehicle_error.json")).unwrap();
    body["eventId"] = json!(event_id);
    body["meta"]["deliveredAt"] = json!(chrono::Utc::now().timestamp_millis() - ago_ms);
    body["data"]["errors"][0]["state"] = json!(state);
    serde_json::to_vec(&body).unwrap()
}

#[test]
fn an_old_capture_replayed_after_pruning_is_refused_and_stale_reports_change_nothing() {
    for db in meterhook_store::testing::TestDatabase::all() {
        let backend = db.backend();
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.retention = Some(Duration::from_secs(30 * 24 * 3600));
        });
        app.store.register_vehicle(VEHICLE, "car-1").unwrap();
        let open = || app.store.open_errors(VEHICLE).unwrap().len();

        // Opened now, resolved now: closed.
        let opened = app.post_signed(&error_report("e-open", 60_000, "ERROR"));
        assert_eq!(
            opened.json()["outcome"],
            "vehicle_error_recorded",
            "{backend}"
        );
        assert_eq!(open(), 1, "{backend}");
        let resolved = app.post_signed(&error_report("e-resolved", 1_000, "RESOLVED"));
        assert_eq!(
            resolved.json()["outcome"],
            "vehicle_error_recorded",
            "{backend}"
        );
        assert_eq!(open(), 0, "{backend}");

        // A capture of 40 days ago, replayed (its event long pruned): refused, kept for audit,
        // nothing reopened.
        let replay = app.post_signed(&error_report("e-old", 40 * DAY_MS, "ERROR"));
        assert_eq!(replay.status, 200, "{backend}");
        assert_eq!(replay.json()["outcome"], "replayed", "{backend}");
        assert_eq!(open(), 0, "{backend}");
        assert_eq!(app.outcome("e-old"), "replayed");

        // A late retry sent before the resolution (and still within the retention): older than
        // the condition's last change, so it changes nothing either.
        let late = app.post_signed(&error_report("e-late", 30_000, "ERROR"));
        assert_eq!(
            late.json()["outcome"],
            "vehicle_error_recorded",
            "{backend}"
        );
        assert_eq!(
            open(),
            0,
            "a stale report reopened the condition on {backend}"
        );

        // A new report is taken as usual.
        let again = app.post_signed(&error_report("e-new", 0, "ERROR"));
        assert_eq!(
            again.json()["outcome"],
            "vehicle_error_recorded",
            "{backend}"
        );
        assert_eq!(open(), 1, "{backend}");
    }
}

#[test]
fn without_retention_every_id_is_kept_and_old_captures_are_judged_on_their_id() {
    let app = spawn_app_with(
        meterhook_store::testing::TestDatabase::sqlite(),
        PoolOptions::default(),
        |_| {},
    );
    app.store.register_vehicle(VEHICLE, "car-1").unwrap();
    let old = error_report("e-old", 400 * DAY_MS, "ERROR");
    assert_eq!(
        app.post_signed(&old).json()["outcome"],
        "vehicle_error_recorded"
    );
    // The same capture again: its id stops it.
    assert_eq!(app.post_signed(&old).json()["status"], "duplicate");
}

/// Hardening round 3, point 11: once a vehicle is deactivated (its owner disconnected it), a
/// delivery for it keeps only the audit record of the event: no signal value, no meter entry.
#[test]
fn a_deactivated_vehicles_deliveries_keep_only_their_audit_record() {
    for db in meterhook_store::testing::TestDatabase::all() {
        let backend = db.backend();
        let app = spawn_app_with(db, PoolOptions::default(), |_| {});
        app.store.register_vehicle("sc-off", "car-off").unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let first = crate::helpers::odometer_event("s-1", "sc-off", 1_000.0, "km", now - 60_000);
        assert_eq!(
            app.post_signed(first.as_bytes()).json()["outcome"],
            "created"
        );
        assert_eq!(app.store.latest_signals("car-off").unwrap().len(), 1);

        app.store.set_vehicle_active("sc-off", false).unwrap();
        let later = crate::helpers::odometer_event("s-2", "sc-off", 1_010.0, "km", now);
        let answer = app.post_signed(later.as_bytes());
        assert_eq!(answer.json()["outcome"], "inactive_vehicle", "{backend}");
        // The event is kept for audit; nothing else of it.
        assert_eq!(app.outcome("s-2"), "inactive_vehicle");
        let signals = app.store.latest_signals("car-off").unwrap();
        assert_eq!(signals.len(), 1, "{backend}");
        assert_eq!(signals[0].event_id, "s-1", "{backend}");
        assert_eq!(app.store.list_entries("car-off", true).unwrap().len(), 1);
    }
}
