//! The batch path (`Tx::ingest_batch`) against the one-by-one path: fed the same deliveries, they
//! must leave the same events, entries, sync logs and signals. Run on SQLite always and on
//! PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Barrier};

use diesel::pg::PgConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, RunQueryDsl};

use chrono::NaiveDateTime;
use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::testing::TestDatabase;
use meterhook_store::{
    now, to_timestamp, BatchEvent, BatchOutcome, BatchWork, NewEvent, NewSignal, Outcome, Recorded,
    Store, StoreError, Tx,
};

const T0: i64 = 1_769_852_860_000;
const MIN: i64 = 60_000;

/// A small deterministic generator (no `rand` needed for a test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    event_type: &'static str,
    vehicle: Option<String>,
    payload: String,
    received_at: NaiveDateTime,
    signals: Vec<NewSignal>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Ignored,
    State(Option<Reading>),
}

/// A mix that exercises every rule: rising readings, duplicates within the hour, readings out of
/// order, implausible jumps, ties in time, redeliveries (also within one batch), unknown and
/// inactive vehicles, two Smartcar vehicles feeding one app vehicle, states without an odometer,
/// ignored types, repeated signals.
fn deliveries(seed: u64, count: usize) -> Vec<Delivery> {
    let mut rng = Lcg(seed);
    let vehicles = ["sc-1", "sc-2", "sc-3", "sc-4", "sc-inactive", "sc-unknown"];
    let mut state = [(10_000_000i64, T0); 6];
    let mut out: Vec<Delivery> = Vec::new();
    for i in 0..count {
        let roll = rng.below(100);
        if roll < 8 && !out.is_empty() {
            let again = out[rng.below(out.len() as u64) as usize].clone();
            out.push(again);
            continue;
        }
        let v = rng.below(vehicles.len() as u64) as usize;
        let (mut metres, mut at) = state[v];
        match rng.below(10) {
            // The same value a little later: a duplicate.
            0 => at += 10 * MIN,
            // Back in time, or a lower value: out of sequence (or a duplicate of an older one).
            1 => {
                at -= rng.below(180) as i64 * MIN;
                metres -= rng.below(5_000) as i64;
            }
            // Far too far too soon.
            2 => {
                at += MIN;
                metres += 500_000;
            }
            // The same time as the last one.
            3 => metres += rng.below(3) as i64 * 1_000,
            // A time with milliseconds (stored with a fraction of a second).
            4 => {
                at += 30 * MIN + 1 + rng.below(999) as i64;
                metres += 1_000 + rng.below(20_000) as i64;
            }
            _ => {
                at += 30 * MIN;
                metres += 1_000 + rng.below(20_000) as i64;
            }
        }
        if rng.below(4) != 0 {
            state[v] = (metres.max(0), at);
        }
        let reading = Reading::new(Distance::from_metres(metres.max(0)).unwrap(), Millis(at));
        let kind = match rng.below(20) {
            0 => Kind::Ignored,
            1 => Kind::State(None),
            _ => Kind::State(Some(reading)),
        };
        let signals = match kind {
            Kind::Ignored => Vec::new(),
            Kind::State(_) => vec![
                NewSignal {
                    code: "odometer-traveleddistance".into(),
                    value: Some(metres as f64 / 1000.0),
                    unit: Some("km".into()),
                    raw: format!("{{\"i\":{i}}}"),
                    observed_at: Millis(at),
                },
                NewSignal {
                    code: "tractionbattery-stateofcharge".into(),
                    value: Some(rng.below(100) as f64),
                    unit: Some("percent".into()),
                    raw: "{}".into(),
                    // Often the same time again: kept once.
                    observed_at: Millis(T0 + rng.below(5) as i64 * MIN),
                },
            ],
        };
        out.push(Delivery {
            event_id: format!("ev-{seed}-{i:04}"),
            event_type: match kind {
                Kind::Ignored => "VERIFY",
                Kind::State(_) => "VEHICLE_STATE",
            },
            vehicle: Some(vehicles[v].to_owned()),
            payload: format!("{{\"n\":{i}}}"),
            received_at: to_timestamp(Millis(T0 + i as i64)).unwrap(),
            signals,
            kind,
        });
    }
    out
}

fn register(store: &Store) {
    store.register_vehicle("sc-1", "app-1").unwrap();
    // Two Smartcar vehicles feeding one app vehicle.
    store.register_vehicle("sc-2", "app-1").unwrap();
    store.register_vehicle("sc-3", "app-3").unwrap();
    store.register_vehicle("sc-4", "app-4").unwrap();
    store.register_vehicle("sc-inactive", "app-5").unwrap();
    store.set_vehicle_active("sc-inactive", false).unwrap();
}

