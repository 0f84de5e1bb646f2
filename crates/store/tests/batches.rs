//! `Tx::write_batch`, the one write path: however the same deliveries are split into batches, and
//! in whatever order the vehicles' deliveries interleave, it leaves the same events, entries, sync
//! logs and signals as one delivery per batch. Run on SQLite always and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[cfg(feature = "postgres")]
use diesel::{pg::PgConnection, sql_types::BigInt, Connection, RunQueryDsl};

use meterhook_domain::Outcome;
use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::testing::{received_state, TestDatabase};
use meterhook_store::{to_timestamp, Delivery, NewSignal, Odometer, Receipt, Store, Work};
use proptest::prelude::*;

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
            0 => None,
            1 => Some(None),
            _ => Some(Some(reading)),
        };
        let signals = match kind {
            None => Vec::new(),
            Some(_) => vec![
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
        let received_at = to_timestamp(Millis(T0 + i as i64)).unwrap();
        let event_id = format!("ev-{seed}-{i:04}");
        out.push(match kind {
            // A type meterhook keeps but does not act on.
            None => Delivery {
                event_type: "VERIFY".to_owned(),
                work: Work::Complete {
                    outcome: Outcome::Ignored,
                    error: None,
                },
                ..received_state(&event_id, vehicles[v], None, signals, received_at)
            },
            Some(reading) => received_state(&event_id, vehicles[v], reading, signals, received_at),
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

fn batched(store: &Store, batch: &[Delivery], policy: &Policy) -> Vec<Receipt> {
    store.write(|tx| tx.write_batch(batch, policy)).unwrap()
}

/// Whether a delivery holds an odometer reading.
fn has_reading(d: &Delivery) -> bool {
    matches!(
        d.work,
        Work::State {
            odometer: Odometer::Reading { .. },
            ..
        }
    )
}

/// The timeline a delivery belongs to: the app vehicle its Smartcar vehicle feeds (or the
/// Smartcar vehicle when it feeds none). Deliveries of different timelines may be reordered.
fn timeline(d: &Delivery) -> &str {
    match d.smartcar_vehicle_id.as_deref() {
        Some("sc-1" | "sc-2") => "app-1",
        Some(other) => other,
        None => "",
    }
}

/// `deliveries` with the timelines interleaved as `choices` pick, each timeline's own order kept.
fn interleaved(deliveries: &[Delivery], choices: &[usize]) -> Vec<Delivery> {
    let mut queues: Vec<(&str, std::collections::VecDeque<&Delivery>)> = Vec::new();
    for d in deliveries {
        match queues.iter_mut().find(|(t, _)| *t == timeline(d)) {
            Some((_, q)) => q.push_back(d),
            None => queues.push((timeline(d), std::collections::VecDeque::from([d]))),
        }
    }
    let mut out = Vec::with_capacity(deliveries.len());
    let mut choice = choices.iter().cycle();
    while out.len() < deliveries.len() {
        let open: Vec<usize> = (0..queues.len())
            .filter(|&i| !queues[i].1.is_empty())
            .collect();
        let pick = open[choice.next().copied().unwrap_or(0) % open.len()];
        out.extend(queues[pick].1.pop_front().cloned());
    }
    out
}

/// One delivery per batch, in the order generated: the reference.
fn reference(backend: meterhook_store::Backend, deliveries: &[Delivery]) -> Vec<String> {
    let db = fresh(backend);
    let store = db.store();
    register(&store);
    for d in deliveries {
        batched(&store, std::slice::from_ref(d), &Policy::default());
    }
    snapshot(&store, deliveries)
}

fn fresh(backend: meterhook_store::Backend) -> TestDatabase {
    match backend {
        meterhook_store::Backend::Sqlite => TestDatabase::sqlite(),
        meterhook_store::Backend::Postgres => TestDatabase::postgres().unwrap(),
    }
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
            for key in ["meterEntryId", "voidEntryId", "supersededEntryId"] {
                if let Some(entry) = data.get(key).and_then(serde_json::Value::as_i64) {
                    data[key] = serde_json::json!(entry_event.get(&entry));
                }
            }
            if let Some(revived) = data.get("revivedEntryIds").and_then(|v| v.as_array()) {
                let events: Vec<_> = revived
                    .iter()
                    .filter_map(serde_json::Value::as_i64)
                    .map(|entry| entry_event.get(&entry).cloned())
                    .collect();
                data["revivedEntryIds"] = serde_json::json!(events);
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
fn the_reference_mix_has_every_outcome() {
    let rows = reference(meterhook_store::Backend::Sqlite, &deliveries(1, 240));
    for outcome in [
        " created ",
        " duplicate ",
        " out_of_sequence ",
        " implausible_jump ",
        " unknown_vehicle ",
        " inactive_vehicle ",
        " no_odometer ",
        " ignored ",
    ] {
        assert!(rows.iter().any(|l| l.contains(outcome)), "no{outcome}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any split into batches of 1..=40 and any interleaving of the timelines store what one
    /// delivery per batch stores.
    #[test]
    fn any_split_and_interleaving_stores_the_same(
        seed in 1u64..1_000,
        sizes in proptest::collection::vec(1usize..=40, 1..20),
        choices in proptest::collection::vec(0usize..8, 1..64),
    ) {
        let generated = deliveries(seed, 120);
        for db in TestDatabase::all() {
            let expected = reference(db.backend(), &generated);
            let store = db.store();
            register(&store);
            let order = interleaved(&generated, &choices);
            let mut rest = order.as_slice();
            let mut size = sizes.iter().cycle();
            while !rest.is_empty() {
                let n = size.next().copied().unwrap_or(1).min(rest.len());
                let answers = batched(&store, &rest[..n], &Policy::default());
                prop_assert_eq!(answers.len(), n);
                rest = &rest[n..];
            }
            let got = snapshot(&store, &generated);
            prop_assert_eq!(&got, &expected, "seed {} on {}", seed, db.backend());
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
            .filter(|d| has_reading(d))
            .take(3)
            .cloned()
            .collect();
        // The same id twice in one batch, then the whole batch again.
        let mut batch = first.clone();
        batch.push(first[0].clone());
        let outcomes = batched(&store, &batch, &policy);
        assert!(matches!(outcomes[0], Receipt::Processed(_)));
        assert_eq!(outcomes[3], Receipt::AlreadyReceived);
        let again = batched(&store, &batch, &policy);
        assert!(again.iter().all(|o| *o == Receipt::AlreadyReceived));
        let stored = store.find_event(&first[0].event_id).unwrap().unwrap();
        assert!(stored.processed);
        assert_eq!(stored.attempts, 1);
    }
}

/// On PostgreSQL another instance can store one of the batch's events between the batch's read
/// and its insert: the batch then fails with a conflict, and the caller runs it again.
#[cfg(feature = "postgres")]
#[test]
fn a_batch_that_races_another_writer_writes_nothing() {
    use std::sync::{Arc, Barrier};

    use meterhook_store::{now, NewEvent, StoreError};

    let Some(db) = TestDatabase::postgres() else {
        eprintln!("-- skipped: no PostgreSQL (TEST_DATABASE_URL)");
        return;
    };
    let store = db.store();
    register(&store);
    let policy = Policy::default();
    let batch: Vec<Delivery> = deliveries(5, 20)
        .into_iter()
        .filter(has_reading)
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
                        &raced.event_type,
                        raced.smartcar_vehicle_id.as_deref(),
                        raced.received().unwrap().0,
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
    let result = store.write(|tx| tx.write_batch(&batch, &policy));
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
