//! The seed guide's own troubleshooting and monitoring SQL runs against meterhook's schema as the
//! guide writes it: on PostgreSQL verbatim, on SQLite with only `datetime('now', '-24 hours')` in
//! place of the interval (docs/OPERATIONS.md). Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::testing::{received_state, TestDatabase};
use meterhook_store::{connect, now, to_millis, Backend, DatabaseUrl, DbConnection};

#[derive(QueryableByName, Debug)]
struct Recent {
    #[diesel(sql_type = Text)]
    event_id: String,
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Summary {
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Bool)]
    processed: bool,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[derive(QueryableByName, Debug, PartialEq)]
struct SyncRate {
    #[diesel(sql_type = Text)]
    sync_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = BigInt)]
    entries: i64,
}

#[derive(QueryableByName, Debug)]
struct EntryRow {
    #[diesel(sql_type = Nullable<Text>)]
    notes: Option<String>,
}

/// The guide's query, with SQLite's one substitution.
fn as_written(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Postgres => sql.to_owned(),
        Backend::Sqlite => sql.replace(
            "NOW() - INTERVAL '24 hours'",
            "datetime('now', '-24 hours')",
        ),
    }
}

#[test]
fn the_seed_guides_queries_run_as_written() {
    for db in TestDatabase::all() {
        let backend = db.backend();
        let store = db.store();
        store.register_vehicle("sc-1", "car-1").unwrap();
        let at = to_millis(now()).0 - 60_000;
        let reading = Reading::new(Distance::from_metres(12_345_600).unwrap(), Millis(at));
        let batch = [
            received_state("ev-1", "sc-1", Some(reading), Vec::new(), now()),
            received_state("ev-2", "sc-1", None, Vec::new(), now()),
        ];
        store
            .write(|tx| tx.write_batch(&batch, &Policy::default()))
            .unwrap();
        let url = DatabaseUrl::parse(db.url()).unwrap();
        let mut conn: DbConnection = connect(&url, std::time::Duration::from_secs(5)).unwrap();

        // Troubleshooting: the latest events.
        let recent: Vec<Recent> = diesel::sql_query(as_written(
            "SELECT * FROM smartcar_webhook_events ORDER BY created_at DESC LIMIT 10",
            backend,
        ))
        .load(&mut conn)
        .unwrap();
        let mut ids: Vec<&str> = recent.iter().map(|r| r.event_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["ev-1", "ev-2"], "{backend}");

        // Monitoring: the webhook event summary.
        let summary: Vec<Summary> = diesel::sql_query(as_written(
            "SELECT event_type, processed, COUNT(*) AS count FROM smartcar_webhook_events \
             WHERE created_at > NOW() - INTERVAL '24 hours' GROUP BY event_type, processed",
            backend,
        ))
        .load(&mut conn)
        .unwrap();
        assert_eq!(
            summary,
            [Summary {
                event_type: "VEHICLE_STATE".into(),
                processed: true,
                count: 2
            }],
            "{backend}"
        );

        // Monitoring: the sync success rate, counting the syncs that made an entry.
        let rate: Vec<SyncRate> = diesel::sql_query(as_written(
            "SELECT sync_type, status, COUNT(*) AS count, \
             COUNT(data->>'meterEntryId') AS entries FROM smartcar_sync_logs \
             WHERE created_at > NOW() - INTERVAL '24 hours' GROUP BY sync_type, status",
            backend,
        ))
        .load(&mut conn)
        .unwrap();
        assert_eq!(
            rate,
            [SyncRate {
                sync_type: "odometer".into(),
                status: "success".into(),
                count: 1,
                entries: 1
            }],
            "{backend}"
        );

        // The guide's entries query, in meterhook's terms (OPERATIONS.md).
        let entries: Vec<EntryRow> = diesel::sql_query(
            "SELECT * FROM meter_entries WHERE source_type = 'smartcar_webhook' \
             AND notes LIKE '%webhook%'",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(entries.len(), 1, "{backend}");
        assert_eq!(
            entries[0].notes.as_deref(),
            Some("Smartcar webhook event ev-1")
        );
    }
}