/// What the server's one-by-one path does with a delivery.
fn one_by_one(tx: &mut Tx<'_>, d: &Delivery, policy: &Policy) -> Result<(), StoreError> {
    let new = NewEvent::pending(
        &d.event_id,
        d.event_type,
        d.vehicle.as_deref(),
        &d.payload,
        d.received_at,
    );
    if tx.record_event(&new)? == Recorded::AlreadySeen {
        return Ok(());
    }
    let vehicle = d.vehicle.as_deref().unwrap();
    match d.kind {
        Kind::Ignored => {
            tx.complete_event(&d.event_id, Outcome::Ignored, None, None)?;
        }
        Kind::State(reading) => {
            tx.record_signals(&d.event_id, vehicle, &d.signals)?;
            match reading {
                None => {
                    tx.complete_event(&d.event_id, Outcome::NoOdometer, None, None)?;
                }
                Some(reading) => {
                    tx.process_odometer(&d.event_id, vehicle, reading, policy)?;
                }
            }
        }
    }
    Ok(())
}

/// The deliveries as the batch path takes them.
fn batch_events(batch: &[Delivery]) -> Vec<BatchEvent<'_>> {
    batch
        .iter()
        .map(|d| BatchEvent {
            event_id: &d.event_id,
            event_type: d.event_type,
            smartcar_vehicle_id: d.vehicle.as_deref(),
            payload: &d.payload,
            received_at: d.received_at,
            work: match d.kind {
                Kind::Ignored => BatchWork::Complete(Outcome::Ignored),
                Kind::State(reading) => BatchWork::State {
                    smartcar_vehicle_id: d.vehicle.as_deref().unwrap(),
                    signals: &d.signals,
                    reading,
                },
            },
        })
        .collect()
}

fn batched(store: &Store, batch: &[Delivery], policy: &Policy) -> Vec<BatchOutcome> {
    store
        .write(|tx| {
            let mut ids: Vec<&str> = batch.iter().filter_map(|d| d.vehicle.as_deref()).collect();
            ids.sort_unstable();
            ids.dedup();
            let vehicles = tx.lock_vehicles(&ids)?;
            tx.ingest_batch(&batch_events(batch), &vehicles, policy)
        })
        .unwrap()
}

/// Everything the two paths must agree on, with row ids and clock times left out.
fn snapshot(store: &Store, deliveries: &[Delivery]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut entry_event = std::collections::HashMap::new();
    for app in ["app-1", "app-3", "app-4", "app-5"] {
        for e in store.list_entries(app, true).unwrap() {
            entry_event.insert(e.id, e.event_id.clone());
            out.push(format!(
                "entry {} {} {} {:?} void={} {:?} {:?} {}",
                e.vehicle_id,
                e.value_m,
                e.entry_date,
                e.event_id,
                e.void,
                e.void_reason,
                e.notes,
                e.source_type
            ));
        }
        for code in ["odometer-traveleddistance", "tractionbattery-stateofcharge"] {
            for s in store.signal_history(app, code, 10_000).unwrap() {
                out.push(format!(
                    "signal {} {} {:?} {:?} {} {} {}",
                    s.smartcar_vehicle_id,
                    s.code,
                    s.value,
                    s.unit,
                    s.raw,
                    s.observed_at,
                    s.event_id
                ));
            }
        }
    }
    for id in ids {
        let e = store.find_event(id).unwrap().unwrap();
        out.push(format!(
            "event {} {} {:?} {} processed={} {} {:?} attempts={} next={:?} at={}",
            e.event_id,
            e.event_type,
            e.smartcar_vehicle_id,
            e.payload,
            e.processed,
            e.outcome,
            e.error,
            e.attempts,
            e.next_attempt_at,
            e.processed_at.is_some()
        ));
        for log in store.sync_logs_for_event(id).unwrap() {
            let mut data: serde_json::Value = serde_json::from_str(&log.data).unwrap();
            // Entry ids as the event that made the entry.
            for key in ["meterEntryId", "voidEntryId"] {
                if let Some(entry) = data.get(key).and_then(serde_json::Value::as_i64) {
                    data[key] = serde_json::json!(entry_event.get(&entry));
                }
            }
            out.push(format!(
                "sync {} {:?} {:?} {:?} {} {} {}",
                log.sync_type,
                log.smartcar_vehicle_id,
                log.vehicle_id,
                log.event_id,
                log.status,
                log.outcome,
                data
            ));
        }
    }
    out
}

