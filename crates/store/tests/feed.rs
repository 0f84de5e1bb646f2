//! The record of changes as readers and senders see it: registrations and activations recorded,
//! pages read and pruned, notifications claimed in order, and that a reader following the record
//! never misses a change with concurrent writers. SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use chrono::TimeDelta;
use meterhook_store::testing::{record_change, TestDatabase};
use meterhook_store::{now, ChangeFilter, ChangeType, ChangesError, Store};

fn each_backend(test: impl Fn(&Store)) {
    for db in TestDatabase::all() {
        let store = db.store();
        eprintln!("-- on {}", db.backend());
        test(&store);
    }
}

fn all(store: &Store) -> Vec<(i64, String, Option<String>)> {
    store
        .changes_after(None, 1_000, &ChangeFilter::default())
        .unwrap()
        .changes
        .into_iter()
        .map(|c| (c.position, c.change_type, c.vehicle_id))
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn registering_deactivating_and_activating_record_a_change_each_time_something_changes() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        // The same mapping again changes nothing, and records nothing.
        store.register_vehicle("sc-1", "car-1").unwrap();
        store.set_vehicle_active("sc-1", false).unwrap();
        store.set_vehicle_active("sc-1", false).unwrap();
        store.set_vehicle_active("sc-1", true).unwrap();
        // Re-pointed to another app vehicle: a registration of that one.
        store.register_vehicle("sc-1", "car-2").unwrap();
        assert_eq!(
            all(store),
            [
                (1, "vehicle.registered".to_owned(), some("car-1")),
                (2, "vehicle.deactivated".to_owned(), some("car-1")),
                (3, "vehicle.activated".to_owned(), some("car-1")),
                (4, "vehicle.registered".to_owned(), some("car-2")),
            ]
        );
        let first = store
            .changes_after(None, 1, &ChangeFilter::default())
            .unwrap();
        let data: serde_json::Value = serde_json::from_str(&first.changes[0].data).unwrap();
        assert_eq!(data["smartcar_vehicle_id"], "sc-1");
        assert_eq!(data["vehicle_id"], "car-1");
        assert_eq!(
            first.changes[0].smartcar_vehicle_id.as_deref(),
            Some("sc-1")
        );
        // A failed change records nothing.
        assert!(store.set_vehicle_active("nobody", false).is_err());
        assert!(store.register_vehicle("", "car-3").is_err());
        assert_eq!(store.last_change_position().unwrap(), 4);
    });
}

