//! A batch of readings judged in order against each vehicle's timeline.
//!
//! The timeline of a vehicle is what the rules need of its active entries around each reading
//! ([`Stored`]: the nearest entry on either side and the entries of the same value within the
//! duplicate window, all found by point lookups) plus the readings accepted earlier in the same
//! batch. [`judge`] is the only place readings are judged: one delivery is a batch of one.

use std::collections::BTreeMap;

use crate::{decide, Decision, Neighbours, Policy, Reading};

/// What the store holds about a vehicle's active entries around one reading, before the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The latest active entry at or before the reading's time (on a tie, the highest value).
    pub before: Option<Reading>,
    /// The earliest active entry after the reading's time (on a tie, the lowest value).
    pub after: Option<Reading>,
    /// The active entries with the reading's value within the duplicate window of its time.
    pub same_value: Vec<Reading>,
}

/// One reading of a batch: the vehicle's timeline it belongs to, the reading, what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<K> {
    /// The timeline: readings of one key are judged against each other.
    pub vehicle: K,
    /// The new reading.
    pub reading: Reading,
    /// The stored entries around it.
    pub stored: Stored,
}

/// What to keep of a judged reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// An active entry: the reading is accepted.
    Active,
    /// A void entry, kept out of the rules, with the reason it was refused.
    Void {
        /// Why it was refused, for people.
        reason: String,
    },
    /// Nothing: a duplicate is not kept again.
    Nothing,
}

/// The rules' answer for one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The decision, with the reading it was compared with.
    pub decision: Decision,
    /// What to keep of it.
    pub keep: Keep,
}

impl Judgement {
    /// For a refused reading, the reading that refused it.
    pub fn refused_by(&self) -> Option<Reading> {
        match &self.decision {
            Decision::OutOfSequence { neighbour, .. }
            | Decision::ImplausibleJump { neighbour, .. } => Some(*neighbour),
            Decision::Accept { .. } | Decision::Duplicate { .. } => None,
        }
    }

    fn of(decision: Decision) -> Judgement {
        let keep = match &decision {
            Decision::Accept { .. } => Keep::Active,
            Decision::Duplicate { .. } => Keep::Nothing,
            refused => Keep::Void {
                reason: refused.to_string(),
            },
        };
        Judgement { decision, keep }
    }
}

/// Judges `batch` in order: each reading against the stored entries around it and the readings
/// of its vehicle accepted earlier in the batch. One judgement per candidate, in order.
pub fn judge<K: Ord + Clone>(batch: &[Candidate<K>], policy: &Policy) -> Vec<Judgement> {
    let mut accepted: BTreeMap<K, Vec<Reading>> = BTreeMap::new();
    batch
        .iter()
        .map(|c| {
            let earlier = accepted.entry(c.vehicle.clone()).or_default();
            let decision = decide(c.reading, &neighbours(c, earlier, policy), policy);
            if decision.is_accept() {
                let at = earlier.partition_point(|r| key(r) <= key(&c.reading));
                earlier.insert(at, c.reading);
            }
            Judgement::of(decision)
        })
        .collect()
}

/// Readings ordered by time, then value.
fn key(r: &Reading) -> (crate::Millis, crate::Distance) {
    (r.observed_at, r.distance)
}

/// The neighbours of a candidate: the stored ones merged with `earlier`, the readings accepted
/// before it in the batch (sorted by time, then value).
fn neighbours(c: &Candidate<impl Ord>, earlier: &[Reading], policy: &Policy) -> Neighbours {
    let at = c.reading.observed_at;
    let split = earlier.partition_point(|r| r.observed_at <= at);
    // The last at or before `at` has the latest time and, among ties, the highest value.
    let before = [c.stored.before, split.checked_sub(1).map(|i| earlier[i])]
        .into_iter()
        .flatten()
        .max_by_key(key);
    let after = [c.stored.after, earlier.get(split).copied()]
        .into_iter()
        .flatten()
        .min_by_key(key);
    let window = policy.duplicate_window_ms.max(0).unsigned_abs();
    let same_value = earlier
        .iter()
        .filter(|r| r.distance == c.reading.distance)
        .filter(|r| at.since(r.observed_at).unsigned_abs() <= window);
    Neighbours {
        before,
        after,
        window: c
            .stored
            .same_value
            .iter()
            .copied()
            .chain(same_value.copied())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Distance, Millis};

    const H: i64 = Millis::HOUR;

    fn r(km: i64, at_ms: i64) -> Reading {
        Reading::new(
            Distance::from_metres(km * 1_000).expect("valid"),
            Millis(at_ms),
        )
    }

    fn c(vehicle: &'static str, reading: Reading, stored: Stored) -> Candidate<&'static str> {
        Candidate {
            vehicle,
            reading,
            stored,
        }
    }

    /// Judges the batch and returns each decision's outcome name.
    fn check(batch: &[Candidate<&'static str>], expected: &[&str]) {
        let policy = Policy::default();
        let outcomes: Vec<&str> = judge(batch, &policy)
            .iter()
            .map(|j| crate::Outcome::of(&j.decision).as_str())
            .collect();
        assert_eq!(outcomes, expected, "batch {batch:?}");
    }

    #[test]
    fn readings_of_one_vehicle_see_each_other() {
        let none = Stored::default();
        check(
            &[
                c("a", r(100, 0), none.clone()),
                c("a", r(100, H / 2), none.clone()),
                c("a", r(90, H), none.clone()),
                c("a", r(150, 2 * H), none.clone()),
            ],
            &["created", "duplicate", "out_of_sequence", "created"],
        );
    }

    #[test]
    fn vehicles_have_their_own_timelines() {
        let none = Stored::default();
        check(
            &[
                c("a", r(100, 0), none.clone()),
                c("b", r(100, 0), none.clone()),
                c("b", r(50, H), none.clone()),
            ],
            &["created", "created", "out_of_sequence"],
        );
    }

    #[test]
    fn stored_and_earlier_neighbours_merge() {
        // Stored: 100 km at 0 and 300 km at 10 h. The batch accepts 200 km at 5 h; a reading of
        // 150 km at 6 h is then lower than the batch's entry, not only higher than the stored one.
        let stored = Stored {
            before: Some(r(100, 0)),
            after: Some(r(300, 10 * H)),
            same_value: vec![],
        };
        check(
            &[
                c("a", r(200, 5 * H), stored.clone()),
                c("a", r(150, 6 * H), stored.clone()),
                c("a", r(250, 7 * H), stored.clone()),
                c("a", r(350, 8 * H), stored),
            ],
            &["created", "out_of_sequence", "created", "out_of_sequence"],
        );
    }

    #[test]
    fn a_stored_entry_of_the_same_value_is_a_duplicate() {
        let stored = Stored {
            before: Some(r(100, 0)),
            after: None,
            same_value: vec![r(100, 0)],
        };
        check(&[c("a", r(100, H / 4), stored)], &["duplicate"]);
    }

    #[test]
    fn what_to_keep() {
        let policy = Policy::default();
        let none = Stored::default();
        let writes: Vec<Keep> = judge(
            &[
                c("a", r(100, 0), none.clone()),
                c("a", r(100, 1), none.clone()),
                c("a", r(50, H), none),
            ],
            &policy,
        )
        .into_iter()
        .map(|j| j.keep)
        .collect();
        assert_eq!(writes[0], Keep::Active);
        assert_eq!(writes[1], Keep::Nothing);
        assert!(matches!(&writes[2], Keep::Void { reason } if reason.starts_with("lower than")));
    }
}