#[test]
fn batches_store_what_one_by_one_processing_stores() {
    let policy = Policy::default();
    for seed in [1u64, 7, 42] {
        let deliveries = deliveries(seed, 240);
        for slow_db in TestDatabase::all() {
            let slow = slow_db.store();
            let fast_db = match slow_db.backend() {
                meterhook_store::Backend::Sqlite => TestDatabase::sqlite(),
                meterhook_store::Backend::Postgres => TestDatabase::postgres().unwrap(),
            };
            let fast = fast_db.store();
            register(&slow);
            register(&fast);
            for d in &deliveries {
                slow.write(|tx| one_by_one(tx, d, &policy)).unwrap();
            }
            let mut rng = Lcg(seed);
            let mut rest = deliveries.as_slice();
            let mut batches = 0;
            while !rest.is_empty() {
                let n = (1 + rng.below(40) as usize).min(rest.len());
                let outcomes = batched(&fast, &rest[..n], &policy);
                assert_eq!(outcomes.len(), n);
                rest = &rest[n..];
                batches += 1;
            }
            let (a, b) = (snapshot(&slow, &deliveries), snapshot(&fast, &deliveries));
            eprintln!(
                "-- seed {seed} on {}: {} rows compared, {batches} batches",
                slow_db.backend(),
                a.len()
            );
            assert!(a.iter().any(|l| l.contains(" created ")));
            assert!(a.iter().any(|l| l.contains(" duplicate ")));
            assert!(a.iter().any(|l| l.contains(" out_of_sequence ")));
            assert!(a.iter().any(|l| l.contains(" implausible_jump ")));
            assert!(a.iter().any(|l| l.contains(" unknown_vehicle ")));
            assert!(a.iter().any(|l| l.contains(" inactive_vehicle ")));
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "seed {seed} on {}", slow_db.backend());
            }
            assert_eq!(a.len(), b.len());
        }
    }
}

#[test]
fn a_batch_answers_each_delivery_and_skips_redeliveries() {
    for db in TestDatabase::all() {
        let store = db.store();
        register(&store);
        let policy = Policy::default();
        let all = deliveries(3, 30);
        let first: Vec<Delivery> = all
            .iter()
            .filter(|d| matches!(d.kind, Kind::State(Some(_))))
            .take(3)
            .cloned()
            .collect();
        // The same id twice in one batch, then the whole batch again.
        let mut batch = first.clone();
        batch.push(first[0].clone());
        let outcomes = batched(&store, &batch, &policy);
        assert!(matches!(outcomes[0], BatchOutcome::Processed(_)));
        assert_eq!(outcomes[3], BatchOutcome::AlreadySeen);
        let again = batched(&store, &batch, &policy);
        assert!(again.iter().all(|o| *o == BatchOutcome::AlreadySeen));
        let stored = store.find_event(&first[0].event_id).unwrap().unwrap();
        assert!(stored.processed);
        assert_eq!(stored.attempts, 1);
    }
}

/// On PostgreSQL another instance can store one of the batch's events between the batch's read
/// and its insert: the batch then writes nothing and says so, and the caller goes one by one.
#[test]
fn a_batch_that_races_another_writer_writes_nothing() {
    let Some(db) = TestDatabase::postgres() else {
        eprintln!("-- skipped: no PostgreSQL (TEST_DATABASE_URL)");
        return;
    };
    let store = db.store();
    register(&store);
    let policy = Policy::default();
    let batch: Vec<Delivery> = deliveries(5, 20)
        .into_iter()
        .filter(|d| matches!(d.kind, Kind::State(Some(_))))
        .take(3)
        .collect();
    let raced = batch[1].clone();
    let ready = Arc::new(Barrier::new(2));
    let other = {
        let (store, ready, url) = (store.clone(), ready.clone(), db.url().to_owned());
        std::thread::spawn(move || {
            store
                .write(|tx| {
                    tx.record_event(&NewEvent::pending(
                        &raced.event_id,
                        raced.event_type,
                        raced.vehicle.as_deref(),
                        &raced.payload,
                        now(),
                    ))?;
                    ready.wait();
                    // Commit only once the batch's insert waits on this transaction's row: the
                    // batch has then read the stored ids without seeing it.
                    let mut watch = PgConnection::establish(&url).expect("watcher connection");
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    loop {
                        let waiting: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
                            "(SELECT count(*) FROM pg_stat_activity \
                             WHERE datname = current_database() AND wait_event_type = 'Lock')",
                        ))
                        .get_result(&mut watch)
                        .expect("pg_stat_activity");
                        if waiting > 0 || std::time::Instant::now() > deadline {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Ok(())
                })
                .unwrap();
        })
    };
    ready.wait();
    let result = store.write(|tx| {
        let vehicles = tx.lock_vehicles(&["sc-1", "sc-2", "sc-3", "sc-4"])?;
        tx.ingest_batch(&batch_events(&batch), &vehicles, &policy)
    });
    other.join().unwrap();
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "got {result:?}"
    );
    assert!(store.find_event(&batch[0].event_id).unwrap().is_none());
    assert!(store.find_event(&batch[2].event_id).unwrap().is_none());
    let raced = store.find_event(&batch[1].event_id).unwrap().unwrap();
    assert_eq!(raced.outcome, "pending");
}
