//! Self-healing through the one write path: K readings that agree win over one accepted outlier
//! whatever the arrival order and the split into batches, and a single glitch never voids a
//! consistent history. SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use meterhook_domain::{Distance, Millis, Policy, Reading};
use meterhook_store::testing::{received_state, TestDatabase};
use meterhook_store::{now, Delivery, MeterEntry, Store};
use proptest::prelude::*;

const T0: i64 = 1_769_852_860_000;
const H: i64 = Millis::HOUR;

fn km(km: f64, at_ms: i64) -> Reading {
    Reading::new(
        Distance::from_value(km, meterhook_domain::DistanceUnit::Kilometres).unwrap(),
        Millis(at_ms),
    )
}

/// Writes `readings` of `sc-1` (feeding `app-1`) as deliveries `e0`, `e1`, … in batches of the
/// given sizes (cycled).
fn ingest(store: &Store, readings: &[(String, Reading)], sizes: &[usize]) {
    let items: Vec<Delivery> = readings
        .iter()
        .map(|(id, reading)| received_state(id, "sc-1", Some(*reading), Vec::new(), now()))
        .collect();
    let mut rest = items.as_slice();
    let mut size = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = size.next().copied().unwrap_or(1).clamp(1, rest.len());
        store
            .write(|tx| tx.write_batch(&rest[..n], &Policy::default()))
            .unwrap();
        rest = &rest[n..];
    }
}

fn fresh(db: &TestDatabase) -> Store {
    let store = db.store();
    store.register_vehicle("sc-1", "app-1").unwrap();
    store
}

fn fresh_like(db: &TestDatabase) -> TestDatabase {
    match db.backend() {
        meterhook_store::Backend::Sqlite => TestDatabase::sqlite(),
        meterhook_store::Backend::Postgres => TestDatabase::postgres().unwrap(),
    }
}

/// (km, time, void, reason) of every entry, in time order: what two runs must agree on.
fn entries(store: &Store) -> Vec<(i64, Millis, bool, Option<String>)> {
    let mut all: Vec<MeterEntry> = store.list_entries("app-1", true).unwrap();
    all.sort_by_key(|e| (e.entry_date, e.value_m, e.void));
    all.iter()
        .map(|e| {
            (
                e.value_m,
                meterhook_store::to_millis(e.entry_date),
                e.void,
                e.void_reason.clone(),
            )
        })
        .collect()
}

fn active(store: &Store) -> Vec<Reading> {
    store
        .list_entries("app-1", false)
        .unwrap()
        .iter()
        .map(|e| Reading::new(e.distance(), meterhook_store::to_millis(e.entry_date)))
        .collect()
}

fn assert_in_sequence(readings: &[Reading]) {
    let mut sorted = readings.to_vec();
    sorted.sort_by_key(|r| (r.observed_at, r.distance));
    for pair in sorted.windows(2) {
        assert!(pair[0].distance <= pair[1].distance, "{sorted:?}");
    }
}

/// `order[i]` picks the next delivery among those left (a shuffle without a `rand` dependency).
fn shuffled<T: Clone>(items: &[T], order: &[usize]) -> Vec<T> {
    let mut left = items.to_vec();
    let mut out = Vec::with_capacity(left.len());
    let mut picks = order.iter().cycle();
    while !left.is_empty() {
        let i = picks.next().copied().unwrap_or(0) % left.len();
        out.push(left.remove(i));
    }
    out
}