#[test]
fn pages_follow_the_cursor_and_filters_skip_what_they_read() {
    each_backend(|store| {
        for (sc, car) in [("sc-1", "car-1"), ("sc-2", "car-2"), ("sc-3", "car-3")] {
            store.register_vehicle(sc, car).unwrap();
        }
        store.set_vehicle_active("sc-2", false).unwrap();
        let every = ChangeFilter::default();

        let page = store.changes_after(None, 2, &every).unwrap();
        assert_eq!(
            page.changes.iter().map(|c| c.position).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(page.has_more);
        assert_eq!(page.next, 2);
        let page = store.changes_after(Some(page.next), 2, &every).unwrap();
        assert_eq!(
            page.changes.iter().map(|c| c.position).collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(!page.has_more);
        let page = store.changes_after(Some(page.next), 2, &every).unwrap();
        assert!(page.changes.is_empty());
        assert_eq!(page.next, 4);

        let car2 = ChangeFilter {
            vehicle_id: some("car-2"),
            ..ChangeFilter::default()
        };
        let page = store.changes_after(None, 10, &car2).unwrap();
        assert_eq!(
            page.changes
                .iter()
                .map(|c| c.change_type.as_str())
                .collect::<Vec<_>>(),
            ["vehicle.registered", "vehicle.deactivated"]
        );
        let deactivations = ChangeFilter {
            types: vec![ChangeType::VehicleDeactivated, ChangeType::VehicleActivated],
            ..ChangeFilter::default()
        };
        let page = store.changes_after(Some(0), 10, &deactivations).unwrap();
        assert_eq!(
            page.changes.iter().map(|c| c.position).collect::<Vec<_>>(),
            [4]
        );
        // Nothing more of that type: the cursor moves past what was read, not only to 4.
        store.register_vehicle("sc-4", "car-4").unwrap();
        let page = store.changes_after(Some(4), 10, &deactivations).unwrap();
        assert!(page.changes.is_empty());
        assert_eq!(page.next, 5);

        match store.changes_after(Some(6), 10, &every) {
            Err(ChangesError::Ahead { after: 6, last: 5 }) => {}
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn pruning_keeps_the_window_and_an_older_cursor_is_gone() {
    each_backend(|store| {
        store.register_vehicle("sc-1", "car-1").unwrap();
        store.register_vehicle("sc-2", "car-2").unwrap();
        let every = ChangeFilter::default();
        // Nothing is older than an hour ago.
        assert_eq!(
            store
                .prune_changes(now() - TimeDelta::hours(1), 1, |_| {})
                .unwrap(),
            0
        );
        let between = now();
        store.register_vehicle("sc-3", "car-3").unwrap();
        let mut progress = Vec::new();
        assert_eq!(
            store
                .prune_changes(between, 1, |n| progress.push(n))
                .unwrap(),
            2
        );
        assert_eq!(progress, [1, 2]);
        assert_eq!(all(store).len(), 1);
        // From the start: the oldest kept; after the last pruned one: fine; before it: gone.
        assert_eq!(
            store.changes_after(None, 10, &every).unwrap().changes[0].position,
            3
        );
        assert_eq!(store.changes_after(Some(2), 10, &every).unwrap().next, 3);
        match store.changes_after(Some(1), 10, &every) {
            Err(
                e @ ChangesError::Gone {
                    after: 1,
                    oldest: 3,
                },
            ) => {
                assert!(e.to_string().contains("pruned"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Everything pruned: a reader at the end is fine, one behind is told.
        assert_eq!(
            store
                .prune_changes(now() + TimeDelta::hours(1), 100, |_| {})
                .unwrap(),
            1
        );
        assert!(all(store).is_empty());
        assert_eq!(store.changes_after(Some(3), 10, &every).unwrap().next, 3);
        assert!(matches!(
            store.changes_after(Some(2), 10, &every),
            Err(ChangesError::Gone {
                after: 2,
                oldest: 4
            })
        ));
        store.register_vehicle("sc-4", "car-4").unwrap();
        assert_eq!(all(store)[0].0, 4);
    });
}

/// A small deterministic generator, for delays and orders that differ run to run within a run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The proof that a reader never misses a change: writers on connections of their own record
/// changes in transactions that do other work before and after, and commit in whatever order
/// their random delays give, while a reader follows the record with its cursor, as
/// `GET /api/changes` does. The reader must end with every change exactly once, in order for
/// each vehicle.
///
/// It fails if positions were taken early in the transaction (a plain sequence, `nextval` at the
/// first write): a transaction holding 41 commits after another's 42, the reader reads 42 and
/// moves its cursor past 41 for good. Checked by hand once, by taking the positions before the
/// delay.
#[test]
fn a_reader_following_concurrent_writers_sees_every_change_once_in_order() {
    const WRITERS: u64 = 6;
    const CHANGES_PER_WRITER: u64 = 40;
    each_backend(|store| {
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let store = store.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut cursor = None;
                loop {
                    // Read `done` before the page: a page read after every writer committed is
                    // the last one needed.
                    let finished = done.load(Ordering::SeqCst);
                    let page = store
                        .changes_after(cursor, 7, &ChangeFilter::default())
                        .unwrap();
                    seen.extend(
                        page.changes
                            .iter()
                            .map(|c| (c.vehicle_id.clone().unwrap(), c.data.clone())),
                    );
                    cursor = Some(page.next);
                    if finished && !page.has_more {
                        return seen;
                    }
                }
            })
        };
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                // Each writer its own pool of one: its own connection.
                let store = store.with_own_pool(&meterhook_store::PoolOptions {
                    max_size: 1,
                    ..meterhook_store::PoolOptions::default()
                });
                thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w + 1) * 0x1234_5678_9ABC));
                    for i in 0..CHANGES_PER_WRITER {
                        // Two vehicles per writer, in random order: each vehicle's changes are
                        // made by one writer, in order.
                        let vehicle = format!("car-{w}-{}", rng.below(2));
                        let before = Duration::from_micros(rng.below(2_000));
                        let after = Duration::from_micros(rng.below(2_000));
                        store
                            .write(|tx| {
                                thread::sleep(before);
                                record_change(
                                    tx,
                                    ChangeType::MeterEntryCreated,
                                    &vehicle,
                                    &format!("{w}:{i}"),
                                )?;
                                thread::sleep(after);
                                Ok(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.join().unwrap();

        assert_eq!(seen.len() as u64, WRITERS * CHANGES_PER_WRITER, "each once");
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut distinct = std::collections::HashSet::new();
        for (vehicle, data) in &seen {
            assert!(distinct.insert(data.clone()), "{data} seen twice");
            let (_, i) = data.split_once(':').unwrap();
            let i: u64 = i.parse().unwrap();
            if let Some(previous) = last.insert(vehicle.clone(), i) {
                assert!(previous < i, "{vehicle}: {i} after {previous}");
            }
        }
    });
}

fn attempt(result: meterhook_store::AttemptResult) -> meterhook_store::Attempt {
    meterhook_store::Attempt {
        at: now(),
        result,
        status: Some(500),
        answer: Some("oops".into()),
        duration_ms: 3,
    }
}

fn claim(store: &Store, owner: &str) -> Vec<i64> {
    store
        .notify_claim(owner, 10, now() + TimeDelta::seconds(60))
        .unwrap()
        .into_iter()
        .map(|c| c.change.position)
        .collect()
}

#[test]
fn notifications_go_one_sender_at_a_time_in_order_per_vehicle() {
    use meterhook_store::{AttemptResult, NextStep};
    each_backend(|store| {
        // Recorded before notifications were on: not sent, unless asked.
        store.register_vehicle("sc-0", "car-0").unwrap();
        assert_eq!(store.notify_queue(100).unwrap(), 0);
        assert!(claim(store, "a").is_empty());

        store.register_vehicle("sc-1", "car-1").unwrap(); // 2
        store.set_vehicle_active("sc-1", false).unwrap(); // 3
        store.register_vehicle("sc-2", "car-2").unwrap(); // 4
        assert_eq!(store.notify_queue(100).unwrap(), 3);
        assert_eq!(store.notify_queue(100).unwrap(), 0);
        let status = store.notify_status().unwrap();
        assert_eq!((status.pending, status.lag_records()), (3, 3));

        // The earliest of each vehicle; a second sender gets nothing while the leases hold.
        assert_eq!(claim(store, "a"), [2, 4]);
        assert!(claim(store, "b").is_empty());
        // car-1's first fails and is retried later: its second waits, car-2 flows.
        store
            .notify_finish(
                2,
                "a",
                &attempt(AttemptResult::Rejected),
                NextStep::RetryAt(now() + TimeDelta::hours(1)),
            )
            .unwrap();
        store
            .notify_finish(
                4,
                "a",
                &attempt(AttemptResult::Delivered),
                NextStep::Delivered,
            )
            .unwrap();
        assert!(claim(store, "b").is_empty());
        assert_eq!(store.notify_status().unwrap().pending, 2);
        let attempts = store.notify_attempts(2).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (attempts[0].result.as_str(), attempts[0].status),
            ("rejected", Some(500))
        );

        // Given up on: the next of that vehicle goes.
        store.notify_requeue(None, true).unwrap();
        let claimed = store
            .notify_claim("c", 10, now() + TimeDelta::seconds(60))
            .unwrap();
        assert!(claimed.is_empty(), "2 is pending and due later, not failed");
        // A lease that expired (its sender died) is claimed again by another.
        store.set_vehicle_active("sc-2", false).unwrap(); // 5
        store.notify_queue(100).unwrap();
        let held = store
            .notify_claim("dead", 10, now() - TimeDelta::seconds(1))
            .unwrap();
        assert_eq!(
            held.iter().map(|c| c.change.position).collect::<Vec<_>>(),
            [5]
        );
        assert_eq!(claim(store, "alive"), [5]);
        store
            .notify_finish(
                5,
                "dead",
                &attempt(AttemptResult::Timeout),
                NextStep::Failed,
            )
            .unwrap();
        // The dead sender's late answer is recorded, but the row is the live one's.
        assert_eq!(store.notify_attempts(5).unwrap().len(), 1);
        store
            .notify_finish(
                5,
                "alive",
                &attempt(AttemptResult::Rejected),
                NextStep::Failed,
            )
            .unwrap();
        assert_eq!(store.notify_status().unwrap().failed, 1);
        assert_eq!(store.notify_requeue(None, true).unwrap(), 1);
        assert_eq!(claim(store, "d"), [5]);

        // Everything after a cursor, including what was recorded before notifications were on.
        assert_eq!(store.notify_requeue(Some(0), false).unwrap(), 5);
        assert_eq!(claim(store, "e"), [1, 2, 4]);

        // Pruning the changes takes their notifications and attempts.
        store
            .prune_changes(now() + TimeDelta::hours(1), 100, |_| {})
            .unwrap();
        assert!(store.notify_attempts(2).unwrap().is_empty());
        assert_eq!(store.notify_status().unwrap().pending, 0);
    });
}
