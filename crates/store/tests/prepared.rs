//! The write path runs only statements prepared once per connection: after a first batch, batches
//! of other sizes, with other vehicles and refused readings, run the same statements again from
//! Diesel's cache, none parsed anew. Each statement is captured as Diesel runs it and as it enters
//! the cache (Diesel's process-wide default instrumentation, so this file is its own process).
//! Run on SQLite always and on PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Mutex;

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::testing::{received_state, TestDatabase};
use meterhook_store::{now, to_timestamp, Delivery, NewSignal, PoolOptions, Store};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A statement run, its SQL text.
    Run(String),
    /// A statement prepared and kept in the connection's cache.
    Cached(String),
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn capture() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        let seen = match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                Seen::Run(
                    text.split(" -- binds:")
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
            InstrumentationEvent::CacheQuery { sql, .. } => Seen::Cached(sql.to_owned()),
            _ => return,
        };
        SEEN.lock().unwrap().push(seen);
    }))
}

/// `count` deliveries from `first` on, over `vehicles`: each reading 30 minutes and 10 km after
/// the last of its vehicle; every `jump`-th one 5,000 km on in a minute, refused.
fn deliveries(first: usize, count: usize, vehicles: &[&'static str], jump: usize) -> Vec<Delivery> {
    (first..first + count)
        .map(|i| {
            let at = 1_769_852_860_000 + i as i64 * 30 * 60_000;
            let metres = 10_000_000 + i as i64 * 10_000;
            let (at, metres) = if i % jump == jump - 1 {
                (at - 29 * 60_000, metres + 5_000_000)
            } else {
                (at, metres)
            };
            let signals = vec![NewSignal {
                code: "tractionbattery-stateofcharge".into(),
                value: Some((i % 100) as f64),
                unit: Some("percent".into()),
                raw: "{}".into(),
                observed_at: Millis(at),
            }];
            let reading = Reading::new(Distance::from_metres(metres).unwrap(), Millis(at));
            received_state(
                &format!("ev-{i:04}"),
                vehicles[i % vehicles.len()],
                Some(reading),
                signals,
                to_timestamp(Millis(at)).unwrap_or_else(now),
            )
        })
        .collect()
}

fn write(store: &Store, batch: &[Delivery]) {
    store
        .write(|tx| tx.write_batch(batch, &Policy::default()))
        .unwrap();
}

/// Transaction control goes as plain SQL, with nothing to prepare.
fn is_transaction_control(sql: &str) -> bool {
    let word = sql.split_whitespace().next().unwrap_or_default();
    ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

fn every_statement_is_prepared_once(db: &TestDatabase) {
    let setup = db.store();
    for (smartcar, app) in [("sc-1", "app-1"), ("sc-2", "app-2"), ("sc-3", "app-3")] {
        setup.register_vehicle(smartcar, app).unwrap();
    }
    // One connection, so that every batch runs on the one that holds the cache, made after the
    // capture is installed.
    let store = setup.with_own_pool(&PoolOptions {
        max_size: 1,
        ..PoolOptions::default()
    });
    SEEN.lock().unwrap().clear();
    write(&store, &deliveries(0, 4, &["sc-1", "sc-2"], 4));
    let first: Vec<Seen> = std::mem::take(&mut *SEEN.lock().unwrap());
    let cached: Vec<&String> = first
        .iter()
        .filter_map(|s| match s {
            Seen::Cached(sql) => Some(sql),
            Seen::Run(_) => None,
        })
        .collect();
    assert!(
        cached.iter().any(|sql| sql.contains("meter_entries")),
        "{first:#?}"
    );

    // Other sizes, another vehicle, more refused readings: the same statements.
    for (from, count) in [(4, 1), (5, 7), (12, 23)] {
        write(
            &store,
            &deliveries(from, count, &["sc-1", "sc-2", "sc-3"], 3),
        );
    }
    let later = std::mem::take(&mut *SEEN.lock().unwrap());
    let newly_cached: Vec<&Seen> = later
        .iter()
        .filter(|s| matches!(s, Seen::Cached(_)))
        .collect();
    assert!(newly_cached.is_empty(), "prepared again: {newly_cached:#?}");
    let runs: Vec<&String> = later
        .iter()
        .filter_map(|s| match s {
            Seen::Run(sql) if !is_transaction_control(sql) => Some(sql),
            _ => None,
        })
        .collect();
    assert!(runs.len() > 20, "{runs:#?}");
    for sql in runs {
        assert!(
            cached.contains(&sql),
            "run without a prepared statement: {sql}\nprepared: {cached:#?}"
        );
    }
    assert_eq!(
        setup
            .stats(to_timestamp(Millis(0)).unwrap())
            .unwrap()
            .events_total,
        35
    );
}

#[test]
fn the_write_path_prepares_each_statement_once_per_connection() {
    set_default_instrumentation(capture).unwrap();
    every_statement_is_prepared_once(&TestDatabase::sqlite());
    if let Some(db) = TestDatabase::postgres() {
        every_statement_is_prepared_once(&db);
    }
}