#[test]
fn a_first_reading_of_zero_is_superseded_by_three_true_readings() {
    for db in TestDatabase::all() {
        let store = fresh(&db);
        let glitch = ("glitch".to_owned(), km(0.0, T0));
        ingest(&store, &[glitch], &[1]);
        let true_readings: Vec<(String, Reading)> = (1..=3)
            .map(|i| (format!("t{i}"), km(42_000.0 + i as f64 * 20.0, T0 + i * H)))
            .collect();
        ingest(&store, &true_readings[..2], &[1]);
        // Two refused readings are not enough.
        assert_eq!(active(&store), vec![km(0.0, T0)]);
        ingest(&store, &true_readings[2..], &[1]);
        let all = store.list_entries("app-1", true).unwrap();
        let zero = all.iter().find(|e| e.value_m == 0).unwrap();
        assert!(zero.void);
        assert!(
            zero.void_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("superseded: 3 later readings")),
            "{:?}",
            zero.void_reason
        );
        assert_eq!(active(&store).len(), 3);
        assert!(all.iter().filter(|e| e.value_m > 0).all(|e| !e.void));
        let logs = store.sync_logs_for_event("t3").unwrap();
        assert!(logs.iter().any(|l| l.outcome == "superseded"), "{logs:?}");
        // A later reading goes in as usual.
        ingest(&store, &[("t4".to_owned(), km(42_080.0, T0 + 4 * H))], &[1]);
        assert_eq!(active(&store).len(), 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// K consistent readings win over one outlier that contradicts them all, whatever the
    /// arrival order and the batches; any split leaves what one delivery per batch leaves.
    #[test]
    fn consistent_readings_win_over_one_outlier(
        n in 3usize..7,
        steps in proptest::collection::vec(5u32..60, 7),
        huge_before in any::<bool>(),
        order in proptest::collection::vec(0usize..8, 8),
        sizes in proptest::collection::vec(1usize..6, 1..4),
    ) {
        let mut value = 50_000.0;
        let mut history = Vec::new();
        for (i, step) in steps.iter().take(n).enumerate() {
            value += f64::from(*step);
            history.push((format!("h{i}"), km(value, T0 + (i as i64 + 1) * H)));
        }
        let outlier = if huge_before {
            km(900_000.0, T0)
        } else {
            km(0.0, T0 + (n as i64 + 1) * H)
        };
        let mut all = history.clone();
        all.push(("outlier".to_owned(), outlier));
        let arrival = shuffled(&all, &order);
        for db in TestDatabase::all() {
            let reference = fresh_like(&db);
            let one_by_one = fresh(&reference);
            ingest(&one_by_one, &arrival, &[1]);
            let store = fresh(&db);
            ingest(&store, &arrival, &sizes);
            let got = active(&store);
            assert_in_sequence(&got);
            prop_assert!(!got.contains(&outlier), "outlier active: {:?}", got);
            for (_, reading) in &history {
                prop_assert!(got.contains(reading), "{:?} not active: {:?}", reading, got);
            }
            prop_assert_eq!(entries(&store), entries(&one_by_one));
        }
    }

    /// A single glitch, anywhere in time and value, never voids an entry of a consistent
    /// history through a supersession; the active entries stay in sequence.
    #[test]
    fn a_single_glitch_never_voids_a_consistent_history(
        n in 3usize..8,
        steps in proptest::collection::vec(5u32..60, 8),
        glitch_km in 0u32..200_000,
        glitch_hour in 0i64..10,
        order in proptest::collection::vec(0usize..9, 9),
        sizes in proptest::collection::vec(1usize..6, 1..4),
    ) {
        let mut value = 50_000.0;
        let mut history = Vec::new();
        for (i, step) in steps.iter().take(n).enumerate() {
            value += f64::from(*step);
            history.push((format!("h{i}"), km(value, T0 + (i as i64 + 1) * H)));
        }
        let glitch = km(f64::from(glitch_km), T0 + glitch_hour * H + H / 2);
        let mut all = history.clone();
        all.push(("glitch".to_owned(), glitch));
        let arrival = shuffled(&all, &order);
        for db in TestDatabase::all() {
            let store = fresh(&db);
            ingest(&store, &arrival, &sizes);
            assert_in_sequence(&active(&store));
            let superseded: Vec<MeterEntry> = store
                .list_entries("app-1", true)
                .unwrap()
                .into_iter()
                .filter(|e| e.void_reason.as_deref().is_some_and(|r| r.starts_with("superseded")))
                .collect();
            for e in &superseded {
                let reading = Reading::new(e.distance(), meterhook_store::to_millis(e.entry_date));
                prop_assert!(
                    !history.iter().any(|(_, h)| *h == reading),
                    "history entry {:?} superseded", reading
                );
            }
        }
    }
}
